"""Units and conversion factors.

hdnnp works in eV and Å everywhere inside; files in other units are converted at
the file boundary with the factors below (CODATA values as used by ASE, ``ase.units``).
"""

from __future__ import annotations

from ase import units as _ase_units

#: One Bohr radius in Å.
BOHR: float = float(_ase_units.Bohr)
#: One Hartree in eV.
HARTREE: float = float(_ase_units.Hartree)
#: Boltzmann constant in eV/K.
KB: float = float(_ase_units.kB)
#: 1 eV/Å^3 in GPa.
EV_PER_A3_IN_GPA: float = float(1.0 / _ase_units.GPa)

LENGTH_UNITS = {"angstrom": 1.0, "a": 1.0, "ang": 1.0, "bohr": BOHR, "nm": 10.0}
ENERGY_UNITS = {"ev": 1.0, "hartree": HARTREE, "ha": HARTREE, "kcal/mol": float(
    _ase_units.kcal / _ase_units.mol), "kj/mol": float(_ase_units.kJ / _ase_units.mol),
    "ry": 0.5 * HARTREE, "rydberg": 0.5 * HARTREE}


def length_factor(unit: str) -> float:
    """Factor that converts a length in ``unit`` to Å."""
    try:
        return LENGTH_UNITS[unit.strip().lower()]
    except KeyError:
        from hdnnp.errors import HdnnpError

        raise HdnnpError(
            f"unknown length unit {unit!r}; known: {', '.join(sorted(LENGTH_UNITS))}"
        ) from None


def energy_factor(unit: str) -> float:
    """Factor that converts an energy in ``unit`` to eV."""
    try:
        return ENERGY_UNITS[unit.strip().lower()]
    except KeyError:
        from hdnnp.errors import HdnnpError

        raise HdnnpError(
            f"unknown energy unit {unit!r}; known: {', '.join(sorted(ENERGY_UNITS))}"
        ) from None
