"""Sanity limits and checks for input data, shared by every reader, the calculator and
the neighbour list.

Everything a user hands to hdnnp (structure files, databases, ``Atoms`` given to the
calculator, potential files, configurations) passes through these checks before any
numerical code sees it, so that bad input gives a one-line :class:`~hdnnp.errors.HdnnpError`
instead of a crashed process (the neighbour list dies with SIGFPE on a NaN cell), a hang
(a 10⁴ Å cutoff) or a silent NaN.

The limits are deliberately generous: they refuse only what cannot be a physical
structure or a usable potential.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from hdnnp.errors import HdnnpError, InputFileError

#: largest cutoff radius accepted anywhere (Å).  Published HDNNPs use 5-12 Å; n2p2's
#: SCAN-type potentials 15 bohr ≈ 7.9 Å.  Beyond this the neighbour count (∝ rc³) makes
#: a call practically endless.
MAX_CUTOFF = 30.0
#: closest distance two atoms may have (Å); closer pairs are duplicates (a repeated line,
#: a wrong cell) and give singular descriptors.
MIN_DISTANCE = 0.1
#: largest absolute Cartesian coordinate or cell-vector component (Å); 10 µm, far beyond
#: any atomistic model.  The neighbour list grids the structure's extent: an atom 10⁶ Å
#: away (or a 1e300 cell) makes that grid degenerate and kills the process with SIGFPE.
MAX_COORDINATE = 1.0e5
#: largest cell volume per atom (Å³) of a periodic structure; larger means a wrong unit
MAX_VOLUME_PER_ATOM = 1.0e6

#: the thinnest a periodic cell may be (Å, distance between opposite faces).  Every
#: lattice vector is at least this long, so an atom can never sit on its own image, and
#: the neighbour list searches at most ``MAX_CUTOFF / MIN_CELL_THICKNESS`` = 300 cells in
#: each direction (a thinner cell makes that search practically endless).
MIN_CELL_THICKNESS = MIN_DISTANCE
#: largest number of neighbours of one atom within the cutoff: estimated as ρ·(4/3)π·r_c³
#: for a periodic structure before its pair list is built, counted in the pair list of
#: any structure after.  Dense solids (diamond, 0.18 atoms/Å³) have ≈ 1300 at 12 Å; an
#: atom with 3000 neighbours already has 4.5·10⁶ triplets (≈ 300 MB in the descriptor
#: engine), so more means a wrong unit, a collapsed cell or copies of atoms, whose
#: descriptors would not fit in memory.
MAX_NEIGHBOURS_PER_ATOM = 3000
#: smallest sine of the angle between a cell vector and the plane of the other two;
#: flatter cells are degenerate (their inverse, needed for fractional coordinates, is
#: numerically meaningless)
MIN_CELL_SINE = 1.0e-6


def _fail(source: str, message: str, line: int | None = None):
    """The error to raise: an :class:`InputFileError` where a file line is known."""
    if line is not None:
        return InputFileError(source, message, line)
    return HdnnpError(f"{source}: {message}")


def check_number(value, what: str, source: str, line: int | None = None,
                 bound: float | None = None) -> float:
    """``value`` as a float, refused unless it is finite (and, given ``bound``, not larger
    in magnitude).  For single numbers read from files: energies, charges, weights."""
    try:
        x = float(value)
    except (TypeError, ValueError, OverflowError):
        raise _fail(source, f"{what} {value!r} is not a number", line) from None
    if not math.isfinite(x):
        raise _fail(source, f"{what} is {x} (must be a finite number)", line)
    if bound is not None and abs(x) > bound:
        raise _fail(source, f"{what} {x:g} is out of range (|{what}| ≤ {bound:g})", line)
    return x


def check_cutoff(cutoff, source: str = "cutoff") -> float:
    """The cutoff radius (Å) as a float; refused unless finite, ≥ ``MIN_DISTANCE`` and
    ≤ ``MAX_CUTOFF``.

    A cutoff below ``MIN_DISTANCE`` defines no environment (closer pairs are refused as
    duplicated atoms; vesin itself fails below ≈ 1e-3 Å); a NaN one reaches the neighbour
    list as
    garbage; beyond ``MAX_CUTOFF`` the pair count (∝ r_c³) makes every call practically
    endless (a 10⁴ Å cutoff never returns).
    """
    try:
        rc = float(cutoff)
    except (TypeError, ValueError, OverflowError):
        raise HdnnpError(f"{source}: cutoff {cutoff!r} is not a number") from None
    if not math.isfinite(rc) or rc < MIN_DISTANCE:
        raise HdnnpError(f"{source}: cutoff radius must be a finite number of Å of at least "
                         f"{MIN_DISTANCE:g}, got {rc}")
    if rc > MAX_CUTOFF:
        raise HdnnpError(f"{source}: cutoff radius {rc:g} Å exceeds the sane maximum of "
                         f"{MAX_CUTOFF:g} Å (a wrong unit? bohr and Å differ by 1.9)")
    return rc


def _coordinates(values, name: str, row: str, source: str, line: int | None) -> np.ndarray:
    """``values`` as an [N, 3] float array of finite Cartesian components within
    ±MAX_COORDINATE Å; ``row`` describes an offending row (``{k}`` counts from 1)."""
    try:
        x = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise _fail(source, f"{name} are not numbers", line) from None
    if x.ndim != 2 or x.shape[1] != 3:
        raise _fail(source, f"{name} must be an [N, 3] array, got shape {x.shape}", line)
    bad = (~np.isfinite(x) | (np.abs(x) > MAX_COORDINATE)).any(axis=1)
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        raise _fail(source, f"{row.format(k=k + 1)} {x[k].tolist()} (components must be "
                    f"finite and within ±{MAX_COORDINATE:g} Å)", line)
    return x


def cell_thickness(cell: np.ndarray) -> np.ndarray:
    r"""Distances between opposite faces of the cell spanned by the rows of ``cell`` (Å):
    :math:`d_k = 1 / |\mathbf b_k|` with :math:`\mathbf b_k` the reciprocal vectors
    (columns of :math:`\mathbf h^{-1}`); zeros for a singular cell."""
    cell = np.asarray(cell, dtype=np.float64)
    try:
        inverse = np.linalg.inv(cell)
    except np.linalg.LinAlgError:
        return np.zeros(3)
    norms = np.sqrt((inverse * inverse).sum(axis=0))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(np.isfinite(norms) & (norms > 0), 1.0 / norms, 0.0)


def effective_cell(cell, pbc) -> np.ndarray:
    """The cell with each non-periodic vector replaced by a unit vector orthogonal to the
    periodic ones (and to each other).

    Non-periodic cell vectors carry no physics (ASE often leaves them zero or arbitrary);
    with them replaced, the rows always span space when the periodic ones are independent,
    so fractional coordinates and face distances of the periodic directions are defined.
    """
    h = np.array(cell, dtype=np.float64).reshape(3, 3)
    periodic = np.asarray(pbc, dtype=bool).reshape(-1)
    if periodic.all():
        return h
    if not periodic.any():
        return np.eye(3)
    p = np.flatnonzero(periodic)
    q = np.flatnonzero(~periodic)
    if len(p) == 2:
        n = np.cross(h[p[0]], h[p[1]])
        h[q[0]] = n / (np.linalg.norm(n) or 1.0)
        return h
    a = h[p[0]] / (np.linalg.norm(h[p[0]]) or 1.0)
    e = np.eye(3)[int(np.argmin(np.abs(a)))]
    u = np.cross(a, e)
    u /= np.linalg.norm(u) or 1.0
    h[q[0]], h[q[1]] = u, np.cross(a, u)
    return h


def check_geometry(positions, cell, pbc, source: str = "structure",
                   line: int | None = None, cutoff: float | None = None,
                   volume_per_atom: bool = True) -> None:
    """Cheap (O(N) NumPy) checks of positions (Å), cell (rows, Å) and periodicity.

    Refused, with a one-line error naming ``source`` (and ``line``):

    * positions that are not an [N, 3] array, or not finite, or beyond ``MAX_COORDINATE``
      (the neighbour list builds a grid over the structure's extent and dies with SIGFPE
      when one atom lies 10⁶ Å away);
    * a cell that is not 3×3, not finite or with components beyond ``MAX_COORDINATE``
      (a NaN, inf or 1e300 cell kills the neighbour list the same way);
    * a periodic structure whose periodic cell vectors are degenerate: zero, (nearly)
      linearly dependent (sine below ``MIN_CELL_SINE``), or spanning a cell thinner than
      ``MIN_CELL_THICKNESS`` along a periodic direction (an atom would sit on its own
      image); the vectors of non-periodic directions may be anything finite (see
      :func:`effective_cell`);
    * a fully periodic structure with more than ``MAX_VOLUME_PER_ATOM`` Å³ per atom (a
      wrong length unit; skipped with ``volume_per_atom=False``, as the neighbour list
      does: a lone atom in a large box is harmless there), or one so dense that an atom
      would have more than ``MAX_NEIGHBOURS_PER_ATOM`` neighbours within ``cutoff`` (when
      given).

    Left-handed cells (negative determinant) are valid and accepted.
    """
    pos = _coordinates(positions, "positions", "atom {k} has position", source, line)
    h = _coordinates(cell, "cell", "cell vector {k} is", source, line)
    if h.shape != (3, 3):
        raise _fail(source, f"cell must be 3×3, got shape {h.shape}", line)
    periodic = np.asarray(pbc, dtype=bool).reshape(-1)
    if not periodic.any():
        return
    lengths = np.linalg.norm(h[periodic], axis=1)
    eff = effective_cell(h, periodic)
    volume = abs(float(np.linalg.det(eff)))
    if lengths.min() == 0.0 or volume <= MIN_CELL_SINE * float(np.prod(lengths)):
        raise _fail(source, f"the periodic cell vectors are not linearly independent; got cell "
                    f"{h.tolist()} with pbc {periodic.tolist()}", line)
    thick = cell_thickness(eff)
    thin = periodic & (thick < MIN_CELL_THICKNESS)
    if thin.any():
        k = int(np.flatnonzero(thin)[0])
        raise _fail(source, f"the cell is only {thick[k]:.3g} Å thick along periodic direction "
                    f"{k + 1} (at least {MIN_CELL_THICKNESS:g} Å; atoms would overlap their "
                    "own images)", line)
    n = pos.shape[0]
    if periodic.all() and n:
        if volume_per_atom and volume / n > MAX_VOLUME_PER_ATOM:
            raise _fail(source, f"cell volume {volume:.4g} Å³ for {n} atoms exceeds "
                        f"{MAX_VOLUME_PER_ATOM:g} Å³ per atom (a wrong length unit?)", line)
        if cutoff is not None:
            neighbours = n / volume * 4.0 / 3.0 * math.pi * float(cutoff) ** 3
            if neighbours > MAX_NEIGHBOURS_PER_ATOM:
                raise _fail(source, f"{n} atoms in {volume:.4g} Å³ would have about "
                            f"{neighbours:.3g} neighbours each within {float(cutoff):g} Å "
                            f"(at most {MAX_NEIGHBOURS_PER_ATOM:g}; a collapsed cell or a "
                            "wrong unit?)", line)


def check_labels(atoms, source: str = "structure", line: int | None = None) -> None:
    """Reference energy (eV), forces (eV/Å) and stress attached to ``atoms``: finite, and
    forces of shape [N, 3].  A NaN label trains a NaN model (or is blamed on the learning
    rate); a wrong shape fails deep inside the loss."""
    calc = getattr(atoms, "calc", None)
    results = getattr(calc, "results", None) or {}
    n = len(atoms)
    for key in ("energy", "free_energy"):
        value = results.get(key)
        if value is not None:
            if np.size(value) != 1:
                raise _fail(source, f"the {key.replace('_', ' ')} is not one number", line)
            check_number(np.asarray(value).reshape(-1)[0], f"the {key.replace('_', ' ')}",
                         source, line)
    forces = results.get("forces")
    if forces is not None:
        try:
            f = np.asarray(forces, dtype=np.float64)
        except (TypeError, ValueError):
            raise _fail(source, "forces are not numbers", line) from None
        if f.shape != (n, 3):
            raise _fail(source, f"forces have shape {f.shape}, expected ({n}, 3)", line)
        bad = ~np.isfinite(f)
        if bad.any():
            k = int(np.flatnonzero(bad.any(axis=1))[0])
            raise _fail(source, f"atom {k + 1} has force {f[k].tolist()} (must be finite)", line)
    stress = results.get("stress")
    if stress is not None:
        s = np.asarray(stress, dtype=np.float64)
        if s.shape not in ((6,), (3, 3)) or not np.isfinite(s).all():
            raise _fail(source, f"stress {s.tolist()} is not 6 (or 3×3) finite numbers", line)


def closest_pair(positions, cell, pbc) -> tuple[int, int, float] | None:
    """The closest pair of distinct atoms (i, j, distance in Å), periodic images
    included, among pairs closer than ``MIN_DISTANCE``; None when there is none.

    O(N log N) with a k-d tree (scipy): atoms are wrapped into the cell, and only atoms
    within ``MIN_DISTANCE`` of a periodic face get image copies, so any cell shape works.
    Needs a geometry that passed :func:`check_geometry`.
    """
    from scipy.spatial import cKDTree

    pos = np.asarray(positions, dtype=np.float64)
    n = pos.shape[0]
    if n < 2 and not np.asarray(pbc).any():
        return None
    periodic = np.asarray(pbc, dtype=bool).reshape(-1)
    points, owner = pos, np.arange(n)
    if periodic.any() and n:
        h = effective_cell(cell, periodic)
        frac = np.linalg.solve(h.T, pos.T).T
        frac[:, periodic] -= np.floor(frac[:, periodic])
        margin = np.where(periodic, MIN_DISTANCE / cell_thickness(h), 0.0)
        shifts = np.array(np.meshgrid([-1, 0, 1], [-1, 0, 1], [-1, 0, 1])).T.reshape(-1, 3)
        shifts = shifts[shifts.any(axis=1) & ~(shifts[:, ~periodic] != 0).any(axis=1)]
        # an image shifted by +1 along k comes close to the cell only for atoms near face 0
        low, high = frac < margin, frac > 1 - margin  # [N, 3]
        ok = ((shifts[:, None, :] == 0) | ((shifts[:, None, :] > 0) & low)
              | ((shifts[:, None, :] < 0) & high)).all(axis=2)  # [shifts, N]
        s_idx, a_idx = np.nonzero(ok)
        points = np.concatenate([frac, frac[a_idx] + shifts[s_idx]]) @ h
        owner = np.concatenate([owner, a_idx])
    pairs = cKDTree(points).query_pairs(MIN_DISTANCE, output_type="ndarray")
    if pairs.size == 0:
        return None
    d = np.linalg.norm(points[pairs[:, 0]] - points[pairs[:, 1]], axis=1)
    k = int(np.argmin(d))
    i, j = sorted((int(owner[pairs[k, 0]]), int(owner[pairs[k, 1]])))
    return i, j, float(d[k])


def check_structure(atoms, source: str | None = None, line: int | None = None,
                    labels: bool = True, duplicates: bool = True) -> None:
    """Everything :func:`check_geometry` and (with ``labels``) :func:`check_labels` check,
    plus no two atoms (periodic images included) closer than ``MIN_DISTANCE`` (a repeated
    atom line or a wrong cell; such pairs give infinite or NaN descriptors).

    ``source`` names the structure in the message (default ``atoms.info["source"]``);
    ``line`` turns the error into an :class:`InputFileError` naming that line.  The cheap
    checks run first so the duplicate search only sees sane geometry.
    """
    if source is None:
        source = str(getattr(atoms, "info", {}).get("source", "structure"))
    positions = atoms.get_positions()
    cell = np.asarray(atoms.cell.array, dtype=np.float64)
    check_geometry(positions, cell, atoms.pbc, source, line)
    if labels:
        check_labels(atoms, source, line)
    if duplicates:
        close = closest_pair(positions, cell, atoms.pbc)
        if close is not None:
            raise too_close_error(source, *close, line=line)


def too_close_error(source: str, i: int, j: int, distance: float,
                    line: int | None = None) -> HdnnpError:
    """The error for atoms ``i`` and ``j`` (0-based; equal: an atom and its own image)
    closer than ``MIN_DISTANCE``."""
    what = (f"atom {i + 1} is {distance:.3g} Å from its own periodic image" if i == j else
            f"atoms {i + 1} and {j + 1} are {distance:.3g} Å apart")
    return _fail(source, f"{what} (closer than {MIN_DISTANCE:g} Å: a duplicated atom or "
                 "a wrong cell?)", line)


def check_reference_energies(reference_energies: Mapping[str, float] | None,
                             source: str = "reference energies") -> dict[str, float]:
    """Isolated-atom energies (eV) by element symbol: known elements, finite values."""
    from ase.data import atomic_numbers

    out: dict[str, float] = {}
    for element, value in dict(reference_energies or {}).items():
        if element not in atomic_numbers or element == "X":
            raise HdnnpError(f"{source}: unknown element {element!r}")
        out[element] = check_number(value, f"the reference energy of {element}", source)
    return out


# ------------------------------------------------------------------ potential limits
#: Limits of a usable potential (also applied to n2p2 potential directories).  Far
#: beyond any published HDNNP (tens of features, two or three layers of tens of neurons),
#: they only refuse what would exhaust memory or time, or overflow.
MAX_FEATURES = 100_000          # descriptor features (network inputs) per element
MAX_LAYERS = 100                # hidden layers per network
MAX_NEURONS = 10_000            # neurons per hidden layer
MAX_COMMITTEE = 1000            # committee members
#: largest magnitude of any stored number (weights, scalings, energies in eV, descriptor
#: parameters): larger values are damage (trained weights are O(1), input scales ≤ 10⁸),
#: and products of several of them overflow to inf
MAX_VALUE = 1.0e15
#: largest angular exponent ζ: (1 ± cos θ)^ζ reaches 2^ζ, and ζ ≳ 1000 overflows the
#: angular terms and their derivatives (published sets use ζ ≤ 64)
MAX_ZETA = 256.0
#: largest |type spin| of the Chebyshev descriptor (ænet's are -n/2 … n/2, n ≤ 118)
MAX_SPIN = 1000.0
#: largest JSON nesting of a document (hdnnp writes 6 levels)
MAX_DEPTH = 64
#: largest potential file, and largest decompressed .gz content (bytes)
MAX_FILE_BYTES = 1 << 30


def symmetry_function_problem(spec: dict) -> str | None:
    """What makes a (normalised, Å) symmetry function unusable beyond the checks of
    :func:`hdnnp.descriptors.symmetry.normalise_function`, or None: a cutoff beyond
    :func:`~hdnnp.validation.check_cutoff`, ζ > ``MAX_ZETA``.  Shared by the potential
    file and the n2p2 and ænet readers."""
    try:
        check_cutoff(spec.get("rc"), "rc")
    except HdnnpError as exc:
        return str(exc)
    zeta = spec.get("zeta")
    if zeta is not None and float(zeta) > MAX_ZETA:
        return (f"zeta {float(zeta):g} is out of range (at most {MAX_ZETA:g}: (1 ± cos θ)^ζ "
                "overflows)")
    return None
