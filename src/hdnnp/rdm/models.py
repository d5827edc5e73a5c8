r"""Neural-network models of the 1-RDM (PyTorch, float64, device-agnostic; atomic units).

Every model maps its input to a batch of spin-summed 1-RDMs :math:`\gamma(x, x')`
(bohr⁻¹) on the N-point grid, shape (B, N, N), and is symmetric by construction.
Inputs, by ``input_kind``:

- ``"rdm"`` (autoencoders): the exact 1-RDM itself; the model must reproduce it through a
  ``latent``-dimensional bottleneck (:class:`DenseAutoencoder`, :class:`ConvAutoencoder`);
- ``"density"`` (γ[n] functionals): the density n(x) (:class:`RawRegressor`,
  :class:`PCARegressor`, :class:`PhysicsRegressor`);
- ``"uhf_rdm"``: the unrestricted Hartree–Fock 1-RDM of the same potential
  (:class:`PCARegressor` with UHF features, the paper's "UHF-fed" model).

:class:`PhysicsRegressor` builds in the exact constraints of a two-electron 1-RDM
(Wetherell et al., Faraday Discuss. 224, 265 (2020), section on feature engineering):

.. math::

    \tilde\gamma = \mathbf 1 \mathbf 1^\top + B B^\top + \epsilon I, \qquad
    \gamma_{ij} = \sqrt{n_i / \tilde\gamma_{ii}}\; \tilde\gamma_{ij}\;
                  \sqrt{n_j / \tilde\gamma_{jj}},

with :math:`B = B[n]` (N × r) from a network.  A congruence with a positive diagonal
matrix keeps :math:`\tilde\gamma` symmetric positive semi-definite, the diagonal is
:math:`n` exactly, hence :math:`\operatorname{tr}\gamma = \int n\,dx = 2`.  With
:math:`B = 0` the model is :math:`\gamma = \sqrt{n(x) n(x')}`, the exact 1-RDM of two
electrons in one orbital (no correlation); :math:`B` adds correlation (more natural
orbitals).  Not built in: occupations ≤ 1 per spin-orbital (reported as a metric).

Normalisation constants and PCA bases are buffers, so a model's state dict (saved with
``torch.save``, loaded with ``weights_only=True``) holds everything; the constructor
arguments (sizes) go into ``model.json``.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import torch
from torch import nn

from hdnnp.errors import HdnnpError

__all__ = [
    "AUTOENCODERS",
    "MODEL_KINDS",
    "ConvAutoencoder",
    "DenseAutoencoder",
    "PCARegressor",
    "PhysicsRegressor",
    "RawRegressor",
    "build_model",
    "from_upper_features",
    "mlp",
    "upper_features",
]

AUTOENCODERS = ("dense-autoencoder", "conv-autoencoder")
MODEL_KINDS = (*AUTOENCODERS, "raw", "pca", "physics", "uhf-pca")
_F64 = torch.float64


def mlp(sizes, activation=nn.SiLU, final_scale: float = 1.0) -> nn.Sequential:
    """Fully connected network; the last layer's weights are scaled by ``final_scale``."""
    layers: list[nn.Module] = []
    for k, (a, b) in enumerate(itertools.pairwise(sizes)):
        layers.append(nn.Linear(a, b))
        if k < len(sizes) - 2:
            layers.append(activation())
    with torch.no_grad():
        layers[-1].weight.mul_(final_scale)
        layers[-1].bias.zero_()
    return nn.Sequential(*layers)


def _triu(n: int, device=None, dtype=torch.float64):
    i, j = torch.triu_indices(n, n, device=device)
    w = torch.full(i.shape, math.sqrt(2.0), dtype=dtype, device=device)
    w[i == j] = 1.0
    return i, j, w


