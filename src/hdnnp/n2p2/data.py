"""n2p2/RuNNer data sets (``input.data``).

Format (n2p2 documentation "Data file format"; n2p2 ``Structure::readFromLines``), one
block per structure::

    begin
    comment <free text>                                        (optional)
    lattice <ax> <ay> <az>                                     (0 or 3 lines)
    atom <x> <y> <z> <element> <charge> <n> <fx> <fy> <fz>     (one per atom)
    energy <E>
    charge <Q>
    end

``n`` is a per-atom value n2p2 does not use (RuNNer writes an atomic energy or 0).  Three
``lattice`` lines make the structure periodic in all directions; none, non-periodic.

Files carry no units.  In order of precedence they come from ``length_unit`` /
``energy_unit`` (names known to :mod:`hdnnp.units` or factors to Å and eV), from the
``# Length unit`` / ``# Energy unit`` header comments of the potential's ``input.nn``
named by ``input_nn=`` (a file or potential directory), from those of an ``input.nn``
next to the data file (n2p2's own directory layout), and otherwise default to Å and eV.

Inside, structures are ASE ``Atoms`` in Å and eV: energy
and forces (eV/Å) as a ``SinglePointCalculator``, atomic charges (e) as initial charges,
``n`` as ``atoms.arrays["n2p2_n"]`` (scaled like an energy), the total charge as
``atoms.info["charge"]``, the comment as ``atoms.info["comment"]`` and
``atoms.info["source"] = "<file>:<k>"`` (k counts structures from 0).

Writing uses the shortest decimal that reads back to the same double after unit
conversion, so read → write → read with the same units loses nothing.  Structures
without forces are written with zero forces (the format requires the columns).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator
from ase.data import atomic_numbers

from hdnnp.errors import HdnnpError, InputFileError
from hdnnp.fileio import atomic_path
from hdnnp.fortran import fortran_float
from hdnnp.n2p2.settings import read_input_nn
from hdnnp.units import energy_factor, length_factor
from hdnnp.validation import MAX_COORDINATE, check_structure

__all__ = ["read_input_data", "write_input_data"]


def _factors(length_unit, energy_unit, input_nn, data_path=None) -> tuple[float, float]:
    if input_nn is None and data_path is not None and (length_unit is None
                                                        or energy_unit is None):
        sibling = Path(data_path).parent / "input.nn"
        if sibling.is_file():
            try:
                settings = read_input_nn(sibling)
            except HdnnpError:
                settings = None
            if settings is not None and settings.length_unit and settings.energy_unit:
                input_nn = sibling
    if input_nn is not None:
        p = Path(input_nn)
        settings = read_input_nn(p / "input.nn" if p.is_dir() else p)
        if length_unit is None:
            length_unit = settings.length_unit
        if energy_unit is None:
            energy_unit = settings.energy_unit
        if length_unit is None or energy_unit is None:
            raise HdnnpError(f"{settings.path} states no length/energy unit (header comments "
                             "'# Length unit : ...', '# Energy unit : ...'); give "
                             "length_unit= and energy_unit=")
    lf = float(length_unit) if isinstance(length_unit, int | float) else length_factor(
        length_unit or "angstrom")
    ef = float(energy_unit) if isinstance(energy_unit, int | float) else energy_factor(
        energy_unit or "eV")
    return lf, ef


def _float(text: str, path, line: int, what: str) -> float:
    """A number of the file; NaN and inf are refused (they would train a NaN model)."""
    try:  # Fortran-style exponents (RuNNer files: 1.0d-3) accepted
        x = fortran_float(text)
    except ValueError:
        raise InputFileError(path, f"{what}: {text!r} is not a number", line) from None
    if not math.isfinite(x):
        raise InputFileError(path, f"{what}: {text!r} is not a finite number", line)
    return x


def read_input_data(path: str | Path, length_unit: str | float | None = None,
                    energy_unit: str | float | None = None,
                    input_nn: str | Path | None = None, index=None) -> Iterator[Atoms]:
    """Iterate over the structures of an ``input.data`` file (see the module docstring).

    ``index`` (an int or a slice) selects structures by position without converting the
    others.
    """
    path = Path(path)
    lf, ef = _factors(length_unit, energy_unit, input_nn, path)
    fe = ef / lf
    try:
        fh = open(path, encoding="utf-8", errors="replace")
    except OSError as exc:
        raise InputFileError(path, f"cannot read file ({exc})") from None
    wanted = (lambda k: k == index) if isinstance(index, int) else (
        (lambda k: k in range(*index.indices(10**12))) if isinstance(index, slice)
        else (lambda k: True))
    with fh:
        block: list[tuple[int, str]] | None = None
        begin_line = 0
        k = 0
        for lineno, raw in enumerate(fh, start=1):
            fields = raw.split()
            if not fields:
                continue
            key = fields[0]
            if key == "begin":
                if block is not None:
                    raise InputFileError(path, f"'begin' before the 'end' of the structure "
                                         f"that begins on line {begin_line}", lineno)
                block, begin_line = [], lineno
                continue
            if block is None:
                raise InputFileError(path, f"expected 'begin', found {key!r}", lineno)
            if key == "end":
                if wanted(k):
                    yield _structure(path, block, k, begin_line, lineno, lf, ef, fe)
                block = None
                k += 1
                continue
            block.append((lineno, raw))
        if block is not None:
            raise InputFileError(path, f"the structure that begins on line {begin_line} has "
                                 "no 'end'")


def _structure(path, block, k, begin_line, end_line, lf, ef, fe) -> Atoms:
    comment = None
    lattice, symbols, pos, charges, extra, forces = [], [], [], [], [], []
    energy = energy_line = None
    total_charge = None
    atom_lines: list[int] = []
    for lineno, raw in block:
        f = raw.split()
        key = f[0]
        if key == "atom":
            if len(f) != 10:
                raise InputFileError(path, "atom line needs 'atom x y z element charge n fx "
                                     f"fy fz' (9 values), got {len(f) - 1}", lineno)
            if f[4] not in atomic_numbers or f[4] == "X":
                raise InputFileError(path, f"unknown chemical element {f[4]!r}", lineno)
            vals = [_float(x, path, lineno, "atom") for x in (*f[1:4], *f[5:10])]
            if max(abs(v) for v in vals[0:3]) * lf > MAX_COORDINATE:
                raise InputFileError(path, "atom coordinates out of range (at most "
                                     f"{MAX_COORDINATE:g} Å in magnitude)", lineno)
            symbols.append(f[4])
            atom_lines.append(lineno)
            pos.append(vals[0:3])
            charges.append(vals[3])
            extra.append(vals[4])
            forces.append(vals[5:8])
        elif key == "lattice":
            if len(f) != 4:
                raise InputFileError(path, "lattice line needs three numbers", lineno)
            if len(lattice) == 3:
                raise InputFileError(path, "more than three lattice lines", lineno)
            lattice.append([_float(x, path, lineno, "lattice") for x in f[1:4]])
            if max(abs(v) for v in lattice[-1]) * lf > MAX_COORDINATE:
                raise InputFileError(path, "lattice vector out of range (at most "
                                     f"{MAX_COORDINATE:g} Å in magnitude)", lineno)
        elif key == "energy":
            if len(f) != 2:
                raise InputFileError(path, "energy line needs one number", lineno)
            if energy is not None:
                raise InputFileError(path, "a second energy line in one structure (the "
                                     f"first is on line {energy_line})", lineno)
            energy, energy_line = _float(f[1], path, lineno, "energy"), lineno
        elif key == "charge":
            if len(f) != 2:
                raise InputFileError(path, "charge line needs one number", lineno)
            if total_charge is not None:
                raise InputFileError(path, "a second charge line in one structure", lineno)
            total_charge = _float(f[1], path, lineno, "charge")
        elif key == "comment":
            text = raw.rstrip("\r\n")
            pos_c = text.find("comment")
            comment = text[pos_c + len("comment") + 1:]
        else:
            raise InputFileError(path, f"unknown keyword {key!r} (expected comment, lattice, "
                                 "atom, energy, charge or end)", lineno)
    if len(lattice) not in (0, 3):
        raise InputFileError(path, f"{len(lattice)} lattice lines (need 0 or 3)", end_line)
    if not symbols:
        raise InputFileError(path, "structure without atoms (no 'atom' line between 'begin' "
                             f"on line {begin_line} and 'end')", end_line)
    pbc = len(lattice) == 3
    atoms = Atoms(symbols=symbols,
                  positions=np.asarray(pos, dtype=np.float64).reshape(-1, 3) * lf,
                  cell=np.asarray(lattice, dtype=np.float64) * lf if pbc else None, pbc=pbc)
    atoms.set_initial_charges(np.asarray(charges, dtype=np.float64))
    with np.errstate(over="ignore"):
        n_values = np.asarray(extra, dtype=np.float64) * ef
    if not np.isfinite(n_values).all():  # finite in the file, beyond float range in eV
        bad = int(np.flatnonzero(~np.isfinite(n_values))[0])
        raise InputFileError(path, "atom: the n column is out of range after conversion to "
                             "eV", atom_lines[bad])
    atoms.arrays["n2p2_n"] = n_values
    if comment is not None:
        atoms.info["comment"] = comment
    if total_charge is not None:
        atoms.info["charge"] = total_charge
    atoms.info["source"] = f"{path}:{k}"
    atoms.calc = SinglePointCalculator(
        atoms, energy=None if energy is None else energy * ef,
        forces=np.asarray(forces, dtype=np.float64).reshape(-1, 3) * fe)
    # values finite in the file's unit can overflow in eV/Å; the whole structure (cell,
    # duplicate atoms, labels) is checked and blamed on its 'begin' line
    check_structure(atoms, str(path), line=begin_line)
    return atoms


def _to_file(values: np.ndarray, factor: float) -> np.ndarray:
    """Values in file units whose product with ``factor`` reproduces ``values`` exactly
    where such a double exists (checked, with the neighbouring doubles as candidates)."""
    values = np.asarray(values, dtype=np.float64)
    if factor == 1.0:
        return values
    x = values / factor
    for _ in range(2):
        bad = x * factor != values
        if not bad.any():
            break
        up = np.nextafter(x, np.inf)
        down = np.nextafter(x, -np.inf)
        x = np.where(bad & (up * factor == values), up,
                     np.where(bad & (down * factor == values), down, x))
    return x


def _r(x: float) -> str:
    return repr(float(x))


def write_input_data(path: str | Path, structures: Sequence[Atoms],
                     length_unit: str | float | None = None,
                     energy_unit: str | float | None = None,
                     input_nn: str | Path | None = None) -> None:
    """Write structures as an ``input.data`` file (atomically; see the module docstring)."""
    lf, ef = _factors(length_unit, energy_unit, input_nn, path)
    fe = ef / lf
    out = []
    for atoms in structures:
        out.append("begin")
        comment = atoms.info.get("comment")
        if comment is not None:
            out.append(f"comment {comment}")
        if np.asarray(atoms.pbc).any():
            if not np.asarray(atoms.pbc).all():
                raise HdnnpError("input.data knows only fully periodic or non-periodic "
                                 f"structures, got pbc={atoms.pbc.tolist()}")
            for v in _to_file(atoms.cell.array, lf):
                out.append("lattice " + " ".join(_r(x) for x in v))
        energy = forces = None
        if atoms.calc is not None:
            results = getattr(atoms.calc, "results", {})
            energy = results.get("energy")
            forces = results.get("forces")
        n = len(atoms)
        forces = np.zeros((n, 3)) if forces is None else np.asarray(forces, dtype=np.float64)
        pos = _to_file(atoms.get_positions(), lf)
        frc = _to_file(forces, fe)
        charges = atoms.get_initial_charges()
        extra = _to_file(atoms.arrays.get("n2p2_n", np.zeros(n)), ef)
        for s, p, q, x, fr in zip(atoms.get_chemical_symbols(), pos, charges, extra, frc):
            out.append(f"atom {_r(p[0])} {_r(p[1])} {_r(p[2])} {s} {_r(q)} {_r(x)} "
                       f"{_r(fr[0])} {_r(fr[1])} {_r(fr[2])}")
        if energy is not None:
            out.append(f"energy {_r(_to_file(np.array([energy]), ef)[0])}")
        if "charge" in atoms.info:
            out.append(f"charge {_r(atoms.info['charge'])}")
        out.append("end")
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(out) + "\n", encoding="utf-8")
