r"""Structure builders for the thesis materials, from published lattice parameters.

Every builder returns an ASE ``Atoms`` in Å, 3D-periodic (sheets are periodic slabs
with vacuum, as tblite, DFTB+ and plane-wave codes need), with ``atoms.info``
recording ``material``, ``dimensionality`` (2 or 3, 0 for molecules), ``repeat`` and
the literature source of the parameters.  Supercells of any size: ``repeat=(n1, n2,
n3)`` (sheets ignore ``n3``).

Sheets (graphene, hBN, the silica bilayer) share one fixed cell height
:data:`SHEET_CELL_HEIGHT` = 20 Å: GFN1-xTB energies of a sheet depend on the vacuum
(hBN moves by 23 meV/atom between 10 and 30 Å of vacuum), so every sheet in a data
set must use the same height.  Augmentation and high-pressure sampling scale only
the in-plane cell vectors of sheets for the same reason.

Sources of the lattice parameters (room temperature unless stated):

=============  ====================================================================
graphene       a = 2.4612 Å, in-plane constant of graphite; Baskin & Meyer,
               Phys. Rev. 100, 544 (1955).  d(C–C) = a/√3 = 1.421 Å.
hBN            a = 2.5040 Å, in-plane constant of h-BN; Paszkowicz et al.,
               Appl. Phys. A 75, 431 (2002).  d(B–N) = a/√3 = 1.446 Å.
diamond        a = 3.5671 Å, Fd-3m; Holloway et al., Phys. Rev. B 44, 7123 (1991).
               d(C–C) = a√3/4 = 1.5446 Å, ρ = 3.515 g/cm³.
cBN            a = 3.6157 Å, F-43m (zincblende); Eremets et al., Phys. Rev. B 52,
               8854 (1995) (and Wentorf, J. Chem. Phys. 26, 956 (1957): 3.615 Å).
               d(B–N) = 1.5657 Å, ρ = 3.48 g/cm³.
α-quartz       P3₂21, a = 4.9160 Å, c = 5.4054 Å, Si (0.4697, 0, 0),
               O (0.4135, 0.2669, 0.1191); Levien, Prewitt & Weidner, Am. Mineral.
               65, 920 (1980).  d(Si–O) = 1.605, 1.614 Å, ρ = 2.648 g/cm³.
silica         hexagonal SiO₂ bilayer (Si₄O₈ per cell, p6mm): two sheets of
bilayer        corner-sharing SiO₄ tetrahedra pointing at each other, joined by
               bridging O in the mirror plane; a = 5.30 Å and d(Si–O) = 1.62 Å
               (free-standing bilayer from DFT; Löffler et al., Phys. Rev. Lett.
               105, 146104 (2010); Björkman et al., Sci. Rep. 3, 3482 (2013)).
rutile         P4₂/mnm, a = 4.5937 Å, c = 2.9587 Å, O (u, u, 0), u = 0.30478;
               Burdett et al., J. Am. Chem. Soc. 109, 3639 (1987), 295 K.
               ρ = 4.25 g/cm³, d(Ti–O) = 1.949 (×4), 1.980 (×2) Å.
anatase        I4₁/amd (origin choice 1), a = 3.7845 Å, c = 9.5143 Å, Ti (0, 0, 0),
               O (0, 0, z), z = 0.20806; Burdett et al. (1987), 295 K.
               ρ = 3.89 g/cm³, d(Ti–O) = 1.934 (×4), 1.980 (×2) Å.
brookite       Pbca, a = 9.174 Å, b = 5.449 Å, c = 5.138 Å, Ti (0.1289, 0.0972,
               0.8628), O1 (0.0095, 0.1491, 0.1835), O2 (0.2314, 0.1110, 0.5366);
               Meagher & Lager, Can. Mineral. 17, 77 (1979).  ρ = 4.12 g/cm³.
H₂             r_e = 0.74144 Å; Huber & Herzberg, Constants of Diatomic Molecules
               (1979).  In a 20 Å cubic box, not periodic.
=============  ====================================================================

Structures come from the literature rather than from the Materials Project (which
the thesis used, §3.1): the numbers are then citable and need no network access.
Relax them with the reference method (:func:`relax`) before sampling if the
method's equilibrium differs (GFN1-xTB's graphene lattice constant is ≈ 1 % off).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from ase import Atoms
from ase.spacegroup import crystal

from hdnnp.errors import HdnnpError

#: Cell height (Å) of every 2D sheet: one fixed value keeps sheet energies comparable.
SHEET_CELL_HEIGHT: float = 20.0

#: Published lattice parameters used by the builders (Å); see the module docstring.
LATTICE = {
    "graphene": {"a": 2.4612},
    "hbn": {"a": 2.5040},
    "diamond": {"a": 3.5671},
    "cbn": {"a": 3.6157},
    "quartz": {"a": 4.9160, "c": 5.4054},
    "silica-bilayer": {"a": 5.30, "d_sio": 1.62},
    "rutile": {"a": 4.5937, "c": 2.9587, "u": 0.30478},
    "anatase": {"a": 3.7845, "c": 9.5143, "z": 0.20806},
    "brookite": {"a": 9.174, "b": 5.449, "c": 5.138},
    "h2": {"r": 0.74144},
}


def _finish(atoms: Atoms, material: str, dim: int, repeat: Sequence[int], source: str) -> Atoms:
    rep = tuple(int(n) for n in repeat)
    if any(n < 1 for n in rep):
        raise HdnnpError(f"supercell repeats must be positive integers, got {rep}")
    if dim == 2:
        rep = (rep[0], rep[1], 1)
    atoms = atoms.repeat(rep)
    atoms.wrap()
    atoms.info.update({"material": material, "dimensionality": dim,
                       "repeat": "x".join(map(str, rep)), "structure_source": source})
    return atoms


def _hexagonal_sheet(symbols: Sequence[str], a: float, height: float) -> Atoms:
    """Honeycomb sheet (graphene/hBN) at mid-height of a cell with c = ``height``."""
    cell = np.array([[a, 0.0, 0.0], [-0.5 * a, 0.5 * np.sqrt(3.0) * a, 0.0], [0, 0, height]])
    frac = np.array([[1.0 / 3.0, 2.0 / 3.0, 0.5], [2.0 / 3.0, 1.0 / 3.0, 0.5]])
    return Atoms(list(symbols), scaled_positions=frac, cell=cell, pbc=True)


def graphene(repeat: Sequence[int] = (1, 1, 1), a: float | None = None,
             height: float = SHEET_CELL_HEIGHT) -> Atoms:
    """Graphene monolayer, 2 atoms per cell; a = 2.4612 Å (Baskin & Meyer 1955)."""
    a = LATTICE["graphene"]["a"] if a is None else a
    return _finish(_hexagonal_sheet(["C", "C"], a, height), "graphene", 2, repeat,
                   "Baskin & Meyer, Phys. Rev. 100, 544 (1955)")


def hbn(repeat: Sequence[int] = (1, 1, 1), a: float | None = None,
        height: float = SHEET_CELL_HEIGHT) -> Atoms:
    """Hexagonal BN monolayer, 2 atoms per cell; a = 2.5040 Å (Paszkowicz et al. 2002)."""
    a = LATTICE["hbn"]["a"] if a is None else a
    return _finish(_hexagonal_sheet(["B", "N"], a, height), "hbn", 2, repeat,
                   "Paszkowicz et al., Appl. Phys. A 75, 431 (2002)")


def diamond(repeat: Sequence[int] = (1, 1, 1), a: float | None = None) -> Atoms:
    """Cubic diamond, 8 atoms per conventional cell; a = 3.5671 Å (Holloway et al. 1991)."""
    a = LATTICE["diamond"]["a"] if a is None else a
    at = crystal("C", [(0, 0, 0)], spacegroup=227, cellpar=[a, a, a, 90, 90, 90])
    return _finish(at, "diamond", 3, repeat, "Holloway et al., Phys. Rev. B 44, 7123 (1991)")


def cbn(repeat: Sequence[int] = (1, 1, 1), a: float | None = None) -> Atoms:
    """Cubic BN (zincblende), 8 atoms per conventional cell; a = 3.6157 Å."""
    a = LATTICE["cbn"]["a"] if a is None else a
    at = crystal(["B", "N"], [(0, 0, 0), (0.25, 0.25, 0.25)], spacegroup=216,
                 cellpar=[a, a, a, 90, 90, 90])
    return _finish(at, "cbn", 3, repeat, "Eremets et al., Phys. Rev. B 52, 8854 (1995)")


def quartz(repeat: Sequence[int] = (1, 1, 1)) -> Atoms:
    """α-quartz (P3₂21), 9 atoms per cell (Levien, Prewitt & Weidner 1980)."""
    p = LATTICE["quartz"]
    # Levien et al.'s coordinates shifted by c·2/3 to ASE's origin of P3₂21 (No. 154),
    # where Wyckoff 3a is (x, 0, 2/3).
    at = crystal(["Si", "O"], [(0.4697, 0.0, 2.0 / 3.0), (0.4135, 0.2669, 0.1191 + 2.0 / 3.0)],
                 spacegroup=154,
                 cellpar=[p["a"], p["a"], p["c"], 90, 90, 120])
    return _finish(at, "quartz", 3, repeat, "Levien, Prewitt & Weidner, Am. Mineral. 65, 920 "
                   "(1980)")


def silica_bilayer(repeat: Sequence[int] = (1, 1, 1), a: float | None = None,
                   d_sio: float | None = None, height: float = SHEET_CELL_HEIGHT) -> Atoms:
    r"""Hexagonal 2D silica bilayer, Si₄O₈ per cell (12 atoms).

    Each layer is a honeycomb of Si (Si–Si = a/√3) whose tetrahedra point at the mirror
    plane z = 0.  Geometry with ideal bond length d = d(Si–O):

    * apical (mirror-plane) O at z = 0, directly between two Si at z = ±d
      (Si–O–Si = 180°);
    * basal O midway between neighbouring Si, lifted by
      :math:`h = \sqrt{d^2 - (a/2\sqrt3)^2}` so that Si–O = d.  With a = 5.30 Å and
      d = 1.62 Å: h = 0.53 Å, O–Si–O ≈ 109.2° (nearly ideal tetrahedra),
      in-layer Si–O–Si ≈ 141.6°, bilayer thickness 2(d + h) ≈ 4.3 Å.
    """
    p = LATTICE["silica-bilayer"]
    a = p["a"] if a is None else a
    d = p["d_sio"] if d_sio is None else d_sio
    half = a / (2.0 * np.sqrt(3.0))
    if half >= d:
        raise HdnnpError(f"silica bilayer: a = {a} Å too large for d(Si–O) = {d} Å")
    h = np.sqrt(d * d - half * half)
    cell = np.array([[a, 0.0, 0.0], [-0.5 * a, 0.5 * np.sqrt(3.0) * a, 0.0],
                     [0.0, 0.0, height]])
    si_xy = [(1 / 3, 2 / 3), (2 / 3, 1 / 3)]
    o_xy = [(0.5, 0.5), (0.5, 0.0), (0.0, 0.5)]  # midpoints of the three Si–Si bonds
    symbols, frac = [], []
    zc = 0.5 * height
    for sign in (+1.0, -1.0):
        for x, y in si_xy:
            symbols.append("Si")
            frac.append((x, y, (zc + sign * d) / height))
        for x, y in o_xy:
            symbols.append("O")
            frac.append((x, y, (zc + sign * (d + h)) / height))
    for x, y in si_xy:
        symbols.append("O")
        frac.append((x, y, 0.5))
    at = Atoms(symbols, scaled_positions=frac, cell=cell, pbc=True)
    return _finish(at, "silica-bilayer", 2, repeat,
                   "Löffler et al., Phys. Rev. Lett. 105, 146104 (2010)")


def rutile(repeat: Sequence[int] = (1, 1, 1)) -> Atoms:
    """TiO₂ rutile (P4₂/mnm), 6 atoms per cell (Burdett et al. 1987, 295 K)."""
    p = LATTICE["rutile"]
    at = crystal(["Ti", "O"], [(0, 0, 0), (p["u"], p["u"], 0)], spacegroup=136,
                 cellpar=[p["a"], p["a"], p["c"], 90, 90, 90])
    return _finish(at, "rutile", 3, repeat, "Burdett et al., J. Am. Chem. Soc. 109, 3639 (1987)")


def anatase(repeat: Sequence[int] = (1, 1, 1)) -> Atoms:
    """TiO₂ anatase (I4₁/amd), 12 atoms per conventional cell (Burdett et al. 1987)."""
    p = LATTICE["anatase"]
    at = crystal(["Ti", "O"], [(0, 0, 0), (0, 0, p["z"])], spacegroup=141, setting=1,
                 cellpar=[p["a"], p["a"], p["c"], 90, 90, 90])
    return _finish(at, "anatase", 3, repeat, "Burdett et al., J. Am. Chem. Soc. 109, 3639 "
                   "(1987)")


def brookite(repeat: Sequence[int] = (1, 1, 1)) -> Atoms:
    """TiO₂ brookite (Pbca), 24 atoms per cell (Meagher & Lager 1979)."""
    p = LATTICE["brookite"]
    at = crystal(["Ti", "O", "O"], [(0.1289, 0.0972, 0.8628), (0.0095, 0.1491, 0.1835),
                                    (0.2314, 0.1110, 0.5366)], spacegroup=61,
                 cellpar=[p["a"], p["b"], p["c"], 90, 90, 90])
    return _finish(at, "brookite", 3, repeat, "Meagher & Lager, Can. Mineral. 17, 77 (1979)")


def h2(distance: float | None = None, box: float = 20.0) -> Atoms:
    """H₂ dimer along x at ``distance`` (Å; default r_e = 0.74144 Å) in a cubic box."""
    r = LATTICE["h2"]["r"] if distance is None else float(distance)
    if r <= 0:
        raise HdnnpError(f"H2 distance must be positive, got {r}")
    c = 0.5 * box
    at = Atoms("H2", positions=[[c - 0.5 * r, c, c], [c + 0.5 * r, c, c]],
               cell=[box, box, box], pbc=False)
    at.info.update({"material": "h2", "dimensionality": 0, "distance": r,
                    "structure_source": "Huber & Herzberg (1979)"})
    return at


#: Builders by material name (the names used by ``hdnnp build`` and ``hdnnp sample``).
BUILDERS: dict[str, Callable[..., Atoms]] = {
    "graphene": graphene,
    "hbn": hbn,
    "diamond": diamond,
    "cbn": cbn,
    "quartz": quartz,
    "silica-bilayer": silica_bilayer,
    "rutile": rutile,
    "anatase": anatase,
    "brookite": brookite,
    "h2": h2,
}

_ALIASES = {"hBN": "hbn", "h-bn": "hbn", "cBN": "cbn", "c-bn": "cbn", "sio2": "quartz",
            "alpha-quartz": "quartz", "2d-silica": "silica-bilayer", "silica": "silica-bilayer",
            "bilayer": "silica-bilayer", "tio2-rutile": "rutile", "tio2-anatase": "anatase",
            "tio2-brookite": "brookite", "H2": "h2"}


def material_name(name: str) -> str:
    """Canonical material name (case-insensitive, with common aliases)."""
    key = _ALIASES.get(name, _ALIASES.get(name.lower(), name.lower()))
    if key not in BUILDERS:
        raise HdnnpError(f"unknown material {name!r}; known: {', '.join(BUILDERS)}")
    return key


def build(name: str, repeat: Sequence[int] = (1, 1, 1), **kwargs) -> Atoms:
    """Build material ``name`` (see :data:`BUILDERS`) as a ``repeat`` supercell."""
    key = material_name(name)
    if key == "h2":
        return h2(**kwargs)
    return BUILDERS[key](repeat=repeat, **kwargs)


# ------------------------------------------------------------------ geometry helpers
def is_sheet(atoms: Atoms) -> bool:
    """True for a 2D sheet with vacuum along the third cell vector.

    Uses ``atoms.info["dimensionality"]`` when present, otherwise detects a gap of
    more than 6 Å along c in a cell whose c is perpendicular to a and b.
    """
    dim = atoms.info.get("dimensionality")
    if dim is not None:
        return int(dim) == 2
    cell = atoms.cell.array
    if len(atoms) == 0 or not atoms.pbc.all():
        return False
    c = cell[2]
    if abs(np.dot(c, cell[0])) > 1e-6 or abs(np.dot(c, cell[1])) > 1e-6:
        return False
    z = np.sort(atoms.get_scaled_positions(wrap=True)[:, 2])
    gaps = np.diff(np.concatenate([z, [z[0] + 1.0]]))
    return float(gaps.max() * np.linalg.norm(c)) > 6.0


def density(atoms: Atoms) -> float:
    """Mass density in g/cm³ (3D-periodic cells)."""
    from ase.units import _amu

    return float(atoms.get_masses().sum() * _amu * 1e3 / (atoms.get_volume() * 1e-24))


def areal_density(atoms: Atoms) -> float:
    """Atoms per Å² of a sheet (in-plane cell area)."""
    return len(atoms) / float(np.linalg.norm(np.cross(atoms.cell[0], atoms.cell[1])))


def nearest_neighbour_distances(atoms: Atoms, cutoff: float = 3.0) -> dict[tuple[str, str],
                                                                            float]:
    """Shortest distance (Å) for each element pair within ``cutoff`` (ASE neighbour list)."""
    from ase.neighborlist import neighbor_list

    i, j, d = neighbor_list("ijd", atoms, cutoff)
    sym = np.array(atoms.get_chemical_symbols())
    out: dict[tuple[str, str], float] = {}
    for a, b, dist in zip(sym[i], sym[j], d):
        key = tuple(sorted((str(a), str(b))))
        if dist < out.get(key, np.inf):
            out[key] = float(dist)
    return out


# ------------------------------------------------------------------ relaxation
def relax(atoms: Atoms, calculator, fmax: float = 0.01, steps: int = 500, cell: bool = True,
          optimizer: str = "BFGS", logfile: str | None = None) -> Atoms:
    """Relax positions (and the cell) of ``atoms`` with any ASE ``calculator``.

    The cell is relaxed with ASE's ``FrechetCellFilter``; for sheets only the in-plane
    cell components move (mask xx, yy, xy), so the vacuum height stays fixed.  Returns
    a relaxed copy with ``info["relaxed"]`` set; raises :class:`HdnnpError` if it does
    not reach ``fmax`` (eV/Å) in ``steps``.
    """
    from ase import optimize
    from ase.filters import FrechetCellFilter

    out = atoms.copy()
    out.calc = calculator
    target = out
    if cell and out.pbc.all():
        mask = [1, 1, 0, 0, 0, 1] if is_sheet(out) else None
        target = FrechetCellFilter(out, mask=mask)
    try:
        opt_cls = getattr(optimize, optimizer)
    except AttributeError:
        raise HdnnpError(f"unknown ASE optimizer {optimizer!r}") from None
    opt = opt_cls(target, logfile=logfile)
    converged = opt.run(fmax=fmax, steps=steps)
    if not converged:
        raise HdnnpError(f"relaxation did not reach fmax = {fmax} eV/Å in {steps} steps")
    energy = out.get_potential_energy()
    result = out.copy()
    result.info.update(atoms.info)
    result.info["relaxed"] = True
    result.info["relaxed_energy_eV"] = float(energy)
    return result
