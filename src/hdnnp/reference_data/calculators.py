r"""Reference calculators: tblite GFN1-xTB by default, any ASE calculator by name.

The reference method labels structures with total energies (eV) and forces (eV/Å).
Default: GFN1-xTB (Grimme, Bannwarth & Shushkov, J. Chem. Theory Comput. 13, 1989
(2017)) through tblite's ASE calculator, a self-consistent-charge tight-binding method
like the DFTB+ parameter sets the thesis used (§2.1.2, §3.1), with Fermi smearing at
the electronic temperature :math:`T_\mathrm{el}` (default 300 K).  GFN2-xTB (Bannwarth,
Ehlert & Grimme, JCTC 15, 1652 (2019)) and IPEA1-xTB are selectable; GFN2 is 2–4×
slower and does not converge on TiO₂ in our tests, so it is not the default.

tblite works with 3D-periodic cells (Γ-point only: use supercells whose reciprocal
lattice contains the special points that matter, e.g. 6×6 or 9×9 graphene cells
contain K, 8×8 cells do not) and with isolated molecules (``pbc=False``).  Its forces
are analytic and equal −∂E/∂r to better than 1e-4 eV/Å with the settings here
(tested by central finite differences in ``tests/test_reference.py``).

Any other ASE calculator is available by name (``"dftb"``, ``"espresso"``,
``"cp2k"``, ``"emt"`` …, see ``ase.calculators.calculator.names``) or as
``"module:Class"``; its keyword arguments come from ``settings``.  The isolated-atom
energies :math:`E^\mathrm{ref}_Z` that turn total energies into cohesive energies
(thesis eq. 4.3),

.. math:: E_\mathrm{coh/atom} = \frac{1}{N}\Big(E - \sum_Z N_Z E^\mathrm{ref}_Z\Big),

are computed with the same method and settings for one atom in vacuum
(:func:`isolated_atom_energies`).  For tblite the atom is computed spin-restricted
with the default occupation (like the condensed-phase labels), with the same
electronic temperature; ``multiplicity`` may be given per element to override.

GFN1-xTB is not DFT: it orders graphite/diamond and the silica polymorphs
differently from PBE.  Every data set records its method and settings.
"""

from __future__ import annotations

import importlib
import platform
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from ase import Atoms

from hdnnp.errors import HdnnpError, MissingDependencyError

#: tblite methods and the elements they are parametrised for (atomic numbers).
TBLITE_METHODS = {"GFN1-xTB": range(1, 87), "GFN2-xTB": range(1, 87), "IPEA1-xTB": range(1, 87)}

_METHOD_ALIASES = {"gfn1": "GFN1-xTB", "gfn1-xtb": "GFN1-xTB", "gfn2": "GFN2-xTB",
                   "gfn2-xtb": "GFN2-xTB", "ipea1": "IPEA1-xTB", "ipea1-xtb": "IPEA1-xTB"}


class SCFError(HdnnpError):
    """A single point whose self-consistent field did not converge (or otherwise failed)."""


@dataclass
class ReferenceSettings:
    """Method and settings of a reference calculation.

    Attributes
    ----------
    method:
        ``"GFN1-xTB"`` (default), ``"GFN2-xTB"``, ``"IPEA1-xTB"`` or the name of an ASE
        calculator (``"dftb"``, ``"espresso"``, ``"module:Class"`` …).
    electronic_temperature:
        Fermi smearing temperature (K) for tblite.
    accuracy:
        tblite numerical accuracy (smaller is tighter; 1.0 is tblite's default and gives
        forces consistent with finite differences to < 1e-5 eV/Å on diamond).
    max_iterations:
        SCF iteration limit (anatase needs more than 250 for some snapshots).
    mixer_damping:
        Broyden mixer damping of the SCF.
    charge:
        Total charge (e).
    calculator_kwargs:
        Keyword arguments for a non-tblite ASE calculator.
    """

    method: str = "GFN1-xTB"
    electronic_temperature: float = 300.0
    accuracy: float = 1.0
    max_iterations: int = 300
    mixer_damping: float = 0.4
    charge: float = 0.0
    calculator_kwargs: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        self.method = canonical_method(self.method)
        if self.electronic_temperature < 0:
            raise HdnnpError("electronic temperature must be ≥ 0 K")
        if self.max_iterations < 1:
            raise HdnnpError("max_iterations must be ≥ 1")

    @property
    def is_tblite(self) -> bool:
        return self.method in TBLITE_METHODS

    def to_dict(self) -> dict:
        d = asdict(self)
        if self.is_tblite:
            d.pop("calculator_kwargs")
        else:
            for k in ("electronic_temperature", "accuracy", "max_iterations", "mixer_damping"):
                d.pop(k)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> ReferenceSettings:
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        return cls(**known)


