r"""Data augmentation (thesis §4.2.2, §4.3.1, §5.2; ænet's TiO₂ recipe, Artrith & Urban 2016).

Operations (each returns a new ``Atoms`` with the operation recorded in ``info``):

* :func:`scale` — lattice vectors and coordinates multiplied by 1 + s, s ∈ [−0.1, 0.1]
  (thesis: "scaling the lattice vectors and coordinates by ±10 %").  All interatomic
  vectors scale by 1 + s.  Sheets keep their cell height (the vacuum must stay the
  same for every sheet, see :mod:`hdnnp.reference_data.structures`): the in-plane
  vectors and the coordinates relative to the sheet's centre scale, the third vector
  does not.
* :func:`monoclinic_tilt` — volume-conserving monoclinic strain (ænet's "gradually
  tilting the crystal"): with engineering shear δ,

  .. math:: \varepsilon = \begin{pmatrix} 0 & \delta/2 & 0 \\ \delta/2 & 0 & 0 \\
            0 & 0 & \delta^2/(4-\delta^2) \end{pmatrix},\qquad
            \det(1+\varepsilon) = 1.

  For sheets the in-plane block is normalised instead, :math:`F_{2\times2} =
  (1 + \varepsilon_{2\times2})/\sqrt{1-\delta^2/4}`, which conserves the area.
* :func:`uniaxial_strain` — stretch/compress along one cell direction by 1 + ε
  (ænet's "compressed in one crystal dimension"); with ``conserve_volume=True`` the
  two perpendicular directions are scaled by :math:`(1+\varepsilon)^{-1/2}`.
* :func:`rattle` — Gaussian random displacements (thesis §6.1.2's "random
  fluctuations").

Deformations act on Cartesian space as x → F x for cell and positions, so fractional
coordinates are kept.

Recipes:

* :func:`random_scalings` — k factors per structure drawn uniformly from
  [−0.1, 0.1] (thesis §4.3.1: k = 10); :func:`grid_scalings` — a fixed grid (thesis
  §4.2.2: {−0.10, −0.05, 0, 0.05, 0.10}).
* :func:`dataset_a` — data set A: MD snapshots only (thesis §5.1.1).
* :func:`dataset_b` — data set B: 80 % drawn from the scaled MD snapshots, 20 % from
  the unscaled ones (thesis §4.3.1 steps 1–4, §5.2).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
from ase import Atoms

from hdnnp.errors import HdnnpError
from hdnnp.reference_data.structures import is_sheet

#: Thesis §4.2.2 grid of scaling factors.
THESIS_SCALE_GRID = (-0.10, -0.05, 0.0, 0.05, 0.10)


def _rng(seed) -> np.random.Generator:
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


def _deform(atoms: Atoms, F: np.ndarray, info: dict) -> Atoms:
    """Apply x → F x to cell and positions (fractional coordinates unchanged)."""
    out = atoms.copy()
    out.calc = None
    frac = atoms.get_scaled_positions(wrap=False)
    out.set_cell(atoms.cell.array @ F.T, scale_atoms=False)
    out.set_scaled_positions(frac)
    out.info.update(info)
    return out


def scale(atoms: Atoms, factor: float) -> Atoms:
    """Scale lattice vectors and coordinates by 1 + ``factor`` (sheets: keep the cell height)."""
    s = 1.0 + float(factor)
    if s <= 0:
        raise HdnnpError(f"scale factor must be > −1, got {factor}")
    info = {"augmentation": "scale", "scale_factor": float(factor)}
    if not is_sheet(atoms):
        return _deform(atoms, s * np.eye(3), info)
    out = atoms.copy()
    out.calc = None
    cell = atoms.cell.array.copy()
    frac = atoms.get_scaled_positions(wrap=False)
    n = np.cross(cell[0], cell[1])
    n /= np.linalg.norm(n)
    z = atoms.positions @ n
    zc = 0.5 * (z.max() + z.min())
    new_cell = cell.copy()
    new_cell[:2] *= s
    out.set_cell(new_cell, scale_atoms=False)
    pos = frac[:, :1] * new_cell[0] + frac[:, 1:2] * new_cell[1]
    # height above the cell origin, scaled about the sheet's centre
    pos += np.outer(zc + s * (z - zc), n)
    out.positions = pos
    out.info.update(info)
    return out


def monoclinic_tilt(atoms: Atoms, delta: float) -> Atoms:
    """Volume-conserving monoclinic strain with engineering shear ``delta`` (xy plane)."""
    d = float(delta)
    if abs(d) >= 2.0:
        raise HdnnpError(f"monoclinic shear must satisfy |δ| < 2, got {d}")
    F = np.eye(3)
    F[0, 1] = F[1, 0] = 0.5 * d
    if is_sheet(atoms):
        F[:2, :2] /= np.sqrt(1.0 - 0.25 * d * d)
    else:
        F[2, 2] += d * d / (4.0 - d * d)
    return _deform(atoms, F, {"augmentation": "tilt", "tilt_shear": d})


def uniaxial_strain(atoms: Atoms, strain: float, axis: int = 0,
                    conserve_volume: bool = False) -> Atoms:
    """Stretch (ε > 0) or compress (ε < 0) along cell vector ``axis`` by 1 + ε.

    The strain acts along the unit vector of cell vector ``axis``; with
    ``conserve_volume`` the perpendicular directions shrink by (1 + ε)^(−1/2).
    Sheets may only be strained in plane (axis 0 or 1); their area-conserving variant
    compensates only the in-plane perpendicular direction, by (1 + ε)^(−1).
    """
    e = float(strain)
    if e <= -1.0:
        raise HdnnpError(f"uniaxial strain must be > −1, got {e}")
    if axis not in (0, 1, 2):
        raise HdnnpError(f"axis must be 0, 1 or 2, got {axis}")
    sheet = is_sheet(atoms)
    if sheet and axis == 2:
        raise HdnnpError("a sheet can only be strained in plane (axis 0 or 1)")
    u = atoms.cell.array[axis] / np.linalg.norm(atoms.cell.array[axis])
    P = np.outer(u, u)
    F = np.eye(3) + e * P
    if conserve_volume:
        if sheet:
            n = np.cross(atoms.cell[0], atoms.cell[1])
            n /= np.linalg.norm(n)
            w = np.cross(n, u)
            F = F + ((1.0 + e) ** -1.0 - 1.0) * np.outer(w, w)
        else:
            F = F + ((1.0 + e) ** -0.5 - 1.0) * (np.eye(3) - P)
    return _deform(atoms, F, {"augmentation": "uniaxial", "uniaxial_strain": e,
                              "uniaxial_axis": int(axis)})


def rattle(atoms: Atoms, stdev: float = 0.05, seed=None) -> Atoms:
    """Displace every atom by a Gaussian random vector (σ = ``stdev`` Å per component)."""
    if stdev < 0:
        raise HdnnpError("rattle amplitude must be ≥ 0")
    out = atoms.copy()
    out.calc = None
    out.positions = atoms.positions + _rng(seed).normal(0.0, stdev, size=(len(atoms), 3))
    out.info.update({"augmentation": "rattle", "rattle_stdev_A": float(stdev)})
    return out


def _tag_parent(child: Atoms, parent_index: int) -> Atoms:
    child.info["parent_index"] = int(parent_index)
    return child


def random_scalings(structures: Sequence[Atoms], k: int = 10, low: float = -0.10,
                    high: float = 0.10, seed=0) -> list[Atoms]:
    """Each structure scaled by ``k`` factors drawn uniformly from [low, high] (thesis §4.3.1)."""
    if k < 1:
        raise HdnnpError("k must be ≥ 1")
    if not low < high:
        raise HdnnpError(f"empty scaling interval [{low}, {high}]")
    rng = _rng(seed)
    factors = rng.uniform(low, high, size=(len(structures), k))
    return [_tag_parent(scale(a, float(f)), i)
            for i, a in enumerate(structures) for f in factors[i]]


def grid_scalings(structures: Sequence[Atoms], factors: Iterable[float] = THESIS_SCALE_GRID
                  ) -> list[Atoms]:
    """Each structure scaled by every factor of a fixed grid (thesis §4.2.2)."""
    factors = [float(f) for f in factors]
    return [_tag_parent(scale(a, f), i) for i, a in enumerate(structures) for f in factors]


def tilts(structures: Sequence[Atoms], deltas: Iterable[float]) -> list[Atoms]:
    """Each structure with every monoclinic shear of ``deltas``."""
    deltas = [float(d) for d in deltas]
    return [_tag_parent(monoclinic_tilt(a, d), i) for i, a in enumerate(structures)
            for d in deltas]


def uniaxial_strains(structures: Sequence[Atoms], strains: Iterable[float], axis: int = 0,
                     conserve_volume: bool = False) -> list[Atoms]:
    """Each structure with every uniaxial strain of ``strains`` along ``axis``."""
    strains = [float(e) for e in strains]
    return [_tag_parent(uniaxial_strain(a, e, axis, conserve_volume), i)
            for i, a in enumerate(structures) for e in strains]


def rattles(structures: Sequence[Atoms], k: int = 1, stdev: float = 0.05, seed=0
            ) -> list[Atoms]:
    """``k`` rattled copies of each structure."""
    rng = _rng(seed)
    return [_tag_parent(rattle(a, stdev, rng), i) for i, a in enumerate(structures)
            for _ in range(k)]


def _draw(structures: Sequence[Atoms], n: int, rng: np.random.Generator, what: str
          ) -> list[Atoms]:
    if n > len(structures):
        raise HdnnpError(f"cannot draw {n} {what} structures from {len(structures)}")
    idx = np.sort(rng.choice(len(structures), size=n, replace=False))
    return [structures[i] for i in idx]


def dataset_a(md_structures: Sequence[Atoms], n: int | None = None, seed=0) -> list[Atoms]:
    """Data set A: ``n`` MD snapshots drawn without replacement (all if ``n`` is None)."""
    rng = _rng(seed)
    chosen = list(md_structures) if n is None else _draw(md_structures, n, rng, "MD")
    out = []
    for a in chosen:
        b = a.copy()
        b.info["dataset"] = "A"
        b.info.setdefault("augmentation", "none")
        out.append(b)
    return out


def dataset_b(md_structures: Sequence[Atoms], n: int, augmented_fraction: float = 0.8,
              k: int = 10, low: float = -0.10, high: float = 0.10, seed=0) -> list[Atoms]:
    """Data set B: ``augmented_fraction`` of ``n`` from scaled MD snapshots, the rest MD.

    Thesis §4.3.1: (1) MD snapshots at several temperatures; (2) every snapshot scaled
    by ``k`` factors drawn uniformly from [low, high]; (3) 80 % of the data drawn from
    the scaled structures; (4) 20 % drawn from the unscaled snapshots.  The two parts
    are drawn independently, so a snapshot may appear both unscaled and scaled (as in
    the thesis).  Returns the MD part first, then the augmented part.
    """
    if not 0.0 <= augmented_fraction <= 1.0:
        raise HdnnpError("augmented fraction must be in [0, 1]")
    rng = _rng(seed)
    n_aug = round(augmented_fraction * n)
    n_md = n - n_aug
    # index snapshots so that scaled copies can name their parent
    md = []
    for i, a in enumerate(md_structures):
        b = a.copy()
        b.info.setdefault("md_index", i)
        md.append(b)
    scaled = random_scalings(md, k=k, low=low, high=high, seed=rng)
    part_md = _draw(md, n_md, rng, "MD")
    part_aug = _draw(scaled, n_aug, rng, "augmented")
    out = []
    for a in part_md:
        b = a.copy()
        b.info.update({"dataset": "B", "augmentation": "none", "scale_factor": 0.0})
        out.append(b)
    for a in part_aug:
        b = a.copy()
        b.info["dataset"] = "B"
        out.append(b)
    return out
