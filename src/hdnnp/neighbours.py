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
        s = self.cell_shifts.to(pos.dtype)
        if cell.shape[0] == 1:
            shift = s @ cell[0]
        else:  # Σ_k S_pk h_k: three [P, 3] gathers, not one [P, 3, 3]
            sidx = self.structure_index.index_select(0, self.centers)
            shift = sum(s[:, k, None] * cell[:, k].index_select(0, sidx) for k in range(3))
        return pos.index_select(0, self.neighbours) - pos.index_select(0, self.centers) + shift

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


#: vesin 0.6's cap on the number of cells of its cell list (``MAX_NUMBER_OF_CELLS`` in
#: ``cpu_cell_list.cpp``).  Above it vesin rescales the grid keeping the ratios of the
#: cell counts, which rounds to zero cells for an elongated grid (one atom 10⁶ Å away,
#: a 10⁵ Å chain with a small cutoff) and then divides by zero: SIGFPE.
_VESIN_MAX_CELLS = 1.0e5


def _vesin_grid_is_degenerate(extent: np.ndarray, cutoff: float) -> bool:
    """Whether vesin's cell grid for a box with these face distances (Å) would get zero
    cells along some direction (see ``_VESIN_MAX_CELLS``).

    vesin uses n_k = max(1, trunc(d_k / r_c)) cells; when their product exceeds the cap it
    rescales them to n'_k = (cap n_k³ / Π n)^(1/3), truncating as it goes.  A margin of 4
    covers the truncations and the 1 % padding vesin adds to non-periodic extents.
    """
    n = np.maximum(np.trunc(extent / cutoff), 1.0)
    total = float(np.prod(n))
    if total <= _VESIN_MAX_CELLS:
        return False
    return float(np.min(np.cbrt(_VESIN_MAX_CELLS * n**3 / total))) < 4.0


def _vesin_box(positions: np.ndarray, cell: np.ndarray, pbc: np.ndarray, cutoff: float
               ) -> tuple[np.ndarray, np.ndarray]:
    """A fully periodic box for vesin, and positions translated into it.

    vesin's handling of non-periodic directions (a bounding box of the points) is what
    degenerates for outlying atoms, so every non-periodic direction becomes a periodic one
    instead: ``cell`` comes from :func:`hdnnp.validation.effective_cell` (unit vectors
    orthogonal to the periodic ones), scaled to the atoms' extent along it plus the cutoff
    and 1 Å, so no periodic image along it comes within the cutoff; and to at least an
    eighth of the largest extent, which keeps vesin's grid from degenerating.  Translating
    all atoms changes neither pairs nor cell shifts.
    """
    box = np.array(cell, dtype=np.float64)
    free = ~pbc
    if not free.any():
        return box, positions
    # along a free direction u (orthogonal to the periodic rows) the fractional
    # coordinate is (x · u) / length, so it lies in [0, 1) after the translation
    along = positions @ box[free].T
    low = along.min(axis=0)
    length = np.ptp(along, axis=0) + cutoff + 1.0
    periodic_lengths = np.linalg.norm(box[pbc], axis=1) if pbc.any() else np.zeros(0)
    largest = max(float(length.max()), float(periodic_lengths.max(initial=0.0)))
    length = np.maximum(length, largest / 8.0)
    box[free] *= length[:, None]
    shifted = positions - low @ (box[free] / length[:, None])
    return box, np.ascontiguousarray(shifted)


#: most image points the fallback neighbour list may build (atoms × periodic images)
MAX_IMAGE_POINTS = 20_000_000