def upper_features(rdm: torch.Tensor) -> torch.Tensor:
    """(B, N, N) → (B, N(N+1)/2): upper triangle, off-diagonal × √2 (as
    :func:`hdnnp.rdm.pca.rdm_features`)."""
    i, j, w = _triu(rdm.shape[-1], rdm.device, rdm.dtype)
    return rdm[..., i, j] * w


def from_upper_features(features: torch.Tensor, n: int) -> torch.Tensor:
    """Inverse of :func:`upper_features` (a symmetric (B, N, N) tensor)."""
    i, j, w = _triu(n, features.device, features.dtype)
    vals = features / w
    out = features.new_zeros((*features.shape[:-1], n, n))
    out[..., i, j] = vals
    out[..., j, i] = vals
    return out


class _RdmModel(nn.Module):
    input_kind = "density"

    def __init__(self, points: int):
        super().__init__()
        self.points = points
        f = points * (points + 1) // 2
        self.register_buffer("rdm_mean", torch.zeros(f, dtype=_F64))
        self.register_buffer("rdm_scale", torch.ones((), dtype=_F64))

    def _set(self, name: str, value) -> None:
        buf = getattr(self, name)
        buf.copy_(torch.as_tensor(np.asarray(value), dtype=buf.dtype))

    def fit_normalisation(self, inputs: np.ndarray, rdm: np.ndarray, input_pca=None) -> None:
        """Normalisation (and PCA bases) from the training inputs and 1-RDMs;
        ``input_pca``: a PCA of the training inputs already fitted (the PCA models reuse
        it instead of fitting it again)."""
        feats = _np_upper(rdm)
        self._set("rdm_mean", feats.mean(axis=0))
        self._fit_rdm_scale(feats)

    def _fit_rdm_scale(self, feats: np.ndarray) -> None:
        """rdm_scale: the standard deviation of the 1-RDM entries about their means (the
        unit of the training loss)."""
        self._set("rdm_scale", max(float((feats - feats.mean(axis=0)).std()), 1e-12))

    def _rdm_out(self, scaled_features: torch.Tensor) -> torch.Tensor:
        return from_upper_features(scaled_features * self.rdm_scale + self.rdm_mean,
                                   self.points)


def _np_upper(rdm: np.ndarray) -> np.ndarray:
    from hdnnp.rdm.pca import rdm_features

    return rdm_features(np.asarray(rdm, dtype=float))


class DenseAutoencoder(_RdmModel):
    """γ → upper-triangle features → MLP encoder → latent → MLP decoder → γ."""

    input_kind = "rdm"

    def __init__(self, points: int, latent: int = 62, hidden=(512, 128)):
        super().__init__(points)
        f = points * (points + 1) // 2
        self.encoder = mlp([f, *hidden, latent])
        self.decoder = mlp([latent, *reversed(hidden), f])

    def encode(self, rdm: torch.Tensor) -> torch.Tensor:
        return self.encoder((upper_features(rdm) - self.rdm_mean) / self.rdm_scale)

    def forward(self, rdm: torch.Tensor) -> torch.Tensor:
        return self._rdm_out(self.decoder(self.encode(rdm)))


