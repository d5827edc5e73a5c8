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
convention) follow from :math:`\partial E/\partial\mathbf G` of the networks (automatic
differentiation through the small networks only) contracted with the descriptor's
analytic derivatives (:mod:`hdnnp.descriptors.engine`).
Energies in eV, lengths in Å, forces in eV/Å, stress in eV/Å³.

A *committee* (ensemble) of :math:`K` potentials that share the descriptor and reference
energies (thesis §6 outlook; Schran, Brezina and Marsalek, J. Chem. Phys. 153, 104105
(2020)) is stored as one :class:`CommitteeNetwork` per element.  Its energy is the
members' mean :math:`\bar E = K^{-1}\sum_k E_k`, so its forces and stress are the
members' means as well, and the members' spread

.. math:: \sigma_E = \Big[\tfrac{1}{K-1}\sum_k (E_k - \bar E)^2\Big]^{1/2}

estimates the model uncertainty (eV); averaging independently trained members also
lowers the error of the prediction itself.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING

import torch
from torch import nn

from hdnnp.activations import activation, canonical_activation
from hdnnp.descriptors.engine import Descriptor, accumulate_pair_gradient, batch_pair_vectors
from hdnnp.errors import HdnnpError
from hdnnp.neighbours import StructureBatch

if TYPE_CHECKING:
    from hdnnp.network_kernels import PackedNetworks


def committee_force_deviation(forces_members: torch.Tensor) -> torch.Tensor:
    r"""Per-atom model deviation of a committee's forces (eV/Å), DeePMD-kit's and DP-GEN's
    active-learning criterion (Zhang et al., Phys. Rev. Materials 3, 023804 (2019), eq. 2):
    :math:`\epsilon_i = [K^{-1}\sum_k |\mathbf F_{ik} - \bar{\mathbf F}_i|^2]^{1/2}` from
    the members' forces ``forces_members`` [K, N, 3]; returns [N] in float64."""
    fm = forces_members.detach().double()
    return ((fm - fm.mean(0)) ** 2).sum(-1).mean(0).sqrt()


@contextmanager
def one_torch_thread_beside_kernels(descriptor: Descriptor, device: torch.device) -> Iterator[None]:
    """Run PyTorch on one thread while the descriptor's compiled kernels run on the CPU.

    The kernels and PyTorch each keep an OpenMP thread pool; between the kernels' parallel
    loops the networks of one block (a few hundred atoms, small matrix products) gain
    nothing from threads, but PyTorch's pool then competes with Numba's spinning one for
    the same cores: measured on 8640-atom water with two threads on two cores, the
    networks took 0.25 s per call with two PyTorch threads and 0.045 s with one
    (``docs/benchmarks.md``, thread scaling).
    """
    before = torch.get_num_threads()
    if not descriptor.uses_kernels(device) or before == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


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


class CommitteeNetwork(nn.Module):
    """The networks of one element in a committee; its output is the members' mean.

    Every member is an :class:`AtomicNetwork` on the same descriptor (members may
    differ in architecture).  :meth:`NeuralNetworkPotential.member_atomic_energies` gives
    the individual energies.
    """

    def __init__(self, members: Sequence[AtomicNetwork]):
        super().__init__()
        members = list(members)
        if len(members) < 2:
            raise HdnnpError("a committee needs at least two members")
        n_in = {m.n_inputs for m in members}
        if len(n_in) != 1:
            raise HdnnpError(f"committee members take different numbers of inputs: {sorted(n_in)}")
        self.members = nn.ModuleList(members)

    @property
    def n_inputs(self) -> int:
        return self.members[0].n_inputs

    @property
    def hidden(self) -> list[int]:
        return self.members[0].hidden

    @property
    def activation_names(self) -> list[str]:
        return self.members[0].activation_names

    @property
    def feature_min(self) -> torch.Tensor:
        """Lowest value of each feature seen in any member's training data."""
        return torch.stack([m.feature_min for m in self.members]).min(0).values

    @property
    def feature_max(self) -> torch.Tensor:
        return torch.stack([m.feature_max for m in self.members]).max(0).values

    def forward(self, g: torch.Tensor) -> torch.Tensor:
        return torch.stack([m(g) for m in self.members]).mean(0)


def committee_size(net: nn.Module) -> int:
    """Number of members of an element's network (1 for a single network)."""
    return len(net.members) if isinstance(net, CommitteeNetwork) else 1