def canonical_method(method: str) -> str:
    """``"gfn1"`` → ``"GFN1-xTB"`` etc.; other names are returned unchanged."""
    return _METHOD_ALIASES.get(method.strip().lower(), method.strip())


def program_versions(settings: ReferenceSettings | None = None) -> dict[str, str]:
    """Versions of the programs that produce and handle labels (for provenance)."""
    import ase

    from hdnnp._version import __version__

    out = {"hdnnp": __version__, "ase": ase.__version__, "numpy": np.__version__,
           "python": platform.python_version()}
    if settings is None or settings.is_tblite:
        try:
            from importlib.metadata import version

            out["tblite"] = version("tblite")
        except Exception:  # pragma: no cover - tblite is a dependency
            out["tblite"] = "unknown"
    return out


def check_elements(symbols, settings: ReferenceSettings) -> None:
    """Raise :class:`HdnnpError` if an element is not parametrised for the method."""
    if not settings.is_tblite:
        return
    from ase.data import atomic_numbers, chemical_symbols

    allowed = TBLITE_METHODS[settings.method]
    for s in sorted(set(symbols)):
        z = atomic_numbers.get(s)
        if z is None or z not in allowed:
            raise HdnnpError(f"element {s!r} is not parametrised in {settings.method} "
                             f"(it covers {chemical_symbols[allowed.start]}–"
                             f"{chemical_symbols[allowed.stop - 1]}, Z = {allowed.start}–"
                             f"{allowed.stop - 1})")


def check_calculator_files(settings: ReferenceSettings, symbols) -> None:
    """Raise :class:`HdnnpError` (before any job starts) if the method's parameter files
    are missing.

    DFTB+ through ASE's ``Dftb`` calculator reads one Slater–Koster file ``A-B.skf`` for
    every ordered pair of elements from its ``slako_dir`` (the ``slako_dir`` keyword,
    else ``$DFTB_PREFIX``, else the current directory; ``Hamiltonian_SlaterKosterFiles_
    Prefix`` overrides it).  Without this check the first single point fails with a raw
    ``./C-C.skf`` error of the calculator.  Other methods need no files we can check.
    """
    if settings.method.lower() != "dftb":
        return
    import os

    kwargs = settings.calculator_kwargs
    if kwargs.get("Hamiltonian_", "DFTB") != "DFTB":
        return  # xTB inside DFTB+ or another Hamiltonian: no Slater–Koster files
    prefix = kwargs.get("Hamiltonian_SlaterKosterFiles_Prefix")
    if prefix is None:
        prefix = getattr(make_calculator(settings), "slako_dir", None)
    if prefix is None:
        prefix = kwargs.get("slako_dir") or os.environ.get("DFTB_PREFIX", "./")
    prefix = str(prefix).strip('"')
    elements = sorted(set(symbols))
    missing = [f"{a}-{b}.skf" for a in elements for b in elements
               if not os.path.isfile(os.path.join(prefix, f"{a}-{b}.skf"))]
    if missing:
        shown = ", ".join(missing[:6]) + (f" and {len(missing) - 6} more" if len(missing) > 6
                                          else "")
        raise HdnnpError(f"--method dftb needs Slater-Koster files {shown} in {prefix!r}; "
                         "download a set (e.g. mio or matsci from dftb.org) and point to it "
                         "with the environment variable DFTB_PREFIX=DIR or --calculator-kwargs "
                         "'{\"slako_dir\": \"DIR\"}'")


