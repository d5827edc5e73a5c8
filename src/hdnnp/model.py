r"""The high-dimensional neural network potential (Behler and Parrinello, Phys. Rev. Lett.
98, 146401 (2007); thesis §2.2.7–2.2.8).

The total energy is a sum of atomic energies, each the output of the feed-forward
network of the atom's element applied to the atom's descriptor :math:`\mathbf G_i`,
plus the isolated-atom reference energy of the element (thesis eq. 4.3), so that the
networks learn cohesive energies:

.. math::

    E = \sum_i \left[ E^{\mathrm{NN}}_{Z_i}(\mathbf G_i) + E^{\mathrm{ref}}_{Z_i} \right],
    \qquad
    E^{\mathrm{NN}}(\mathbf G) = s\, y_L + b_Z,\quad
    y_l = f_l(W_l y_{l-1} + \mathbf b_l),\quad
    y_0 = (\mathbf G - \boldsymbol\mu)\odot\boldsymbol\sigma^{-1}

(thesis eq. 2.51; per-feature standardisation :math:`\mu, \sigma` and output scale
:math:`s` and per-element shift :math:`b_Z` are stored with the model).
Forces :math:`\mathbf F = -\partial E/\partial \mathbf r` and the stress
:math:`\sigma = V^{-1}\,\partial E/\partial\varepsilon` (virial over volume, ASE's sign
convention) follow by automatic differentiation through the descriptor.
Energies in eV, lengths in Å, forces in eV/Å, stress in eV/Å³.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence

import torch
from torch import nn

from hdnnp.activations import activation, canonical_activation
from hdnnp.descriptors.base import (
    Descriptor,
    forces_from_pair_gradient,
    virial_from_pair_gradient,
)
from hdnnp.errors import HdnnpError
from hdnnp.neighbours import StructureBatch


class AtomicNetwork(nn.Module):
    """Feed-forward network of one element: features of an atom → its energy (eV).

    ``hidden`` lists the hidden-layer widths, ``activations`` their activation
    functions (one name for all, or one per hidden layer); the output layer is linear
    unless ``output_activation`` says otherwise.
    """

    def __init__(self, n_inputs: int, hidden: Sequence[int], activations: str | Sequence[str],
                 output_activation: str = "linear"):
        super().__init__()
        hidden = [int(h) for h in hidden]
        if isinstance(activations, str):
            activations = [activations] * len(hidden)
        if len(activations) != len(hidden):
            raise HdnnpError(f"{len(hidden)} hidden layers need as many activations, "
                             f"got {list(activations)}")
        self.activation_names = [canonical_activation(a) for a in activations] + [
            canonical_activation(output_activation)]
        sizes = [int(n_inputs), *hidden, 1]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in itertools.pairwise(sizes))
        self._acts = [activation(a) for a in self.activation_names]
        self.register_buffer("input_shift", torch.zeros(n_inputs))
        self.register_buffer("input_scale", torch.ones(n_inputs))
        self.register_buffer("output_scale", torch.ones(()))
        self.register_buffer("output_shift", torch.zeros(()))
        self.register_buffer("feature_min", torch.full((n_inputs,), -float("inf")))
        self.register_buffer("feature_max", torch.full((n_inputs,), float("inf")))

    @property
    def n_inputs(self) -> int:
        return self.layers[0].in_features

    @property
    def hidden(self) -> list[int]:
        return [layer.out_features for layer in self.layers[:-1]]

    def forward(self, g: torch.Tensor) -> torch.Tensor:
        x = (g - self.input_shift) * self.input_scale
        for layer, act in zip(self.layers, self._acts):
            x = act(layer(x))
        return x.squeeze(-1) * self.output_scale + self.output_shift

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """Glorot-normal weights (scaled for the activation), zero biases."""
        with torch.no_grad():
            for layer, name in zip(self.layers, self.activation_names):
                fan_in, fan_out = layer.in_features, layer.out_features
                gain = 1.0 if name not in ("relu", "softplus") else 2.0**0.5
                std = gain * (2.0 / (fan_in + fan_out)) ** 0.5
                layer.weight.copy_(torch.randn(layer.weight.shape, generator=generator,
                                               dtype=layer.weight.dtype) * std)
                layer.bias.zero_()


class NeuralNetworkPotential(nn.Module):
    """Descriptor + one :class:`AtomicNetwork` per element + reference energies.

    Example::

        >>> from hdnnp.descriptors import Chebyshev
        >>> model = NeuralNetworkPotential(Chebyshev(["O", "Ti"], 8.0, 16, 6.5, 4),
        ...                                hidden=(15, 15), activation="tanh")
        >>> sorted(model.networks)
        ['O', 'Ti']
    """

    def __init__(self, descriptor: Descriptor, hidden: Sequence[int] = (15, 15),
                 activation: str | Sequence[str] = "tanh",
                 reference_energies: Mapping[str, float] | None = None,
                 networks: Mapping[str, AtomicNetwork] | None = None,
                 dtype: torch.dtype = torch.float64):
        super().__init__()
        self.descriptor = descriptor
        self.elements: tuple[str, ...] = tuple(descriptor.elements)
        if networks is None:
            networks = {e: AtomicNetwork(descriptor.n_features(e), hidden, activation)
                        for e in self.elements}
        missing = set(self.elements) - set(networks)
        if missing:
            raise HdnnpError(f"no network for element(s) {', '.join(sorted(missing))}")
        self.networks = nn.ModuleDict({e: networks[e] for e in self.elements})
        ref = reference_energies or {}
        # reference energies are large (keV): always kept and summed in float64
        self.register_buffer("reference_energies", torch.tensor(
            [float(ref.get(e, 0.0)) for e in self.elements], dtype=torch.float64))
        self.metadata: dict = {}
        self.to(dtype)

    def _apply(self, fn, recurse=True):
        # dtype/device conversions (.to, .float, .cuda, ...) go through here; the
        # reference energies (keV totals resolved to meV) always stay float64
        out = super()._apply(fn, recurse)
        out.reference_energies = out.reference_energies.to(torch.float64)
        return out

    @property
    def cutoff(self) -> float:
        return self.descriptor.cutoff

    def reference_energy_dict(self) -> dict[str, float]:
        return {e: float(v) for e, v in zip(self.elements, self.reference_energies)}

    # ------------------------------------------------------------- energies
    def atomic_energies(self, features: torch.Tensor, species: torch.Tensor) -> torch.Tensor:
        """Network part of the atomic energies (eV, without reference energies), [N]."""
        out = torch.zeros(features.shape[0], dtype=features.dtype, device=features.device)
        for k, e in enumerate(self.elements):
            idx = torch.nonzero(species == k).squeeze(1)
            if idx.numel() == 0:
                continue
            net = self.networks[e]
            out = out.index_put((idx,), net(features[idx, : net.n_inputs]))
        return out

    def _total(self, e_nn, species, structure_index, n_structures):
        # float64 accumulation: totals are ~1e4 eV while we resolve meV
        e_atom = e_nn.to(torch.float64) + self.reference_energies.to(e_nn.device)[species]
        e = torch.zeros(n_structures, dtype=torch.float64, device=e_nn.device)
        return e.index_add(0, structure_index, e_atom), e_atom

    def structure_energies(self, features, species, structure_index, n_structures):
        """Total energies (eV, float64) per structure from precomputed features, [B]."""
        return self._total(self.atomic_energies(features, species), species, structure_index,
                           n_structures)[0]

    def forward(self, batch: StructureBatch, forces: bool = True, stress: bool = False,
                create_graph: bool = False) -> dict[str, torch.Tensor]:
        """Energies (and forces, stress, per-atom energies) of a batch.

        Returns a dict with ``energy`` [B] (eV), ``energies`` [N] (eV, per atom),
        ``features`` [N, F], and on request ``forces`` [N, 3] (eV/Å) and ``virial``
        [B, 3, 3] (:math:`\\partial E/\\partial\\varepsilon`, eV) and ``stress`` [B, 3, 3]
        (eV/Å³; only for 3D-periodic structures, NaN otherwise).
        """
        vectors = batch.pair_vectors()
        need_grad = forces or stress
        if need_grad and not vectors.requires_grad:
            vectors.requires_grad_(True)
        g = self.descriptor(batch, vectors)
        e_nn = self.atomic_energies(g, batch.species)
        energy, e_atom = self._total(e_nn, batch.species, batch.structure_index,
                                     batch.n_structures)
        out = {"energy": energy, "energies": e_atom, "features": g}
        if need_grad:
            (de_dd,) = torch.autograd.grad(e_nn.sum(), vectors, create_graph=create_graph)
            if forces:
                out["forces"] = forces_from_pair_gradient(de_dd, batch.centers, batch.neighbours,
                                                          batch.n_total_atoms)
            if stress:
                pair_structure = batch.structure_index[batch.centers]
                virial = virial_from_pair_gradient(de_dd, vectors.detach(), pair_structure,
                                                   batch.n_structures)
                volume = torch.linalg.det(batch.cells).abs()
                volume = torch.where(volume > 1e-12, volume, torch.full_like(volume, float("nan")))
                out["virial"] = virial
                out["stress"] = 0.5 * (virial + virial.transpose(1, 2)) / volume.view(-1, 1, 1)
        return out

    # -------------------------------------------------------- extrapolation
    #: A feature counts as extrapolating when it lies outside
    #: [min - tol, max + tol] of the training data, tol = atol + rtol * max(1, |max - min|).
    #: n2p2 potentials use n2p2's atol = 1000 machine epsilons and rtol = 0.
    extrapolation_rtol: float = 1e-9
    extrapolation_atol: float = 0.0

    def extrapolation_mask(self, features: torch.Tensor, species: torch.Tensor) -> torch.Tensor:
        """[N, F] mask of features outside the range seen in training (per element)."""
        mask = torch.zeros(features.shape, dtype=torch.bool, device=features.device)
        for k, e in enumerate(self.elements):
            net = self.networks[e]
            idx = torch.nonzero(species == k).squeeze(1)
            if idx.numel() == 0:
                continue
            f = features[idx, : net.n_inputs]
            lo = net.feature_min.to(f.dtype)
            hi = net.feature_max.to(f.dtype)
            tol = self.extrapolation_atol + self.extrapolation_rtol * (hi - lo).abs().clamp_min(1.0)
            bad = (f < lo - tol) | (f > hi + tol)
            mask[idx, : net.n_inputs] = bad
        return mask

    def describe(self) -> str:
        lines = [self.descriptor.describe()]
        for e in self.elements:
            net = self.networks[e]
            arch = "-".join(str(n) for n in [net.n_inputs, *net.hidden, 1])
            acts = ",".join(net.activation_names)
            n_par = sum(p.numel() for p in net.parameters())
            lines.append(f"  network {e}: {arch} ({acts}), {n_par} parameters, "
                         f"E_ref = {self.reference_energy_dict()[e]:.6f} eV")
        return "\n".join(lines)
