"""ænet's flavour of the XCrySDen structure format (XSF).

A file holds one structure.  ænet puts the total energy in a comment line and the
forces in three extra columns of each atom line::

    # total energy = -19960.66173260 eV

    CRYSTAL
    PRIMVEC
         5.934   0.000   0.000
         0.000   9.297   0.000
         0.000   0.000   4.649
    PRIMCOORD
    24 1
    Ti   4.42027297   7.02709599   2.24183899   0.0759  -0.4043   0.6942
    ...

Molecules use an ``ATOMS`` block instead of ``CRYSTAL``/``PRIMVEC``/``PRIMCOORD``;
``SLAB`` and ``POLYMER`` mark 2D and 1D periodicity.  Atom lines have 4 columns
(element or atomic number, x, y, z in Å) or 7 (plus fx, fy, fz in eV/Å).  Reference:
http://www.xcrysden.org/doc/XSF.html and ænet's ``xsflib.f90``.  Any malformed line
raises :class:`~hdnnp.errors.InputFileError` naming the file and line.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator
from ase.data import atomic_numbers, chemical_symbols

from hdnnp.errors import InputFileError
from hdnnp.fileio import atomic_write_text
from hdnnp.fortran import fortran_float
from hdnnp.validation import MAX_COORDINATE, check_structure

_ENERGY = re.compile(r"total\s+energy\s*=\s*(\S*)\s*(\S*)", re.IGNORECASE)
_PERIODIC = {"CRYSTAL": (True, True, True), "SLAB": (True, True, False),
             "POLYMER": (True, False, False), "MOLECULE": (False, False, False)}


def _float(tok: str, source: str, line: int, what: str, bound: float | None = None) -> float:
    """A number of the file: finite (NaN and inf are refused, not passed on) and, given
    ``bound``, at most that large in magnitude."""
    try:
        x = fortran_float(tok)
    except ValueError:
        raise InputFileError(source, f"cannot read {what} from {tok!r}", line) from None
    if not math.isfinite(x):
        raise InputFileError(source, f"{what} is {tok!r} (must be a finite number)", line)
    if bound is not None and abs(x) > bound:
        raise InputFileError(source, f"{what} {tok!r} is out of range (at most {bound:g} Å in "
                             "magnitude)", line)
    return x


def _element(tok: str, source: str, line: int) -> str:
    if tok.isdigit():
        z = int(tok) if len(tok) < 6 else 0  # a 5000-digit number is no atomic number
        if 0 < z < len(chemical_symbols):
            return chemical_symbols[z]
    sym = tok[:1].upper() + tok[1:].lower()
    if sym in atomic_numbers:
        return sym
    raise InputFileError(source, f"unknown element {tok!r}", line)


def parse_xsf(text: str, source: str = "<xsf>") -> Atoms:
    """Parse the text of one ænet XSF file into an ``Atoms`` with energy and forces.

    Every number must be finite; coordinates and lattice vectors within ±MAX_COORDINATE
    Å; one energy comment at most; the structure as a whole passes
    :func:`hdnnp.validation.check_structure` (no duplicate atoms, a sane cell).
    """
    energy = None
    energy_line = None
    lines = []  # (line number, stripped content) without comments/blank lines
    for k, raw in enumerate(text.splitlines(), start=1):
        s = raw.strip()
        if s.startswith("#"):
            m = _ENERGY.search(s)
            if m:
                if energy_line is not None:
                    raise InputFileError(source, "a second total energy line (the first is on "
                                         f"line {energy_line})", k)
                energy = _float(m.group(1), source, k, "the total energy")
                energy_line = k
                unit = m.group(2).lower()
                if unit and unit not in ("ev", "ev."):
                    raise InputFileError(source, f"energy unit {m.group(2)!r} is not eV", k)
            continue
        if s:
            lines.append((k, s.split("#", 1)[0].split()))
    if not lines:
        raise InputFileError(source, "empty XSF file (no structure)")

    pbc = (False, False, False)
    cell = None
    symbols, positions, forces = [], [], []
    n_force_cols = None
    pos = 0

    def read_atoms(start: int, count: int | None) -> int:
        nonlocal n_force_cols
        i = start
        while i < len(lines) and (count is None or len(symbols) < count):
            lineno, tok = lines[i]
            if count is None and tok[0].upper() in _KEYWORDS:
                break
            if len(tok) not in (4, 7):
                raise InputFileError(
                    source, f"atom line has {len(tok)} columns; expected 4 (element x y z) or 7 "
                    "(element x y z fx fy fz)", lineno)
            if n_force_cols is None:
                n_force_cols = len(tok)
            elif len(tok) != n_force_cols:
                raise InputFileError(source, f"atom line has {len(tok)} columns but earlier "
                                     f"lines have {n_force_cols}", lineno)
            symbols.append(_element(tok[0], source, lineno))
            positions.append([_float(t, source, lineno, "a coordinate", MAX_COORDINATE)
                              for t in tok[1:4]])
            if len(tok) == 7:
                forces.append([_float(t, source, lineno, "a force") for t in tok[4:7]])
            i += 1
        return i

    def count_line(at: int, key: str) -> tuple[int, int]:
        """Line number and value of the atom count after ``key`` (a positive integer)."""
        if at + 1 >= len(lines):
            raise InputFileError(source, f"{key} needs an atom count line", lines[at][0])
        ln, ct = lines[at + 1]
        try:
            count = int(ct[0])
        except (ValueError, IndexError):
            raise InputFileError(source, f"cannot read the number of atoms from "
                                 f"{' '.join(ct)!r}", ln) from None
        if count < 1:
            raise InputFileError(source, f"{key} announces {count} atoms (need at least one)",
                                 ln)
        return ln, count

    while pos < len(lines):
        lineno, tok = lines[pos]
        key = tok[0].upper()
        if key in _PERIODIC:
            pbc = _PERIODIC[key]
            pos += 1
        elif key in ("PRIMVEC", "CONVVEC"):
            vecs = []
            for k in range(1, 4):
                if pos + k >= len(lines):
                    raise InputFileError(source, f"{key} needs three lattice vectors", lineno)
                ln, vt = lines[pos + k]
                if len(vt) != 3:
                    raise InputFileError(source, f"lattice vector line has {len(vt)} columns, "
                                         "expected 3", ln)
                vecs.append([_float(t, source, ln, "a lattice vector component",
                                    MAX_COORDINATE) for t in vt])
            if key == "PRIMVEC" or cell is None:
                cell = np.array(vecs)
            pos += 4
        elif key == "PRIMCOORD":
            if symbols:
                raise InputFileError(source, "a second block of atoms (one structure per "
                                     "file)", lineno)
            ln, count = count_line(pos, key)
            end = read_atoms(pos + 2, count)
            if len(symbols) != count:
                raise InputFileError(source, f"PRIMCOORD announces {count} atoms but "
                                     f"{len(symbols)} follow", ln)
            pos = end
        elif key == "ATOMS":
            if symbols:
                raise InputFileError(source, "a second block of atoms (one structure per "
                                     "file)", lineno)
            pos = read_atoms(pos + 1, None)
        elif key in ("CONVCOORD",):
            # conventional-cell coordinates duplicate PRIMCOORD: skip them
            ln, count = count_line(pos, key)
            if pos + 2 + count > len(lines):
                raise InputFileError(source, f"CONVCOORD announces {count} atoms but "
                                     f"{len(lines) - pos - 2} lines follow", ln)
            pos += 2 + count
        elif key in ("ANIMSTEPS",):
            raise InputFileError(source, "animated (multi-frame) XSF files are not supported; "
                                 "write one structure per file", lineno)
        else:
            raise InputFileError(source, f"unexpected line {' '.join(tok)!r}", lineno)

    if not symbols:
        raise InputFileError(source, "no atoms found")
    if any(pbc) and cell is None:
        raise InputFileError(source, "periodic structure without PRIMVEC lattice vectors")
    atoms = Atoms(symbols=symbols, positions=np.array(positions),
                  cell=cell if cell is not None else np.zeros((3, 3)), pbc=pbc)
    f = np.array(forces) if forces else None
    if energy is not None or f is not None:
        atoms.calc = SinglePointCalculator(atoms, energy=energy, forces=f)
    atoms.info["source"] = source
    check_structure(atoms, source)
    return atoms


_KEYWORDS = {"CRYSTAL", "SLAB", "POLYMER", "MOLECULE", "PRIMVEC", "CONVVEC", "PRIMCOORD",
             "CONVCOORD", "ATOMS", "ANIMSTEPS"}


def read_xsf(path: str | Path) -> Atoms:
    """Read one ænet XSF file."""
    path = Path(path)
    try:
        text = path.read_text()
    except UnicodeDecodeError:
        raise InputFileError(path, "not a text file") from None
    return parse_xsf(text, str(path))


def format_xsf(atoms: Atoms) -> str:
    """ænet XSF text of ``atoms`` (energy comment and force columns when known)."""
    energy = forces = None
    if atoms.calc is not None:
        res = getattr(atoms.calc, "results", {})
        energy = res.get("energy")
        forces = res.get("forces")
    out = []
    if energy is not None:
        out.append(f"# total energy = {float(energy):.10f} eV")
        out.append("")
    pbc = tuple(bool(p) for p in atoms.pbc)
    pos = atoms.get_positions()

    def atom_line(k):
        line = f"{atoms[k].symbol:<3s}" + "".join(f" {x:18.12f}" for x in pos[k])
        if forces is not None:
            line += "".join(f" {x:18.12f}" for x in forces[k])
        return line

    if any(pbc):
        key = {v: k for k, v in _PERIODIC.items()}.get(pbc)
        if key is None:
            raise ValueError(f"XSF cannot express periodicity {pbc}")
        out.append(key)
        out.append("PRIMVEC")
        for v in atoms.cell.array:
            out.append("".join(f" {x:18.12f}" for x in v))
        out.append("PRIMCOORD")
        out.append(f"{len(atoms)} 1")
    else:
        out.append("ATOMS")
    out.extend(atom_line(k) for k in range(len(atoms)))
    return "\n".join(out) + "\n"


def write_xsf(path: str | Path, atoms: Atoms) -> None:
    """Write one structure as an ænet XSF file (atomically)."""
    atomic_write_text(path, format_xsf(atoms))
