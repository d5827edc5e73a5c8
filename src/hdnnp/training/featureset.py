r"""Descriptors and their pair Jacobians, computed once per data set.

Training on forces needs :math:`\mathbf F = -\partial E/\partial\mathbf r` for every
epoch.  Differentiating the descriptor twice per step (once for the forces, once more for
the weight gradient) is expensive; instead the features :math:`\mathbf G` and the pair
Jacobians :math:`\partial \mathbf G_{i(p)}/\partial\mathbf d_p` (see
:mod:`hdnnp.descriptors.engine`) are computed once by the compiled kernels and stored, and
each epoch only contracts them with the network's :math:`\partial E/\partial \mathbf G`:

.. math:: \frac{\partial E}{\partial \mathbf d_p} = \sum_f
   \frac{\partial E}{\partial G_{i(p)f}}\,\frac{\partial G_{i(p)f}}{\partial\mathbf d_p}.

Memory: only the derivatives a pair can have are stored — per (centre element, neighbour
element) bucket the radial columns of that element pair as one scalar per pair and
column (the direction is the pair's unit vector) and its angular columns as 3-vectors,
by default in float32.  Structures that do not take part in force training
(``force_mask``) store no Jacobian at all.

A :class:`FeatureSet` keeps all structures in flat, concatenated tensors with
per-structure offsets; :meth:`FeatureSet.batch` collates any subset of structures
into a :class:`TrainingBatch` with vectorised index arithmetic.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from hdnnp.data import Dataset
from hdnnp.descriptors.engine import Descriptor, JacobianBucket, PairJacobian
from hdnnp.neighbours import build_batch


def _ranges(starts: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """Concatenation of arange(s, s + c) for all (s, c), vectorised."""
    total = int(counts.sum())
    if total == 0:
        return torch.zeros(0, dtype=torch.long, device=starts.device)
    block = torch.repeat_interleave(torch.arange(counts.numel(), device=starts.device), counts)
    first = torch.cumsum(counts, 0) - counts
    return starts[block] + torch.arange(total, device=starts.device) - first[block]


@dataclass
class TrainingBatch:
    """Collated features, references and (for force structures) pair Jacobians."""

    features: torch.Tensor  # [N, F]
    species: torch.Tensor  # [N]
    structure_index: torch.Tensor  # [N]
    n_atoms: torch.Tensor  # [B]
    energy: torch.Tensor  # [B] reference total energies (eV, float64)
    forces: torch.Tensor  # [N, 3] reference forces (eV/Å; NaN where unknown)
    force_atoms: torch.Tensor  # indices of atoms whose forces enter loss/metrics
    jacobian: PairJacobian | None

    @property
    def n_structures(self) -> int:
        return int(self.n_atoms.shape[0])


class _BucketStore:
    """Rows of one (centre, neighbour) element bucket of every force structure."""

    def __init__(self, elements, radial_columns, vector_columns):
        self.elements = elements
        self.radial_columns, self.vector_columns = radial_columns, vector_columns
        self.parts = {k: [] for k in ("rc", "rn", "radial", "unit", "vc", "vn", "vector")}
        self.n_radial: list[np.ndarray] = []
        self.n_vector: list[np.ndarray] = []

    def finish(self, n_structures: int, jdtype, device):
        def cat(key, shape, dtype):
            return (torch.cat(self.parts[key]) if self.parts[key]
                    else torch.zeros(shape, dtype=dtype)).to(device)

        nr, nv = self.radial_columns.numel(), self.vector_columns.numel()
        self.rc, self.rn = cat("rc", (0,), torch.long), cat("rn", (0,), torch.long)
        self.radial, self.unit = cat("radial", (0, nr), jdtype), cat("unit", (0, 3), jdtype)
        self.vc, self.vn = cat("vc", (0,), torch.long), cat("vn", (0,), torch.long)
        self.vector = cat("vector", (0, nv, 3), jdtype)
        counts = [np.concatenate(c) if c else np.zeros(n_structures, dtype=np.int64)
                  for c in (self.n_radial, self.n_vector)]
        self.count_r = torch.as_tensor(counts[0], device=device)
        self.count_v = torch.as_tensor(counts[1], device=device)
        zero = torch.zeros(1, dtype=torch.long, device=device)
        self.off_r = torch.cat([zero, torch.cumsum(self.count_r, 0)])
        self.off_v = torch.cat([zero, torch.cumsum(self.count_v, 0)])
        del self.parts

    def memory_bytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (
            self.rc, self.rn, self.radial, self.unit, self.vc, self.vn, self.vector))

    def collate(self, idx, atom_start, device) -> JacobianBucket:
        b = idx.numel()
        rows_r = _ranges(self.off_r[idx], self.count_r[idx])
        struct_r = torch.repeat_interleave(torch.arange(b, device=device), self.count_r[idx])
        rows_v = _ranges(self.off_v[idx], self.count_v[idx])
        struct_v = torch.repeat_interleave(torch.arange(b, device=device), self.count_v[idx])
        shift_r, shift_v = atom_start[struct_r], atom_start[struct_v]
        empty = torch.zeros(0, dtype=torch.long, device=device)
        return JacobianBucket(
            radial_columns=self.radial_columns, radial_pairs=empty,
            radial_centres=self.rc[rows_r] + shift_r, radial_neighbours=self.rn[rows_r] + shift_r,
            radial=self.radial[rows_r], unit=self.unit[rows_r],
            vector_columns=self.vector_columns, vector_pairs=empty,
            vector_centres=self.vc[rows_v] + shift_v, vector_neighbours=self.vn[rows_v] + shift_v,
            vector=self.vector[rows_v], elements=self.elements)


class FeatureSet:
    """Features (and pair Jacobians of the force structures) of a whole data set."""

    def __init__(self, descriptor: Descriptor, dataset: Dataset, force_mask=None,
                 dtype: torch.dtype = torch.float64, jacobian_dtype: torch.dtype = torch.float32,
                 device: torch.device | str = "cpu", chunk_atoms: int = 3000,
                 progress: bool = False, desc: str = "descriptors"):
        self.device = torch.device(device)
        self.dtype = dtype
        self.jacobian_dtype = jacobian_dtype
        self.elements = descriptor.elements
        n = len(dataset)
        has_f = dataset.has_forces
        force_mask = has_f if force_mask is None else (np.asarray(force_mask, bool) & has_f)
        self.force_mask = torch.as_tensor(force_mask, device=self.device)
        self.names = dataset.names
        self.n_atoms = torch.as_tensor(dataset.n_atoms, device=self.device)
        self.energy = torch.as_tensor(dataset.energies, dtype=torch.float64, device=self.device)
        self.atom_offsets = torch.cat([torch.zeros(1, dtype=torch.long, device=self.device),
                                       torch.cumsum(self.n_atoms, 0)])
        S = len(descriptor.elements)
        lay = descriptor.layout
        self._buckets = {(c, s): _BucketStore(
            (c, s), torch.tensor(lay.radial_columns[c][s], dtype=torch.long, device=self.device),
            torch.tensor(lay.vector_columns[c][s], dtype=torch.long, device=self.device))
            for c in range(S) for s in range(S)}

        feats, species, forces = [], [], []
        # chunks of consecutive structures, ~chunk_atoms atoms each
        chunks, cur, cur_atoms = [], [], 0
        for k in range(n):
            cur.append(k)
            cur_atoms += len(dataset[k])
            if cur_atoms >= chunk_atoms:
                chunks.append(cur)
                cur, cur_atoms = [], 0
        if cur:
            chunks.append(cur)

        iterator = chunks
        if progress:
            from tqdm.auto import tqdm

            iterator = tqdm(chunks, desc=desc, unit="chunk", leave=False)
        for chunk in iterator:
            structs = [dataset[k] for k in chunk]
            batch = build_batch(structs, descriptor.elements, descriptor.cutoff,
                                dtype=torch.float64, names=[self.names[k] for k in chunk])
            keep = np.array([bool(force_mask[k]) for k in chunk])
            if keep.any():
                g, jac = descriptor.features_and_jacobian(batch, jacobian_dtype)
                self._store(jac, batch, keep, len(chunk))
            else:
                g = descriptor(batch)
            feats.append(g.to(device=self.device, dtype=dtype))
            species.append(batch.species.to(self.device))
            for k in chunk:
                f = dataset.forces(k)
                forces.append(torch.as_tensor(f, dtype=torch.float64) if f is not None
                              else torch.full((len(dataset[k]), 3), float("nan"),
                                              dtype=torch.float64))
        for store in self._buckets.values():
            store.finish(n, jacobian_dtype, self.device)
        f_width = descriptor.max_features
        self.features = torch.cat(feats) if feats else torch.zeros(0, f_width, dtype=dtype)
        self.species = torch.cat(species) if species else torch.zeros(0, dtype=torch.long)
        self.forces = (torch.cat(forces) if forces else torch.zeros(0, 3, dtype=torch.float64)
                       ).to(self.device)
        self._full: TrainingBatch | None = None

    def _store(self, jac: PairJacobian, batch, keep: np.ndarray, n_chunk: int) -> None:
        """Append a chunk's Jacobian rows of its force structures, atoms renumbered per
        structure."""
        atom_start = torch.cumsum(batch.n_atoms, 0) - batch.n_atoms
        keep_t = torch.as_tensor(keep)
        S = len(self.elements)
        seen = set()
        for b in jac.buckets:
            c, s = b.elements
            seen.add((c, s))
            store = self._buckets[c, s]
            for prefix, centres, neigh in (("r", b.radial_centres, b.radial_neighbours),
                                           ("v", b.vector_centres, b.vector_neighbours)):
                st = batch.structure_index[centres]
                rows = torch.nonzero(keep_t[st]).squeeze(1)
                counts = torch.bincount(st[rows], minlength=n_chunk).numpy()
                shift = atom_start[st[rows]]
                if prefix == "r":
                    store.parts["rc"].append(centres[rows] - shift)
                    store.parts["rn"].append(neigh[rows] - shift)
                    store.parts["radial"].append(b.radial[rows])
                    store.parts["unit"].append(b.unit[rows])
                    store.n_radial.append(counts)
                else:
                    store.parts["vc"].append(centres[rows] - shift)
                    store.parts["vn"].append(neigh[rows] - shift)
                    store.parts["vector"].append(b.vector[rows])
                    store.n_vector.append(counts)
        for key in ((c, s) for c in range(S) for s in range(S)):
            if key not in seen:
                self._buckets[key].n_radial.append(np.zeros(n_chunk, dtype=np.int64))
                self._buckets[key].n_vector.append(np.zeros(n_chunk, dtype=np.int64))

    def __len__(self) -> int:
        return int(self.n_atoms.numel())

    @property
    def n_force_structures(self) -> int:
        return int(self.force_mask.sum())

    def memory_bytes(self) -> int:
        ts = [self.features, self.forces]
        return (sum(t.numel() * t.element_size() for t in ts)
                + sum(b.memory_bytes() for b in self._buckets.values()))

    def batch(self, indices=None) -> TrainingBatch:
        """Collate the structures ``indices`` (all when None; that batch is cached)."""
        if indices is None:
            if self._full is None:
                self._full = self._collate(torch.arange(len(self), device=self.device))
            return self._full
        idx = torch.as_tensor(indices, dtype=torch.long, device=self.device)
        return self._collate(idx)

    def _collate(self, idx: torch.Tensor) -> TrainingBatch:
        nat = self.n_atoms[idx]
        atom_idx = _ranges(self.atom_offsets[idx], nat)
        b = idx.numel()
        struct = torch.repeat_interleave(torch.arange(b, device=self.device), nat)
        batch_atom_start = torch.cumsum(nat, 0) - nat
        forces = self.forces[atom_idx]
        fmask_struct = self.force_mask[idx]
        force_atoms = torch.nonzero(fmask_struct[struct] & ~torch.isnan(forces).any(1)).squeeze(1)
        buckets = [store.collate(idx, batch_atom_start, self.device)
                   for store in self._buckets.values()]
        buckets = [bk for bk in buckets
                   if bk.radial_centres.numel() or bk.vector_centres.numel()]
        jac = PairJacobian(buckets, 0) if buckets else None
        return TrainingBatch(
            features=self.features[atom_idx], species=self.species[atom_idx],
            structure_index=struct, n_atoms=nat, energy=self.energy[idx], forces=forces,
            force_atoms=force_atoms, jacobian=jac)