def make_calculator(settings: ReferenceSettings | str | None = None, multiplicity: int | None
                    = None, **kwargs):
    """A fresh ASE calculator for ``settings`` (a :class:`ReferenceSettings` or a method name).

    A fresh calculator per structure makes every label independent of the order in
    which structures are computed (tblite's cached wavefunction would otherwise serve
    as the next SCF's guess).
    """
    if settings is None or isinstance(settings, str):
        settings = ReferenceSettings(method=settings or "GFN1-xTB", **kwargs)
    if settings.is_tblite:
        try:
            from tblite.ase import TBLite
        except ImportError:  # pragma: no cover - tblite is a dependency
            raise MissingDependencyError("tblite", f"the {settings.method} reference") from None
        return TBLite(method=settings.method, accuracy=settings.accuracy,
                      electronic_temperature=settings.electronic_temperature,
                      max_iterations=settings.max_iterations,
                      mixer_damping=settings.mixer_damping, charge=settings.charge,
                      multiplicity=multiplicity, cache_api=False, verbosity=0)
    return ase_calculator(settings.method, **settings.calculator_kwargs)


def ase_calculator(name: str, **kwargs):
    """ASE calculator by name (``ase.calculators`` registry) or ``"package.module:Class"``."""
    if ":" in name:
        module, _, cls = name.partition(":")
        try:
            mod = importlib.import_module(module)
        except ImportError:
            raise MissingDependencyError(module.split(".")[0], f"the calculator {name!r}") \
                from None
        try:
            return getattr(mod, cls)(**kwargs)
        except AttributeError:
            raise HdnnpError(f"module {module!r} has no calculator {cls!r}") from None
    from ase.calculators.calculator import get_calculator_class, names

    if name.lower() not in names:
        raise HdnnpError(f"unknown reference method {name!r}; use GFN1-xTB, GFN2-xTB, "
                         f"IPEA1-xTB, an ASE calculator name ({', '.join(names)}) or "
                         f"'module:Class'")
    try:
        cls = get_calculator_class(name.lower())
    except ImportError as exc:
        raise MissingDependencyError(str(exc.name or name), f"the calculator {name!r}") \
            from None
    return cls(**kwargs)


def single_point(atoms: Atoms, settings: ReferenceSettings | None = None,
                 properties: tuple[str, ...] = ("energy", "forces")) -> dict[str, Any]:
    """Energy (eV), forces (eV/Å) and, for 3D-periodic tblite cells, stress (eV/Å³).

    Raises :class:`SCFError` when the calculation fails (e.g. SCF not converged), and
    :class:`HdnnpError` for elements the method does not cover.
    """
    settings = settings or ReferenceSettings()
    check_elements(atoms.get_chemical_symbols(), settings)
    work = atoms.copy()
    work.calc = make_calculator(settings)
    try:
        energy = float(work.get_potential_energy())
        forces = np.asarray(work.get_forces(), dtype=np.float64)
    except Exception as exc:
        # ASE's CalculationFailed, tblite's RuntimeError, an external code's error:
        # all mean "this structure could not be labelled" and are recorded as such.
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
        raise SCFError(f"{exc.__class__.__name__}: {msg}") from exc
    if not np.isfinite(energy) or not np.all(np.isfinite(forces)):
        raise SCFError("non-finite energy or forces")
    out: dict[str, Any] = {"energy": energy, "forces": forces}
    if "stress" in properties and work.pbc.all():
        try:
            out["stress"] = np.asarray(work.get_stress(), dtype=np.float64)
        except Exception:  # not every calculator gives stress
            pass
    return out


def isolated_atom_energies(elements, settings: ReferenceSettings | None = None,
                           box: float = 20.0,
                           multiplicity: dict[str, int] | None = None) -> dict[str, float]:
    """Energy (eV) of each element as one isolated atom, with the same method and settings.

    tblite: a single atom without periodicity; other calculators: one atom in a cubic
    box of ``box`` Å (periodic codes need a cell).  These are the :math:`E^\\mathrm{ref}_Z`
    of thesis eq. 4.3.
    """
    settings = settings or ReferenceSettings()
    check_elements(elements, settings)
    out = {}
    for el in sorted(set(elements)):
        atom = Atoms(el, positions=[[0.5 * box] * 3], cell=[box] * 3,
                     pbc=not settings.is_tblite)
        mult = (multiplicity or {}).get(el)
        atom.calc = make_calculator(settings, multiplicity=mult) if settings.is_tblite \
            else make_calculator(settings)
        try:
            out[el] = float(atom.get_potential_energy())
        except Exception as exc:
            raise SCFError(f"isolated {el} atom: {exc}") from exc
    return out
