"""Reading and writing structure files.

All readers return ASE ``Atoms`` with the reference energy (eV) and forces (eV/Å)
attached as a ``SinglePointCalculator`` (``atoms.get_potential_energy()``,
``atoms.get_forces()``) and a ``atoms.info["source"]`` naming file and entry.  Every
structure read passes :func:`hdnnp.validation.check_structure` (finite, bounded positions,
cell, energy and forces; a non-degenerate periodic cell; no duplicate atoms), so bad
input stops at the reader with a one-line error naming file and entry.

Formats (``format=None`` guesses from the path):

=========  ===============================================================
xsf        one ænet XSF file (:mod:`hdnnp.aenet.xsf`)
xsf-dir    a directory of ``*.xsf`` files
archive    a ``.tar``, ``.tar.gz``/``.tgz``, ``.tar.bz2``, ``.tar.xz`` or ``.zip``
           archive of ``*.xsf`` files
extxyz     extended XYZ (via ASE); ``.xz``, ``.gz`` or ``.bz2``-compressed files are
           (de)compressed in memory
n2p2       n2p2/RuNNer ``input.data`` (:mod:`hdnnp.n2p2.data`)
db         an ASE database (``.db``, SQLite)
ase        anything else ASE can read
=========  ===============================================================
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import tarfile
import zipfile
from collections.abc import Iterator, Sequence
from pathlib import Path

from ase import Atoms

from hdnnp.aenet.xsf import format_xsf, parse_xsf, read_xsf, write_xsf
from hdnnp.errors import HdnnpError, InputFileError
from hdnnp.n2p2.data import read_input_data, write_input_data
from hdnnp.validation import check_structure

_ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz", ".zip")
#: single-file compression: suffix -> (decompress, compress)
_COMPRESSION = {
    ".xz": (lzma.decompress, lambda b: lzma.compress(b, preset=9 | lzma.PRESET_EXTREME)),
    ".gz": (gzip.decompress, lambda b: gzip.compress(b, mtime=0)),
    ".bz2": (bz2.decompress, bz2.compress),
}


def _compression(path: Path) -> str | None:
    suffix = path.suffix.lower()
    return suffix if suffix in _COMPRESSION and not path.name.lower().endswith(
        _ARCHIVE_SUFFIXES) else None

__all__ = ["format_xsf", "guess_format", "iter_structures", "parse_xsf", "read_structures",
           "read_xsf", "write_structures", "write_xsf"]


def guess_format(path: str | Path) -> str:
    """Guess the structure-file format from a path (see the module table)."""
    p = Path(path)
    if p.is_dir():
        return "xsf-dir"
    name = p.name.lower()
    if _compression(p):
        name = name[: -len(p.suffix)]
    if name.endswith(_ARCHIVE_SUFFIXES):
        return "archive"
    if name.endswith(".xsf"):
        return "xsf"
    if name.endswith((".extxyz", ".xyz")):
        return "extxyz"
    if name == "input.data" or name.endswith(".data"):
        return "n2p2"
    if name.endswith(".db"):
        return "db"
    return "ase"


def _text(data: bytes, source: str) -> str:
    try:
        return data.decode()
    except UnicodeDecodeError:
        raise InputFileError(source, "not a text file") from None


def _iter_archive(path: Path) -> Iterator[Atoms]:
    if path.name.lower().endswith(".zip"):
        with zipfile.ZipFile(path) as zf:
            names = sorted(n for n in zf.namelist() if n.lower().endswith(".xsf"))
            for n in names:
                yield parse_xsf(_text(zf.read(n), f"{path}:{n}"), f"{path}:{n}")
        return
    try:
        tf = tarfile.open(path)
    except tarfile.TarError as exc:
        raise InputFileError(path, f"cannot open archive ({exc})") from None
    with tf:
        members = sorted((m for m in tf.getmembers() if m.isfile() and m.name.lower().endswith(
            ".xsf")), key=lambda m: m.name)
        for m in members:
            fh = tf.extractfile(m)
            yield parse_xsf(_text(fh.read(), f"{path}:{m.name}"), f"{path}:{m.name}")


#: most columns an extxyz ``Properties`` entry may announce
MAX_EXTXYZ_COLUMNS = 1000


def check_extxyz_frames(text: str, path) -> None:
    """Frame headers of an extxyz text checked before ASE parses it: every atom count an
    integer that the remaining lines can hold, and no ``Properties`` entry wider than
    :data:`MAX_EXTXYZ_COLUMNS` columns.  ASE allocates what a header announces first (a
    count of 10⁸ on a three-line file took 100 s, 2³¹ never returned)."""
    import re

    lines = text.splitlines()
    k = 0
    while k < len(lines):
        head = lines[k].strip()
        if not head:
            k += 1
            continue
        try:
            n = int(head)
        except ValueError:
            raise InputFileError(path, f"expected the number of atoms, got {head[:40]!r}",
                                 k + 1) from None
        if n < 0 or n > len(lines) - k - 2:
            raise InputFileError(path, f"the frame announces {n} atoms but "
                                 f"{max(len(lines) - k - 2, 0)} lines follow", k + 1)
        if k + 1 < len(lines):
            m = re.search(r"Properties=(\S+)", lines[k + 1], re.IGNORECASE)
            for width in (re.findall(r":[A-Za-z]:(\d+)", m.group(1)) if m else []):
                if len(width) > 6 or int(width) > MAX_EXTXYZ_COLUMNS:
                    raise InputFileError(path, f"a Properties entry announces {width[:12]} "
                                         f"columns (at most {MAX_EXTXYZ_COLUMNS})", k + 2)
        k += n + 2


def iter_structures(path: str | Path, format: str | None = None, **kwargs) -> Iterator[Atoms]:
    """Iterate over the structures in ``path`` (see :func:`read_structures`)."""
    path = Path(path)
    if not path.exists():
        raise HdnnpError(f"{path}: no such file or directory")
    fmt = format or guess_format(path)
    if fmt == "xsf":
        yield read_xsf(path)
    elif fmt == "xsf-dir":
        files = sorted(path.glob("*.xsf"))
        if not files:
            raise InputFileError(path, "directory contains no *.xsf files")
        for f in files:
            yield read_xsf(f)
    elif fmt == "archive":
        yield from _iter_archive(path)
    elif fmt == "n2p2":
        yield from read_input_data(path, **kwargs)
    elif fmt == "db":
        from ase.db import connect

        with connect(path) as db:
            for row in db.select(**kwargs):
                atoms = row.toatoms()
                atoms.info["source"] = f"{path}:id={row.id}"
                atoms.info.update(row.key_value_pairs)
                check_structure(atoms, atoms.info["source"])
                yield atoms
    elif fmt in ("extxyz", "ase"):
        import ase.io

        comp = _compression(path)
        try:
            if comp or fmt == "extxyz":
                # ase.io.read on a compressed path re-reads the stream for random access
                # (minutes for a few MB); decompressing into memory takes a second
                raw = _COMPRESSION[comp][0](path.read_bytes()) if comp else path.read_bytes()
                text = _text(raw, str(path))
                if fmt == "extxyz":
                    check_extxyz_frames(text, path)
                source = io.StringIO(text)
                frames = ase.io.read(source, index=":", format="extxyz" if fmt == "extxyz"
                                     else ase.io.formats.filetype(path.stem, read=False))
            else:
                frames = ase.io.read(path, index=":",
                                     format="extxyz" if fmt == "extxyz" else None)
        except HdnnpError:
            raise
        except Exception as exc:  # ASE raises many exception types for bad files
            raise InputFileError(path, f"cannot read structures ({exc.__class__.__name__}: "
                                 f"{exc})") from None
        for k, atoms in enumerate(frames):
            atoms.info.setdefault("source", f"{path}@{k}")
            check_structure(atoms, f"{path}, structure {k + 1}")
            yield atoms
    else:
        raise HdnnpError(f"unknown structure format {fmt!r}")


def read_structures(paths: str | Path | Sequence[str | Path], format: str | None = None,
                    **kwargs) -> list[Atoms]:
    """Read all structures from one or several files, directories or archives."""
    if isinstance(paths, str | Path):
        paths = [paths]
    out: list[Atoms] = []
    for p in paths:
        out.extend(iter_structures(p, format, **kwargs))
    return out


def write_structures(path: str | Path, structures: Sequence[Atoms], format: str | None = None,
                     **kwargs) -> None:
    """Write structures atomically: ``xsf-dir`` (one XSF per structure), ``xsf`` (one
    structure), ``extxyz`` (optionally .xz/.gz/.bz2-compressed), ``n2p2`` or ``db``."""
    path = Path(path)
    fmt = format or ("xsf-dir" if path.suffix == "" else guess_format(path))
    if fmt == "xsf" and len(structures) != 1:
        fmt = "xsf-dir"
    if fmt in ("xsf-dir", "xsf"):
        if fmt == "xsf":
            write_xsf(path, structures[0])
            return
        path.mkdir(parents=True, exist_ok=True)
        width = max(4, len(str(len(structures))))
        for k, atoms in enumerate(structures, start=1):
            write_xsf(path / f"structure{k:0{width}d}.xsf", atoms)
    elif fmt == "extxyz":
        import ase.io

        from hdnnp.fileio import atomic_write_bytes

        buf = io.StringIO()
        ase.io.write(buf, list(structures), format="extxyz")
        data = buf.getvalue().encode()
        comp = _compression(path)
        atomic_write_bytes(path, _COMPRESSION[comp][1](data) if comp else data)
    elif fmt == "n2p2":
        write_input_data(path, structures, **kwargs)
    elif fmt == "db":
        from ase.db import connect

        with connect(path) as db:
            for atoms in structures:
                db.write(atoms)
    else:
        raise HdnnpError(f"cannot write structure format {fmt!r}")
