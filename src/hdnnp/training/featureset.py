r"""Descriptors and their pair Jacobians, computed once per data set.

Training on forces needs :math:`\mathbf F = -\partial E/\partial\mathbf r` for every
epoch.  Differentiating the descriptor code twice per step (once for the forces,
once more for the weight gradient) is expensive; instead the features
:math:`\mathbf G` and the pair Jacobians
:math:`\partial \mathbf G_{i(p)}/\partial\mathbf d_p` (see
:mod:`hdnnp.descriptors.base`) are computed once and stored, and each epoch only
contracts them with the network's :math:`\partial E/\partial \mathbf G`:

.. math:: \frac{\partial E}{\partial \mathbf d_p} = \sum_f
   \frac{\partial E}{\partial G_{i(p)f}}\,\frac{\partial G_{i(p)f}}{\partial \mathbf d_p}.

Memory: radial Jacobians are stored as one scalar per pair and feature (the
direction is the pair's unit vector), angular ones as 3-vectors, by default in
float32 (≈ 4 bytes × (F_rad + 3 F_ang) per pair).  Structures that do not take part
in force training (``force_mask``) store no Jacobian at all.

A :class:`FeatureSet` keeps all structures in flat, concatenated tensors with
per-structure offsets; :meth:`FeatureSet.batch` collates any subset of structures
into a :class:`TrainingBatch` with vectorised index arithmetic.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from hdnnp.data import Dataset
from hdnnp.descriptors.base import Descriptor, PairJacobian
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
        self.radial_columns = descriptor.radial_columns().to(self.device)
        self.vector_columns = descriptor.vector_columns().to(self.device)
        n = len(dataset)
        has_f = dataset.has_forces
        force_mask = has_f if force_mask is None else (np.asarray(force_mask, bool) & has_f)
        self.force_mask = torch.as_tensor(force_mask, device=self.device)
        self.names = dataset.names
        self.n_atoms = torch.as_tensor(dataset.n_atoms, device=self.device)
        self.energy = torch.as_tensor(dataset.energies, dtype=torch.float64, device=self.device)
        self.atom_offsets = torch.cat([torch.zeros(1, dtype=torch.long, device=self.device),
                                       torch.cumsum(self.n_atoms, 0)])

        feats, species, forces = [], [], []
        centers, neigh, radial, unit, vpairs, vector = [], [], [], [], [], []
        n_pairs = np.zeros(n, dtype=np.int64)
        n_vpairs = np.zeros(n, dtype=np.int64)

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
            batch = build_batch(structs, descriptor.elements, descriptor.cutoff, dtype=dtype,
                                device=self.device, names=[self.names[k] for k in chunk])
            with_j = [k for k in chunk if force_mask[k]]
            if with_j:
                g, jac = descriptor.features_and_jacobian(batch, jacobian_dtype)
            else:
                with torch.no_grad():
                    g = descriptor(batch)
                jac = None
            feats.append(g.detach())
            species.append(batch.species)
            for k in chunk:
                f = dataset.forces(k)
                forces.append(torch.as_tensor(f, dtype=torch.float64) if f is not None
                              else torch.full((len(dataset[k]), 3), float("nan"),
                                              dtype=torch.float64))
            if jac is None:
                continue
            # split the chunk's Jacobian into per-structure pieces (force structures only)
            pair_struct = batch.structure_index[batch.centers]
            atom_start = torch.cumsum(batch.n_atoms, 0) - batch.n_atoms
            keep_struct = torch.tensor([bool(force_mask[k]) for k in chunk], device=self.device)
            keep_pair = keep_struct[pair_struct]
            pair_ids = torch.nonzero(keep_pair).squeeze(1)
            new_pair_index = torch.full((keep_pair.numel(),), -1, dtype=torch.long,
                                        device=self.device)
            ps = pair_struct[pair_ids]
            # local (per-structure) pair index of kept pairs
            counts_all = torch.bincount(pair_struct, minlength=len(chunk))
            pstart = torch.cumsum(counts_all, 0) - counts_all
            new_pair_index[pair_ids] = pair_ids - pstart[ps]
            centers.append(batch.centers[pair_ids] - atom_start[ps])
            neigh.append(batch.neighbours[pair_ids] - atom_start[ps])
            radial.append(jac.radial[pair_ids].to(jacobian_dtype))
            unit.append(jac.unit_vectors[pair_ids].to(jacobian_dtype))
            vp_struct = pair_struct[jac.vector_pairs]
            keep_v = keep_struct[vp_struct]
            vsel = torch.nonzero(keep_v).squeeze(1)
            vpairs.append(new_pair_index[jac.vector_pairs[vsel]])
            vector.append(jac.vector[vsel].to(jacobian_dtype))
            cnt = torch.bincount(ps, minlength=len(chunk)).cpu().numpy()
            vcnt = torch.bincount(vp_struct[vsel], minlength=len(chunk)).cpu().numpy()
            for local, k in enumerate(chunk):
                n_pairs[k] = cnt[local]
                n_vpairs[k] = vcnt[local]

        f_width = descriptor.max_features
        self.features = torch.cat(feats) if feats else torch.zeros(0, f_width, dtype=dtype)
        self.species = torch.cat(species) if species else torch.zeros(0, dtype=torch.long)
        self.forces = (torch.cat(forces) if forces else torch.zeros(0, 3, dtype=torch.float64)
                       ).to(self.device)
        z = torch.zeros(0, dtype=torch.long, device=self.device)
        self.centers = torch.cat(centers) if centers else z
        self.neighbours = torch.cat(neigh) if neigh else z
        self.radial = (torch.cat(radial) if radial else
                       torch.zeros(0, self.radial_columns.numel(), dtype=jacobian_dtype))
        self.unit = torch.cat(unit) if unit else torch.zeros(0, 3, dtype=jacobian_dtype)
        self.vector_pairs = torch.cat(vpairs) if vpairs else z
        self.vector = (torch.cat(vector) if vector else
                       torch.zeros(0, self.vector_columns.numel(), 3, dtype=jacobian_dtype))
        self.n_pairs = torch.as_tensor(n_pairs, device=self.device)
        self.n_vpairs = torch.as_tensor(n_vpairs, device=self.device)
        zero = torch.zeros(1, dtype=torch.long, device=self.device)
        self.pair_offsets = torch.cat([zero, torch.cumsum(self.n_pairs, 0)])
        self.vpair_offsets = torch.cat([zero, torch.cumsum(self.n_vpairs, 0)])
        self._full: TrainingBatch | None = None

    def __len__(self) -> int:
        return int(self.n_atoms.numel())

    @property
    def n_force_structures(self) -> int:
        return int(self.force_mask.sum())

    def memory_bytes(self) -> int:
        ts = [self.features, self.radial, self.unit, self.vector, self.centers, self.neighbours,
              self.vector_pairs, self.forces]
        return sum(t.numel() * t.element_size() for t in ts)

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

        npair = self.n_pairs[idx]
        jac = None
        if int(npair.sum()) > 0:
            pair_idx = _ranges(self.pair_offsets[idx], npair)
            pair_struct = torch.repeat_interleave(torch.arange(b, device=self.device), npair)
            shift = batch_atom_start[pair_struct]
            nv = self.n_vpairs[idx]
            v_idx = _ranges(self.vpair_offsets[idx], nv)
            v_struct = torch.repeat_interleave(torch.arange(b, device=self.device), nv)
            batch_pair_start = torch.cumsum(npair, 0) - npair
            jac = PairJacobian(
                radial_columns=self.radial_columns, radial=self.radial[pair_idx],
                unit_vectors=self.unit[pair_idx], vector_columns=self.vector_columns,
                vector_pairs=self.vector_pairs[v_idx] + batch_pair_start[v_struct],
                vector=self.vector[v_idx], centers=self.centers[pair_idx] + shift,
                neighbours=self.neighbours[pair_idx] + shift)
        return TrainingBatch(
            features=self.features[atom_idx], species=self.species[atom_idx],
            structure_index=struct, n_atoms=nat, energy=self.energy[idx], forces=forces,
            force_atoms=force_atoms, jacobian=jac)