def _image_pairs(positions: np.ndarray, cell: np.ndarray, pbc: np.ndarray, cutoff: float,
                 source: str = "structure"):
    """Full pair list by replicating the wrapped atoms over every periodic image that can
    hold a neighbour and querying a k-d tree (SciPy), for the cell shapes vesin's grid
    cannot handle (a cell 10⁵ Å long and 0.2 Å thin, say: ASE's list took minutes and
    gigabytes on those).

    Positions are wrapped into the cell along periodic directions, x_i = w_i + o_i h;
    along periodic direction k, images up to n_k = ⌈r_c/t_k⌉ (t_k: the distance between
    the cell's faces) hold every neighbour, and an image w_j + s h of atom j is the pair
    shift S = s − o_j + o_i of the unwrapped positions.  The work is bounded by
    :data:`MAX_IMAGE_POINTS` (refused beyond; the validation layer has bounded the
    density already).
    """
    import itertools

    from scipy.spatial import cKDTree

    from hdnnp.validation import cell_thickness

    n = len(positions)
    h = np.asarray(cell, dtype=np.float64)
    counts = [int(np.ceil(cutoff / t)) if p else 0 for t, p in zip(cell_thickness(h), pbc)]
    n_images = int(np.prod([2 * m + 1 for m in counts]))
    if n * n_images > MAX_IMAGE_POINTS:
        raise HdnnpError(f"{source}: the periodic cell is too thin for a {cutoff:g} Å cutoff: "
                         f"{n_images} periodic images of {n} atoms would be needed")
    frac = positions @ np.linalg.inv(h)
    offsets = np.where(pbc, np.floor(frac), 0.0).astype(np.int64)
    wrapped = positions - offsets @ h
    shifts = np.array(list(itertools.product(*[range(-m, m + 1) for m in counts])),
                      dtype=np.int64).reshape(-1, 3)
    points = (wrapped[None, :, :] + (shifts @ h)[:, None, :]).reshape(-1, 3)
    found = cKDTree(points).query_ball_point(wrapped, cutoff, return_sorted=True)
    i = np.repeat(np.arange(n), [len(f) for f in found])
    k = np.fromiter(itertools.chain.from_iterable(found), dtype=np.int64, count=len(i))
    j, image = k % n, k // n
    keep = (j != i) | (shifts[image] != 0).any(1)
    i, j, image = i[keep], j[keep], image[keep]
    return i, j, shifts[image] - offsets[j] + offsets[i]


def _free_groups(positions: np.ndarray, cell: np.ndarray, pbc: np.ndarray,
                 cutoff: float) -> list[np.ndarray]:
    """Indices of groups of atoms with no pair between groups: along each non-periodic
    direction, a gap wider than the cutoff separates groups (split recursively).  An
    outlying atom thus becomes a group of its own instead of stretching the grid."""
    along = positions @ cell[~pbc].T  # coordinates along the free unit vectors
    todo, done = [np.arange(len(positions))], []
    while todo:
        idx = todo.pop()
        for k in range(along.shape[1]):
            order = idx[np.argsort(along[idx, k], kind="stable")]
            cuts = np.flatnonzero(np.diff(along[order, k]) > cutoff) + 1
            if cuts.size:
                todo.extend(np.split(order, cuts))
                break
        else:
            done.append(np.sort(idx))
    return done


def _pairs_of_group(positions: np.ndarray, cell: np.ndarray, pbc: np.ndarray, cutoff: float,
                    source: str = "structure"):
    """(i, j, S) of one group of atoms: vesin on a fully periodic box, or
    :func:`_image_pairs` for the grid shapes vesin cannot handle."""
    from vesin import NeighborList

    from hdnnp.validation import cell_thickness

    box, shifted = _vesin_box(positions, cell, pbc, cutoff)
    if _vesin_grid_is_degenerate(cell_thickness(box), cutoff):
        return _image_pairs(positions, cell, pbc, cutoff, source)
    positions = shifted
    nl = NeighborList(cutoff=cutoff, full_list=True)
    i, j, s = nl.compute(points=positions, box=box, periodic=True, quantities="ijS")
    s = np.asarray(s, dtype=np.int64).reshape(-1, 3)
    if not pbc.all():  # images along padded directions are beyond the cutoff
        keep = ~(s[:, ~pbc] != 0).any(axis=1)
        i, j, s = np.asarray(i)[keep], np.asarray(j)[keep], s[keep]
    return np.asarray(i, dtype=np.int64), np.asarray(j, dtype=np.int64), s


