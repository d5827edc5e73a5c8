r"""Activation functions of the atomic networks.

ænet's set (thesis eqs. 2.46–2.49; ænet ``feedforward.f90``; LeCun et al., "Efficient
BackProp", 1998 for the scaled forms):

=========  ==============================================
linear     :math:`x`
tanh       :math:`\tanh x`
sigmoid    :math:`1/(1 + e^{-x})`
mtanh      :math:`1.7159 \tanh(2x/3)`
twist      :math:`1.7159 \tanh(2x/3) + 0.1 x`
=========  ==============================================

and the further functions of n2p2 (``NeuralNetwork::ActivationFunction``), by their
one-letter n2p2 codes:

=====  ============  ==========================================
``l``  linear        :math:`x`
``t``  tanh          :math:`\tanh x`
``s``  logistic      :math:`1/(1 + e^{-x})`
``p``  softplus      :math:`\ln(1 + e^x)`
``r``  relu          :math:`\max(0, x)`
``g``  gaussian      :math:`e^{-x^2/2}`
``c``  cos           :math:`\cos x`
``S``  revlogistic   :math:`1 - 1/(1 + e^{-x})`
``e``  exp           :math:`e^{-x}`
``h``  harmonic      :math:`x^2`
=====  ============================================

The n2p2 definitions were checked against n2p2's ``NeuralNetwork::propagateLayer``.
n2p2's output layer is always linear (the last letter of ``global_activation_short`` is
not used).  ``softplus`` follows n2p2 exactly: :math:`\ln(1 + e^x)` for
:math:`|x| \le 35`, :math:`x` above and 0 below (torch's default switches to :math:`x`
already at 20, an error of 2e-9).  ``sigmoid`` differs from n2p2's clipped logistic
(exactly 0 or 1 beyond :math:`|x| = 35`) by less than 7e-16.
"""

from __future__ import annotations

import torch

from hdnnp.errors import HdnnpError


def _softplus(x):
    # n2p2's softplus (EXP_LIMIT = 35): exact ln(1 + e^x) inside, x / 0 outside
    inner = torch.log1p(torch.exp(x.clamp(-35.0, 35.0)))
    return torch.where(x > 35.0, x, torch.where(x < -35.0, torch.zeros_like(x), inner))


def _twist(x):
    return 1.7159 * torch.tanh(2.0 / 3.0 * x) + 0.1 * x


ACTIVATIONS = {
    "linear": lambda x: x,
    "tanh": torch.tanh,
    "sigmoid": torch.sigmoid,
    "mtanh": lambda x: 1.7159 * torch.tanh(2.0 / 3.0 * x),
    "twist": _twist,
    "softplus": _softplus,
    "relu": torch.relu,
    "gaussian": lambda x: torch.exp(-0.5 * x * x),
    "cos": torch.cos,
    "revlogistic": lambda x: 1.0 - torch.sigmoid(x),
    "exp": lambda x: torch.exp(-x),
    "harmonic": lambda x: x * x,
}

#: n2p2 one-letter activation codes -> names used here.
N2P2_ACTIVATIONS = {
    "l": "linear", "t": "tanh", "s": "sigmoid", "p": "softplus", "r": "relu",
    "g": "gaussian", "c": "cos", "S": "revlogistic", "e": "exp", "h": "harmonic",
}

_ALIASES = {"logistic": "sigmoid", "identity": "linear", "tanh_twist": "twist", "w": "twist",
            "m": "mtanh"}


def canonical_activation(name: str) -> str:
    """The canonical name of an activation given by name, alias or n2p2 letter."""
    if name in ACTIVATIONS:
        return name
    if name in N2P2_ACTIVATIONS:
        return N2P2_ACTIVATIONS[name]
    low = name.lower()
    if low in ACTIVATIONS:
        return low
    if low in _ALIASES:
        return _ALIASES[low]
    raise HdnnpError(f"unknown activation {name!r}; known: {', '.join(ACTIVATIONS)}")


def activation(name: str):
    """The torch function of activation ``name``."""
    return ACTIVATIONS[canonical_activation(name)]
