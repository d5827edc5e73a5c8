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
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from hdnnp.errors import HdnnpError


def _twist(x):
    return 1.7159 * torch.tanh(2.0 / 3.0 * x) + 0.1 * x


ACTIVATIONS = {
    "linear": lambda x: x,
    "tanh": torch.tanh,
    "sigmoid": torch.sigmoid,
    "mtanh": lambda x: 1.7159 * torch.tanh(2.0 / 3.0 * x),
    "twist": _twist,
    "softplus": F.softplus,
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
