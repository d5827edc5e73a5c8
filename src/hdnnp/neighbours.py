"""Neighbour lists and batches of structures.

Neighbour lists come from `vesin <https://github.com/Luthaf/vesin>`_ (a fast cell-list
implementation with periodic boundary conditions along any subset of the cell
vectors).  Several structures are packed into one :class:`StructureBatch`, the unit
on which descriptors and models work: atoms of all structures are concatenated and
the pair list holds, for every atom *i*, every neighbour *j* (including periodic
images, and *i*'s own images) closer than the cutoff, as a *full* list (both i→j and
j→i).  Pair vectors are rebuilt from positions and cells with torch operations,

.. math:: \\mathbf d_{p} = \\mathbf x_j - \\mathbf x_i + \\mathbf S_p \\cdot \\mathbf h,

(:math:`\\mathbf S_p` integer cell shifts, :math:`\\mathbf h` the cell matrix with
vectors in rows) so that derivatives with respect to positions (forces) and cell
(stress) follow from automatic differentiation.  Lengths in Å.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields

import numpy as np
import torch
from ase import Atoms

from hdnnp.errors import HdnnpError


@dataclass
class StructureBatch:
    """Several structures packed for vectorised evaluation (all lengths in Å)."""

    positions: torch.Tensor  #: [N, 3] Cartesian positions
    cells: torch.Tensor  #: [B, 3, 3] cell vectors in rows (zeros for non-periodic)
    species: torch.Tensor  #: [N] element index into the model's element list
    structure_index: torch.Tensor  #: [N] structure each atom belongs to
    n_atoms: torch.Tensor  #: [B] atoms per structure
    centers: torch.Tensor  #: [P] index of atom i of each pair (sorted ascending, then by
    #: the element of j)
    neighbours: torch.Tensor  #: [P] index of atom j of each pair
    cell_shifts: torch.Tensor  #: [P, 3] integer cell shifts S (stored as floats)

    @property
    def n_structures(self) -> int:
        return int(self.n_atoms.shape[0])

    @property
    def n_total_atoms(self) -> int:
        return int(self.positions.shape[0])

    def pair_vectors(
        self, positions: torch.Tensor | None = None, cells: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Vectors d_p = x_j - x_i + S_p h for all pairs ([P, 3], Å)."""
        pos = self.positions if positions is None else positions
        cell = self.cells if cells is None else cells
        pair_cell = cell[self.structure_index[self.centers]]
        shift = torch.einsum("pk,pkl->pl", self.cell_shifts.to(pos.dtype), pair_cell)
        return pos[self.neighbours] - pos[self.centers] + shift

    def to(self, device=None, dtype=None) -> StructureBatch:
        """A copy on ``device`` with floating tensors in ``dtype``."""
        out = {}
        for f in fields(self):
            t = getattr(self, f.name)
            if t.is_floating_point():
                t = t.to(device=device, dtype=dtype or t.dtype)
            else:
                t = t.to(device=device)
            out[f.name] = t
        return StructureBatch(**out)


def species_indices(atoms: Atoms, elements: Sequence[str], source: str = "structure") -> np.ndarray:
    """Map chemical symbols of ``atoms`` to indices in ``elements``; unknown ones are an error."""
    index = {e: k for k, e in enumerate(elements)}
    symbols = atoms.get_chemical_symbols()
    try:
        return np.fromiter((index[s] for s in symbols), dtype=np.int64, count=len(symbols))
    except KeyError:
        unknown = sorted(set(symbols) - set(index))
        raise HdnnpError(
            f"{source} contains element(s) {', '.join(unknown)} that the model does not know "
            f"(model elements: {', '.join(elements)})"
        ) from None