def member_networks(net: nn.Module) -> list[AtomicNetwork]:
    """The single networks behind an element's network (itself if not a committee)."""
    return list(net.members) if isinstance(net, CommitteeNetwork) else [net]


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
        sizes = {committee_size(n) for n in self.networks.values()}
        if len(sizes) != 1:
            raise HdnnpError(f"committee sizes differ between elements: {sorted(sizes)}")
        self.metadata: dict = {}
        self.to(dtype)
        if dtype == torch.float64 and descriptor.uses_kernels(torch.device("cpu")):
            from hdnnp.network_kernels import warm_up  # Numba loads with the kernels

            warm_up(self)

    # ------------------------------------------------------------- committee
    @property
    def committee_size(self) -> int:
        """Number of committee members (1: a single potential)."""
        return committee_size(next(iter(self.networks.values())))

    def member(self, k: int) -> NeuralNetworkPotential:
        """Member ``k`` of a committee as a potential of its own (shares parameters)."""
        if not 0 <= k < self.committee_size:
            raise HdnnpError(f"member {k + 1} does not exist: the potential has "
                             f"{self.committee_size} member(s)")
        out = NeuralNetworkPotential(
            self.descriptor, networks={e: member_networks(self.networks[e])[k]
                                       for e in self.elements},
            reference_energies=self.reference_energy_dict(), dtype=next(self.parameters()).dtype)
        out.metadata = dict(self.metadata)
        out.extrapolation_rtol, out.extrapolation_atol = (self.extrapolation_rtol,
                                                          self.extrapolation_atol)
        return out

    @classmethod
    def committee(cls, members: Sequence[NeuralNetworkPotential]) -> NeuralNetworkPotential:
        """One committee potential from potentials with the same descriptor, elements and
        reference energies (committees among ``members`` are flattened)."""
        members = list(members)
        first = members[0]
        for m in members[1:]:
            if m.elements != first.elements:
                raise HdnnpError(f"committee members have different elements: {first.elements} "
                                 f"and {m.elements}")
            if m.descriptor.to_config() != first.descriptor.to_config():
                raise HdnnpError("committee members must share one descriptor set-up")
            if not torch.equal(m.reference_energies.cpu(), first.reference_energies.cpu()):
                raise HdnnpError("committee members have different reference energies")
        nets = {e: CommitteeNetwork([net for m in members
                                     for net in member_networks(m.networks[e])])
                for e in first.elements}
        return cls(first.descriptor, networks=nets,
                   reference_energies=first.reference_energy_dict(),
                   dtype=next(first.parameters()).dtype)

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
        """Network part of the atomic energies (eV, without reference energies), [N]; for a
        committee the members' mean."""
        return self.member_atomic_energies(features, species).mean(0)

    def member_atomic_energies(self, features: torch.Tensor, species: torch.Tensor
                               ) -> torch.Tensor:
        """Network part of the atomic energies of every committee member (eV), [K, N]
        (K = 1 for a single potential)."""
        out = torch.zeros(features.shape[0], self.committee_size, dtype=features.dtype,
                          device=features.device)
        for k, e in enumerate(self.elements):
            idx = torch.nonzero(species == k).squeeze(1)
            if idx.numel() == 0:
                continue
            nets = member_networks(self.networks[e])
            g = features[idx, : nets[0].n_inputs]
            out = out.index_put((idx,), torch.stack([net(g) for net in nets], 1))
        return out.T

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
                create_graph: bool = False, member_forces: bool = False,
                atomic_virials: bool = False) -> dict[str, torch.Tensor]:
        """Energies (and forces, stress, per-atom energies) of a batch.

        Returns a dict with ``energy`` [B] (eV), ``energies`` [N] (eV, per atom),
        ``features`` [N, F], and on request ``forces`` [N, 3] (eV/Å) and ``virial``
        [B, 3, 3] (:math:`\\partial E/\\partial\\varepsilon`, eV) and ``stress`` [B, 3, 3]
        (eV/Å³; only for 3D-periodic structures, NaN otherwise); ``atomic_virials`` adds
        ``virials`` [N, 3, 3] (eV), the strain derivative of each atom's energy
        :math:`\\sum_{p: i(p)=a} (\\partial E_a/\\partial\\mathbf d_p)\\otimes\\mathbf d_p`
        (they sum to ``virial``).  A committee adds ``energy_members`` [K, B],
        ``energy_std`` [B] and ``energies_std`` [N] (eV), and with ``member_forces`` every
        member's forces ``forces_members`` [K, N, 3] (one more gradient pass per member).

        The descriptor is evaluated in blocks of centre atoms, two passes each
        (:mod:`hdnnp.descriptors.engine`); on the CPU in float64 the networks run as a
        compiled kernel, and energy + forces (without member forces) as one kernel per
        block, centre by centre (:mod:`hdnnp.network_kernels`).  ``create_graph`` (forces
        that stay differentiable with respect to the parameters) uses the tensor path
        instead.
        """
        if create_graph:
            return self._forward_autograd(batch, forces, stress)
        member_forces = member_forces and self.committee_size > 1
        need_grad = forces or stress or member_forces or atomic_virials
        n, K = batch.n_total_atoms, self.committee_size
        device = batch.positions.device
        wdtype = next(self.parameters()).dtype
        f64 = dict(dtype=torch.float64, device=device)
        e_members = torch.zeros(K, n, **f64)
        feats = torch.zeros(n, self.descriptor.max_features, dtype=wdtype, device=device)
        n_sets = K if member_forces else 1
        f_sets = torch.zeros(n_sets, n, 3, **f64) if need_grad else None
        virial = torch.zeros(batch.n_structures, 3, 3, **f64) if stress else None
        at_vir = torch.zeros(n, 3, 3, **f64) if atomic_virials else None
        vectors = batch_pair_vectors(batch)
        packed = self._packed_networks(device)
        want_mean = member_forces and (stress or atomic_virials)
        # one gradient set on the CPU kernels: features, networks and pair gradient in one
        # kernel, centre by centre (hdnnp.network_kernels)
        fused = packed is not None and need_grad and not member_forces
        with one_torch_thread_beside_kernels(self.descriptor, device):
            for block in self.descriptor.evaluate(batch, vectors, first_pass=not fused):
                c, p = block.centres, block.pairs
                if fused:
                    e_b, de_dd = packed.block_forces(block)
                    feats[c] = block.features
                    e_members[:, c] = e_b
                    accumulate_pair_gradient(
                        de_dd, batch.centers[p], batch.neighbours[p], f_sets[0],
                        vectors[p].to(torch.float64), batch.structure_index[batch.centers[p]],
                        virial, at_vir)
                    block.release()
                    continue
                g = block.features.to(wdtype)
                feats[c] = g
                e_b, gradient_sets, mean_gradient = self._block_energies_and_gradients(
                    g, batch.species[c], need_grad, member_forces, want_mean, packed)
                e_members[:, c] = e_b.to(torch.float64)
                for k, de_dg in enumerate(gradient_sets):
                    de_dd = block.pair_gradient(de_dg).to(**f64)
                    want_v = stress and k == 0 and not member_forces
                    accumulate_pair_gradient(
                        de_dd, batch.centers[p], batch.neighbours[p], f_sets[k],
                        vectors[p].to(torch.float64), batch.structure_index[batch.centers[p]],
                        virial if want_v else None,
                        at_vir if atomic_virials and not member_forces else None)
                if mean_gradient is not None:
                    # the committee's virial is the members' mean: one more pass with the mean
                    de_dd = block.pair_gradient(mean_gradient).to(**f64)
                    accumulate_pair_gradient(
                        de_dd, batch.centers[p], batch.neighbours[p], torch.zeros(n, 3, **f64),
                        vectors[p].to(torch.float64), batch.structure_index[batch.centers[p]],
                        virial, at_vir)
                if hasattr(block, "release"):
                    block.release()
        e_nn = e_members.mean(0)
        energy, e_atom = self._total(e_nn, batch.species, batch.structure_index,
                                     batch.n_structures)
        out = {"energy": energy, "energies": e_atom, "features": feats}
        if K > 1:
            members = torch.stack([self._total(e, batch.species, batch.structure_index,
                                               batch.n_structures)[0] for e in e_members])
            out["energy_members"] = members
            out["energy_std"] = members.std(0, unbiased=True)
            out["energies_std"] = e_members.std(0, unbiased=True)
        if member_forces:
            out["forces_members"] = f_sets.to(wdtype)
        if forces:
            out["forces"] = f_sets.mean(0).to(wdtype)
        if stress:
            self._stress(out, batch, virial)
        if atomic_virials:
            out["virials"] = at_vir
        return out

    def _packed_networks(self, device: torch.device) -> PackedNetworks | None:
        """The networks packed for the compiled kernel (:mod:`hdnnp.network_kernels`) when
        the descriptor runs on the CPU kernels and every network is float64 there."""
        if not self.descriptor.uses_kernels(device):
            return None
        from hdnnp.network_kernels import pack_networks  # Numba loads with the kernels

        return pack_networks([member_networks(self.networks[e]) for e in self.elements])

    def _block_energies_and_gradients(self, g: torch.Tensor, species: torch.Tensor,
                                      need_grad: bool, member_forces: bool, want_mean: bool,
                                      packed: PackedNetworks | None
                                      ) -> tuple[torch.Tensor, list[torch.Tensor],
                                                 torch.Tensor | None]:
        """Members' atomic energies [K, n] of one block, the feature gradients ∂E/∂G
        [n, F] to contract (every member's with ``member_forces``, else the mean's) and,
        with ``want_mean``, also the mean's; by the network kernel or by autograd."""
        if packed is not None:
            e_b, grads = packed(g, species, need_grad, member_forces)
            if not need_grad:
                return e_b, [], None
            return e_b, list(grads), grads.mean(0) if want_mean else None
        with torch.enable_grad():
            g = g.detach().requires_grad_(need_grad)
            e_b = self.member_atomic_energies(g, species)
            if not need_grad:
                return e_b.detach(), [], None
            targets = list(e_b) if member_forces else [e_b.mean(0)]
            if want_mean:
                targets.append(e_b.mean(0))
            grads = [torch.autograd.grad(t.sum(), g, retain_graph=i < len(targets) - 1)[0]
                     for i, t in enumerate(targets)]
        return e_b.detach(), grads, grads.pop() if want_mean else None

    @staticmethod
    def _stress(out: dict, batch: StructureBatch, virial: torch.Tensor) -> None:
        volume = torch.linalg.det(batch.cells.to(virial.dtype)).abs()
        volume = torch.where(volume > 1e-12, volume, torch.full_like(volume, float("nan")))
        out["virial"] = virial
        out["stress"] = 0.5 * (virial + virial.transpose(1, 2)) / volume.view(-1, 1, 1)

    def _forward_autograd(self, batch: StructureBatch, forces: bool, stress: bool) -> dict:
        """Energies, forces and stress with autograd through the descriptor's tensor path,
        keeping the graph (``create_graph``)."""
        vectors = batch.pair_vectors()
        if not vectors.requires_grad:
            vectors.requires_grad_(True)
        g = self.descriptor(batch, vectors)
        e_nn = self.atomic_energies(g, batch.species)
        energy, e_atom = self._total(e_nn, batch.species, batch.structure_index,
                                     batch.n_structures)
        out = {"energy": energy, "energies": e_atom, "features": g}
        if forces or stress:
            (de_dd,) = torch.autograd.grad(e_nn.sum(), vectors, create_graph=True)
            f = torch.zeros(batch.n_total_atoms, 3, dtype=de_dd.dtype, device=de_dd.device)
            out["forces"] = f.index_add(0, batch.centers, de_dd).index_add(
                0, batch.neighbours, -de_dd)
            if stress:
                w = torch.zeros(batch.n_structures, 3, 3, dtype=de_dd.dtype, device=de_dd.device)
                virial = w.index_add(0, batch.structure_index[batch.centers],
                                     de_dd.unsqueeze(-1) * vectors.detach().unsqueeze(-2))
                self._stress(out, batch, virial)
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
        if self.committee_size > 1:
            lines.append(f"  committee of {self.committee_size} members (energy = their mean)")
        for e in self.elements:
            net = self.networks[e]
            arch = "-".join(str(n) for n in [net.n_inputs, *net.hidden, 1])
            acts = ",".join(net.activation_names)
            n_par = sum(p.numel() for p in net.parameters())
            each = " in all" if committee_size(net) > 1 else ""
            lines.append(f"  network {e}: {arch} ({acts}), {n_par} parameters{each}, "
                         f"E_ref = {self.reference_energy_dict()[e]:.6f} eV")
        return "\n".join(lines)