class ConvAutoencoder(_RdmModel):
    """γ as a one-channel image (padded to a multiple of 8) → three stride-2
    convolutions → latent → three transposed convolutions → cropped, symmetrised γ."""

    input_kind = "rdm"

    def __init__(self, points: int, latent: int = 62, channels=(16, 32, 64)):
        super().__init__(points)
        self.padded = -(-points // 8) * 8
        side = self.padded // 8
        c1, c2, c3 = channels
        self.register_buffer("map_mean", torch.zeros(points, points, dtype=_F64))
        act = nn.SiLU
        self.encoder = nn.Sequential(
            nn.Conv2d(1, c1, 3, stride=2, padding=1), act(),
            nn.Conv2d(c1, c2, 3, stride=2, padding=1), act(),
            nn.Conv2d(c2, c3, 3, stride=2, padding=1), act(),
            nn.Flatten(), nn.Linear(c3 * side * side, latent))
        self.decoder_in = nn.Linear(latent, c3 * side * side)
        self.decoder = nn.Sequential(
            act(), nn.ConvTranspose2d(c3, c2, 4, stride=2, padding=1), act(),
            nn.ConvTranspose2d(c2, c1, 4, stride=2, padding=1), act(),
            nn.ConvTranspose2d(c1, 1, 4, stride=2, padding=1))
        self._shape = (c3, side, side)

    def fit_normalisation(self, inputs, rdm, input_pca=None) -> None:
        super().fit_normalisation(inputs, rdm)
        self._set("map_mean", np.asarray(rdm).mean(axis=0))

    def encode(self, rdm: torch.Tensor) -> torch.Tensor:
        x = (rdm - self.map_mean) / self.rdm_scale
        pad = self.padded - self.points
        x = nn.functional.pad(x[:, None], (0, pad, 0, pad))
        return self.encoder(x)

    def forward(self, rdm: torch.Tensor) -> torch.Tensor:
        z = self.decoder_in(self.encode(rdm)).view(-1, *self._shape)
        y = self.decoder(z)[:, 0, : self.points, : self.points]
        y = 0.5 * (y + y.transpose(-1, -2))
        return y * self.rdm_scale + self.map_mean


class _DensityInput(_RdmModel):
    def __init__(self, points: int):
        super().__init__(points)
        self.register_buffer("n_mean", torch.zeros(points, dtype=_F64))
        self.register_buffer("n_scale", torch.ones(points, dtype=_F64))

    def fit_normalisation(self, inputs, rdm, input_pca=None) -> None:
        super().fit_normalisation(inputs, rdm)
        n = np.asarray(inputs)
        self._set("n_mean", n.mean(axis=0))
        std = n.std(axis=0)
        self._set("n_scale", np.maximum(std, 1e-3 * std.max() + 1e-12))

    def _density_in(self, n: torch.Tensor) -> torch.Tensor:
        return (n - self.n_mean) / self.n_scale


class RawRegressor(_DensityInput):
    """n → MLP → the N(N+1)/2 independent entries of γ (standardised)."""

    def __init__(self, points: int, hidden=(256, 256)):
        super().__init__(points)
        self.net = mlp([points, *hidden, points * (points + 1) // 2])

    def forward(self, n: torch.Tensor) -> torch.Tensor:
        return self._rdm_out(self.net(self._density_in(n)))


class PCARegressor(_RdmModel):
    """PCA coefficients of the input (density, or UHF 1-RDM features), whitened → MLP →
    whitened PCA coefficients of γ → γ = mean + Σ c_k u_k.

    With the UHF 1-RDM as input the model learns the correlation correction
    (Δ-learning): γ = γ_UHF + mean + Σ c_k u_k, with the PCA basis u_k of γ − γ_UHF.
    """

    def __init__(self, points: int, components_in: int, components_out: int,
                 hidden=(256, 256), input_kind: str = "density"):
        super().__init__(points)
        if input_kind not in ("density", "uhf_rdm"):
            raise HdnnpError(f"PCA regressor input must be density or uhf_rdm, got "
                             f"{input_kind!r}")
        self.input_kind = input_kind
        f = points * (points + 1) // 2
        d_in = points if input_kind == "density" else f
        if not (1 <= components_in <= d_in and 1 <= components_out <= f):
            raise HdnnpError(f"PCA components out of range (in {components_in} of {d_in}, "
                             f"out {components_out} of {f})")
        self.register_buffer("in_mean", torch.zeros(d_in, dtype=_F64))
        self.register_buffer("in_basis", torch.zeros(components_in, d_in, dtype=_F64))
        self.register_buffer("in_std", torch.ones(components_in, dtype=_F64))
        self.register_buffer("out_basis", torch.zeros(components_out, f, dtype=_F64))
        self.register_buffer("out_std", torch.ones(components_out, dtype=_F64))
        # Δ-learning from UHF starts at the UHF 1-RDM itself (zero correction)
        self.net = mlp([components_in, *hidden, components_out],
                       final_scale=0.0 if input_kind == "uhf_rdm" else 1.0)

    def _in_vectors(self, x):
        return x if self.input_kind == "density" else _np_upper(x)

    def fit_normalisation(self, inputs, rdm, input_pca=None) -> None:
        from hdnnp.rdm.pca import fit_pca

        feats = _np_upper(rdm)
        self._fit_rdm_scale(feats)
        pin = input_pca if input_pca is not None else fit_pca(self._in_vectors(np.asarray(inputs)))
        k_in = self.in_basis.shape[0]
        self._set("in_mean", pin.mean)
        self._set("in_basis", pin.components[:k_in])
        self._set("in_std", np.sqrt(np.maximum(pin.variances[:k_in], 1e-30)))
        target = feats
        if self.input_kind == "uhf_rdm":
            target = target - _np_upper(np.asarray(inputs))
        pout = fit_pca(target)
        k_out = self.out_basis.shape[0]
        self._set("rdm_mean", pout.mean)
        self._set("out_basis", pout.components[:k_out])
        self._set("out_std", np.sqrt(np.maximum(pout.variances[:k_out], 1e-30)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        v = x if self.input_kind == "density" else upper_features(x)
        c = ((v - self.in_mean) @ self.in_basis.T) / self.in_std
        out = (self.net(c) * self.out_std) @ self.out_basis + self.rdm_mean
        if self.input_kind == "uhf_rdm":
            out = out + v
        return from_upper_features(out, self.points)


class PhysicsRegressor(_DensityInput):
    """γ = D (11ᵀ + BBᵀ + εI) D, D = diag √(n/diag(·)), B = B[n] (module docstring):
    symmetric, PSD, diag γ = n and trace γ = ∫n dx exactly."""

    def __init__(self, points: int, orbitals: int = 12, hidden=(256, 256),
                 epsilon: float = 1e-8):
        super().__init__(points)
        self.orbitals = orbitals
        self.epsilon = epsilon
        self.net = mlp([points, *hidden, points * orbitals], final_scale=0.1)

    def forward(self, n: torch.Tensor) -> torch.Tensor:
        b = self.net(self._density_in(n)).view(-1, self.points, self.orbitals)
        g = 1.0 + b @ b.transpose(-1, -2)
        g = g + self.epsilon * torch.eye(self.points, dtype=g.dtype, device=g.device)
        d = torch.sqrt(torch.clamp(n, min=0.0) / torch.diagonal(g, dim1=-2, dim2=-1))
        y = d[:, :, None] * g * d[:, None, :]
        return 0.5 * (y + y.transpose(-1, -2))  # exactly symmetric despite rounding


def build_model(spec: dict) -> _RdmModel:
    """A model (float64) from its ``model.json`` specification (kind and sizes)."""
    return _build(spec).to(_F64)


def _build(spec: dict) -> _RdmModel:
    kind, n = spec.get("kind"), int(spec["points"])
    hidden = tuple(spec["hidden"]) if spec.get("hidden") else None
    if kind == "dense-autoencoder":
        return DenseAutoencoder(n, int(spec["latent"]), hidden or (512, 128))
    if kind == "conv-autoencoder":
        return ConvAutoencoder(n, int(spec["latent"]))
    if kind == "raw":
        return RawRegressor(n, hidden or (256, 256))
    if kind in ("pca", "uhf-pca"):
        return PCARegressor(n, int(spec["components_in"]), int(spec["components"]),
                            hidden or (256, 256),
                            "density" if kind == "pca" else "uhf_rdm")
    if kind == "physics":
        return PhysicsRegressor(n, int(spec["orbitals"]), hidden or (256, 256))
    raise HdnnpError(f"unknown 1-RDM model kind {kind!r} (one of {', '.join(MODEL_KINDS)})")
