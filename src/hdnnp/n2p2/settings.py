"""The n2p2/RuNNer settings file ``input.nn``.

Format (n2p2 documentation, "Settings file"): one ``keyword [values...]`` per line, ``#``
starts a comment, some keywords repeat (``symfunction_short``, ``atom_energy``,
``element_nodes_short``).  Only the keywords that define a short-range (2G) potential are
interpreted here; every other keyword (training settings such as ``epochs``,
``updater_type``, ``kalman_*``, ``force_weight`` ...) is accepted and ignored, as
``nnp-predict`` and LAMMPS ignore them.  Keywords that would change the potential in a way
hdnnp does not support (charge/4G networks, RuNNer's global symmetry-function shorthands,
electrostatics) are refused with an error naming file and line.

n2p2 files carry no machine-readable units.  By the convention of the n2p2 examples the
header states them in comments::

    # Length unit     : Bohr
    # Energy unit     : Ha

:func:`read_input_nn` picks these up (see :attr:`N2P2Settings.length_unit`); hdnnp's
exporter writes them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from ase.data import atomic_numbers

from hdnnp.errors import InputFileError
from hdnnp.fortran import parse_float, parse_int

#: Keywords that may appear several times.
MULTI_KEYWORDS = ("symfunction_short", "atom_energy", "element_nodes_short")

#: Keywords whose presence means a potential hdnnp cannot run exactly.
UNSUPPORTED_KEYWORDS = {
    "global_symfunction_short": "RuNNer's global symmetry-function shorthand; write the "
                                "functions out as symfunction_short lines",
    "element_symfunction_short": "RuNNer's per-element symmetry-function shorthand; write "
                                 "the functions out as symfunction_short lines",
    "global_pairsymfunction_short": "pair-NN symmetry functions are not supported",
    "use_electrostatics": "electrostatic (charge) networks are not supported",
    "symfunction_electrostatic": "electrostatic (charge) networks are not supported",
    "global_hidden_layers_electrostatic": "electrostatic (charge) networks are not supported",
}

_UNIT_RE = re.compile(r"^\s*#+\s*(length|energy)\s+units?\s*:\s*([A-Za-z/]+)", re.IGNORECASE)
_UNIT_ALIASES = {"bohr": "bohr", "a0": "bohr", "au": None, "angstrom": "angstrom",
                 "ang": "angstrom", "a": "angstrom", "å": "angstrom", "ha": "hartree",
                 "hartree": "hartree", "ev": "eV", "ry": "ry", "rydberg": "ry",
                 "nm": "nm", "kcal/mol": "kcal/mol", "kj/mol": "kj/mol"}


@dataclass
class N2P2Settings:
    """Parsed ``input.nn``: keyword -> list of (value string, line number)."""

    path: Path
    entries: dict[str, list[tuple[str, int]]] = field(default_factory=dict)
    #: Units stated in the header comments (``None`` if absent), canonical hdnnp names.
    length_unit: str | None = None
    energy_unit: str | None = None

    def has(self, key: str) -> bool:
        return key in self.entries

    def get(self, key: str, default: str | None = None) -> str | None:
        vals = self.entries.get(key)
        return vals[0][0] if vals else default

    def line(self, key: str) -> int | None:
        vals = self.entries.get(key)
        return vals[0][1] if vals else None

    def all(self, key: str) -> list[tuple[str, int]]:
        return list(self.entries.get(key, []))

    def error(self, message: str, key: str | None = None, line: int | None = None):
        return InputFileError(self.path, message, line if line is not None else (
            self.line(key) if key else None))

    def require(self, key: str) -> str:
        if key not in self.entries:
            raise self.error(f"required keyword {key!r} is missing")
        return self.entries[key][0][0]

    def _first_field(self, key: str, parse, default):
        if key not in self.entries:
            return default
        text, line = self.entries[key][0]
        fields = text.split()
        if not fields:
            raise self.error(f"{key} needs a value", line=line)
        return parse(fields[0], self.path, line, key)

    def float_value(self, key: str, default: float | None = None) -> float | None:
        return self._first_field(key, parse_float, default)

    def int_value(self, key: str, default: int | None = None) -> int | None:
        return self._first_field(key, parse_int, default)

    # ------------------------------------------------------------- semantics
    def elements(self) -> list[str]:
        """Elements sorted by atomic number (n2p2's element order)."""
        text = self.require("elements")
        line = self.line("elements")
        elements = text.split()
        if not elements:
            raise self.error("elements: no element given", line=line)
        for e in elements:
            if e not in atomic_numbers or e == "X":
                raise self.error(f"elements: unknown chemical element {e!r}", line=line)
        if len(set(elements)) != len(elements):
            raise self.error("elements: an element is listed twice", line=line)
        n = self.int_value("number_of_elements")
        if n is None:
            raise self.error("required keyword 'number_of_elements' is missing")
        if n != len(elements):
            raise self.error(f"number_of_elements is {n} but {len(elements)} elements are "
                             "listed", key="number_of_elements")
        return sorted(elements, key=lambda e: atomic_numbers[e])

    def scaling_mode(self) -> str:
        """n2p2's symmetry-function scaling type: none, scale, center, scalecenter, sigma."""
        scale = self.has("scale_symmetry_functions")
        center = self.has("center_symmetry_functions")
        if scale and center:
            return "scalecenter"
        if scale:
            return "scale"
        if center:
            return "center"
        if self.has("scale_symmetry_functions_sigma"):
            return "sigma"
        return "none"

    def cutoff(self) -> tuple[int, float]:
        """(cutoff type, inner-cutoff parameter α)."""
        text = self.require("cutoff_type")
        line = self.line("cutoff_type")
        fields = text.split()
        if not fields:
            raise self.error("cutoff_type needs a value", line=line)
        kind = parse_int(fields[0], self.path, line, "cutoff_type")
        if not 0 <= kind <= 8:
            raise self.error(f"cutoff_type {kind} is not one of n2p2's types 0-8", line=line)
        alpha = parse_float(fields[1], self.path, line, "cutoff_type alpha") \
            if len(fields) > 1 else 0.0
        if not 0.0 <= alpha < 1.0:
            raise self.error(f"cutoff_type: inner cutoff parameter alpha = {alpha} must be in "
                             "[0, 1)", line=line)
        return kind, alpha


def read_input_nn(path: str | Path) -> N2P2Settings:
    """Read an n2p2/RuNNer ``input.nn`` (see the module docstring)."""
    path = Path(path)
    if not path.is_file():
        raise InputFileError(path, "no such file (an n2p2 potential directory needs input.nn)")
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise InputFileError(path, f"cannot read file ({exc})") from None
    settings = N2P2Settings(path)
    for lineno, raw in enumerate(text.splitlines(), start=1):
        m = _UNIT_RE.match(raw)
        if m:
            unit = _UNIT_ALIASES.get(m.group(2).strip().lower(), m.group(2).strip())
            if unit is not None:
                if m.group(1).lower() == "length" and settings.length_unit is None:
                    settings.length_unit = unit
                elif m.group(1).lower() == "energy" and settings.energy_unit is None:
                    settings.energy_unit = unit
        body = raw.split("#", 1)[0].strip()
        if not body:
            continue
        fields = body.split(None, 1)
        key = fields[0]
        value = fields[1].strip() if len(fields) > 1 else ""
        if key in UNSUPPORTED_KEYWORDS:
            raise InputFileError(path, f"keyword {key!r}: {UNSUPPORTED_KEYWORDS[key]}", lineno)
        if key in settings.entries and key not in MULTI_KEYWORDS:
            first = settings.entries[key][0][1]
            raise InputFileError(path, f"keyword {key!r} repeats the one on line {first}",
                                 lineno)
        settings.entries.setdefault(key, []).append((value, lineno))
    nnp_type = settings.get("nnp_type")
    if nnp_type is not None and nnp_type.split()[:1] not in (["0"], ["2"]):
        raise settings.error(f"nnp_type {nnp_type}: only short-range (2G) potentials are "
                             "supported", key="nnp_type")
    nn_type = settings.get("nn_type_short")
    if nn_type is not None and nn_type.split()[:1] != ["1"]:
        raise settings.error(f"nn_type_short {nn_type}: only atomic (Behler-Parrinello) "
                             "networks are supported", key="nn_type_short")
    return settings