def neighbour_pairs(atoms: Atoms, cutoff: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Full neighbour list (i, j, S) of one structure within ``cutoff`` (Å), sorted by i.

    Periodic directions follow ``atoms.pbc``; a structure without any periodic
    direction needs no cell.
    """
    from vesin import NeighborList

    positions = np.ascontiguousarray(atoms.get_positions(), dtype=np.float64)
    pbc = np.asarray(atoms.pbc, dtype=bool)
    if pbc.any():
        box = np.ascontiguousarray(atoms.cell.array, dtype=np.float64)
        if abs(np.linalg.det(box)) < 1e-10:
            raise HdnnpError(
                "a periodic structure needs three linearly independent cell vectors "
                f"(got cell {box.tolist()}, pbc {pbc.tolist()})"
            )
    else:
        box = np.zeros((3, 3))
    if len(atoms) == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, np.zeros((0, 3), dtype=np.int64)
    nl = NeighborList(cutoff=float(cutoff), full_list=True)
    i, j, s = nl.compute(points=positions, box=box, periodic=pbc.tolist() if pbc.any() else False,
                         quantities="ijS")
    i = np.asarray(i, dtype=np.int64)
    order = np.argsort(i, kind="stable")
    return i[order], np.asarray(j, dtype=np.int64)[order], np.asarray(s, dtype=np.int64)[order]


def build_batch(
    structures: Sequence[Atoms],
    elements: Sequence[str],
    cutoff: float,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
    names: Sequence[str] | None = None,
) -> StructureBatch:
    """Pack ``structures`` into a :class:`StructureBatch` with pairs within ``cutoff`` (Å)."""
    pos, cells, spec, sidx, nat, ci, cj, sh = [], [], [], [], [], [], [], []
    offset = 0
    for b, atoms in enumerate(structures):
        name = names[b] if names is not None else f"structure {b}"
        n = len(atoms)
        spec.append(species_indices(atoms, elements, name))
        pos.append(np.asarray(atoms.get_positions(), dtype=np.float64))
        cell = atoms.cell.array if np.asarray(atoms.pbc).any() else np.zeros((3, 3))
        cells.append(np.asarray(cell, dtype=np.float64))
        sidx.append(np.full(n, b, dtype=np.int64))
        nat.append(n)
        i, j, s = neighbour_pairs(atoms, cutoff)
        # the descriptor kernels need each centre's pairs grouped by neighbour element
        order = np.lexsort((spec[-1][j], i))
        i, j, s = i[order], j[order], s[order]
        ci.append(i + offset)
        cj.append(j + offset)
        sh.append(s)
        offset += n

    def cat(arrs, shape, dt):
        return np.concatenate(arrs) if arrs else np.zeros(shape, dtype=dt)

    return StructureBatch(
        positions=torch.as_tensor(cat(pos, (0, 3), np.float64), dtype=dtype, device=device),
        cells=torch.as_tensor(np.stack(cells) if cells else np.zeros((0, 3, 3)), dtype=dtype,
                              device=device),
        species=torch.as_tensor(cat(spec, (0,), np.int64), device=device),
        structure_index=torch.as_tensor(cat(sidx, (0,), np.int64), device=device),
        n_atoms=torch.as_tensor(np.asarray(nat, dtype=np.int64), device=device),
        centers=torch.as_tensor(cat(ci, (0,), np.int64), device=device),
        neighbours=torch.as_tensor(cat(cj, (0,), np.int64), device=device),
        cell_shifts=torch.as_tensor(cat(sh, (0, 3), np.int64), dtype=dtype, device=device),
    )


def segments(reps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(segment index, position within the segment) for ``reps[s]`` entries per segment s.

    The same as ``repeat_interleave(arange(len(reps)), reps)`` plus a local counter, built
    with a scatter and a cumulative sum: torch's CPU ``repeat_interleave`` always runs
    multi-threaded, which costs milliseconds per call on a busy machine.
    """
    device = reps.device
    starts = torch.cumsum(reps, 0) - reps
    total = int(reps.sum()) if reps.numel() else 0
    if total == 0:
        empty = torch.zeros(0, dtype=torch.long, device=device)
        return empty, empty
    nz = torch.nonzero(reps).squeeze(1)
    marks = torch.zeros(total, dtype=torch.long, device=device)
    marks[starts[nz]] = torch.diff(nz, prepend=nz.new_zeros(1))
    seg = torch.cumsum(marks, 0)
    return seg, torch.arange(total, device=device) - starts[seg]


def triplet_pairs(centers: torch.Tensor, n_atoms: int) -> tuple[torch.Tensor, torch.Tensor]:
    """All unordered pairs (a, b), a < b, of list entries that share their centre atom.

    ``centers`` must be sorted ascending.  Returns two index tensors into ``centers``;
    the triplet (i; j, k) is (centers[a]; neighbour of a, neighbour of b).  Built with
    vectorised index arithmetic (no Python loop over atoms).
    """
    if centers.numel() == 0:
        empty = torch.zeros(0, dtype=torch.long, device=centers.device)
        return empty, empty
    counts = torch.bincount(centers, minlength=n_atoms)
    start = torch.cumsum(counts, 0) - counts
    local = torch.arange(centers.numel(), device=centers.device) - start[centers]
    a, offset = segments(counts[centers] - 1 - local)
    return a, a + 1 + offset
