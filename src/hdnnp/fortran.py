"""Numbers as Fortran programs write them (n2p2/RuNNer and ænet files, XSF).

Fortran writes double-precision exponents with ``d`` (``1.0d-3``, ``-4.2D+01``), which
Python's ``float`` refuses.  :func:`fortran_float` is the one parser every reader of a
Fortran-written file uses; :func:`parse_float`, :func:`parse_int` and :func:`parse_count`
wrap it with the project's one-line errors naming file and line
(:class:`hdnnp.errors.InputFileError`).
"""

from __future__ import annotations

import math
import re
from pathlib import Path

from hdnnp.errors import InputFileError

#: Fortran's ``ES``/``E`` edit descriptors drop the exponent letter when the exponent has
#: three digits: ``1.234567-100`` is 1.234567e-100.
_DROPPED_EXPONENT_LETTER = re.compile(r"^([+-]?\d*\.\d*)([+-]\d{3,})$")


def fortran_float(text: str, exponent_letter_optional: bool = False) -> float:
    """``float`` that also accepts Fortran ``d``/``D`` exponents and, with
    ``exponent_letter_optional`` (for files written by Fortran's formatted output, such
    as ænet's ascii potentials), the three-digit exponent without a letter
    (``1.0-100``); ``ValueError`` otherwise."""
    if exponent_letter_optional:
        m = _DROPPED_EXPONENT_LETTER.match(text)
        if m:
            text = m.group(1) + "E" + m.group(2)
    try:
        return float(text)
    except ValueError:
        if "d" not in text and "D" not in text:
            raise
        return float(text.replace("d", "e").replace("D", "E"))


def _shown(text: str) -> str:
    return repr(text) if len(text) <= 40 else repr(text[:30]) + f"... ({len(text)} characters)"


def parse_float(text: str, path: str | Path, line: int, what: str, finite: bool = True,
                bound: float | None = None) -> float:
    """A float from a settings or data file (Fortran ``1.0d-3`` exponents accepted).

    NaN is always refused, ±inf (also ``1e400``) unless ``finite`` is False, and with
    ``bound`` a magnitude beyond it; the error names file and line."""
    try:
        x = fortran_float(text)
    except ValueError:
        raise InputFileError(path, f"{what}: {_shown(text)} is not a number", line) from None
    if math.isnan(x) or (finite and math.isinf(x)):
        raise InputFileError(path, f"{what}: {_shown(text)} is not a finite number", line)
    if bound is not None and math.isfinite(x) and abs(x) > bound:
        raise InputFileError(path, f"{what}: {x:g} is out of range (|{what}| ≤ {bound:g})",
                             line)
    return x


def parse_int(text: str, path: str | Path, line: int, what: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise InputFileError(path, f"{what}: {_shown(text)} is not an integer", line) from None


def parse_count(text: str, path: str | Path, line: int, what: str, low: int,
                high: int) -> int:
    """A whole number in [``low``, ``high``] (``25`` or ``25.0``, as n2p2 accepts), checked
    before anything of that size is allocated."""
    x = parse_float(text, path, line, what)
    if x != int(x):
        raise InputFileError(path, f"{what}: {_shown(text)} is not a whole number", line)
    if not low <= x <= high:
        raise InputFileError(path, f"{what}: {int(x)} is out of range ({low}…{high})", line)
    return int(x)