def neighbour_pairs(atoms: Atoms, cutoff: float, source: str | None = None
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Full neighbour list (i, j, S) of one structure within ``cutoff`` (Å), sorted by i.

    Periodic directions follow ``atoms.pbc``; a structure without any periodic
    direction needs no cell.

    This is the last line of defence before compiled code: the cutoff
    (:func:`hdnnp.validation.check_cutoff`) and the geometry
    (:func:`hdnnp.validation.check_geometry`: finite, bounded positions and cell, a
    non-degenerate periodic cell) are checked first, O(N) NumPy work, and refused with an
    :class:`~hdnnp.errors.HdnnpError` naming ``source`` (default ``atoms.info["source"]``);
    so is a pair closer than :data:`hdnnp.validation.MIN_DISTANCE` (O(pairs), found in the
    list itself), whose descriptors would be NaN, and an atom with more than
    :data:`hdnnp.validation.MAX_NEIGHBOURS_PER_ATOM` neighbours.
    vesin kills the process with SIGFPE on a NaN, inf or 1e300 cell and on grids it cannot
    subdivide; structures of such a shape use :func:`_image_pairs` instead.
    """
    from hdnnp.validation import (
        MAX_NEIGHBOURS_PER_ATOM,
        MIN_DISTANCE,
        cell_thickness,
        check_cutoff,
        check_geometry,
        effective_cell,
        too_close_error,
    )

    if source is None:
        source = str(atoms.info.get("source", "structure"))
    rc = check_cutoff(cutoff, source)
    positions = np.ascontiguousarray(atoms.get_positions(), dtype=np.float64)
    pbc = np.asarray(atoms.pbc, dtype=bool)
    check_geometry(positions, atoms.cell.array, pbc, source, cutoff=rc, volume_per_atom=False)
    if len(atoms) == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, np.zeros((0, 3), dtype=np.int64)
    cell = effective_cell(atoms.cell.array, pbc)
    if pbc.all() or not _vesin_grid_is_degenerate(
            cell_thickness(_vesin_box(positions, cell, pbc, rc)[0]), rc):
        parts = [_pairs_of_group(positions, cell, pbc, rc, source)]
    else:  # an outlying atom: split the structure at gaps wider than the cutoff
        parts = [(idx[gi], idx[gj], gs) for idx in _free_groups(positions, cell, pbc, rc)
                 for gi, gj, gs in [_pairs_of_group(positions[idx], cell, pbc, rc, source)]]
    i = np.concatenate([p[0] for p in parts]).astype(np.int64)
    j = np.concatenate([p[1] for p in parts]).astype(np.int64)
    s = np.concatenate([p[2] for p in parts]).reshape(-1, 3)
    order = np.argsort(i, kind="stable")
    i, j, s = i[order], j[order], np.asarray(s, dtype=np.int64)[order]
    if len(i):
        counts = np.bincount(i, minlength=len(atoms))
        worst = int(np.argmax(counts))
        if counts[worst] > MAX_NEIGHBOURS_PER_ATOM:
            raise HdnnpError(f"{source}: atom {worst + 1} has {int(counts[worst])} neighbours "
                             f"within {rc:g} Å (at most {MAX_NEIGHBOURS_PER_ATOM}; a wrong "
                             "unit, a collapsed cell or copies of atoms?)")
        # two atoms (or an atom and its image) on top of each other: NaN descriptors
        d2 = ((positions[j] + s @ cell - positions[i]) ** 2).sum(1)
        k = int(np.argmin(d2))
        if d2[k] < MIN_DISTANCE**2:
            a, b = sorted((int(i[k]), int(j[k])))
            raise too_close_error(source, a, b, float(np.sqrt(d2[k])))
    return i, j, s


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
        name = names[b] if names is not None else str(atoms.info.get("source", f"structure {b}"))
        n = len(atoms)
        spec.append(species_indices(atoms, elements, name))
        pos.append(np.asarray(atoms.get_positions(), dtype=np.float64))
        cell = atoms.cell.array if np.asarray(atoms.pbc).any() else np.zeros((3, 3))
        cells.append(np.asarray(cell, dtype=np.float64))
        sidx.append(np.full(n, b, dtype=np.int64))
        nat.append(n)
        i, j, s = neighbour_pairs(atoms, cutoff, name)
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
