r"""NVT molecular-dynamics sampling of reference structures (thesis §3.1, §6.1).

The thesis samples canonical (NVT) trajectories at T = 300, 500, 750 and 1000 K with
a 0.273 fs time step (after Ryczko et al.) and keeps one snapshot every 273 fs
(1000 steps), long enough for successive snapshots to be decorrelated (§3.4.3).
:func:`sample_nvt` does the same with a *sampler* that may differ from the reference
method (§6.1: sample with a cheap force field, label with the accurate method):

* a classical force field of :mod:`hdnnp.reference_data.forcefields`
  (``"tersoff-bnc"``, ``"matsui-akaogi"`` …; default: the material's force field) —
  dynamics run natively in LAMMPS;
* the reference itself (``"GFN1-xTB"``, ``"reference"``) or any ASE calculator
  (``"ase:emt"``, an ``ase.calculators`` object) — dynamics run in ASE;
* a trained hdnnp potential (``"hdnnp:model.json"`` or the path of a potential file or
  n2p2 directory), for the iterative refinement of §6.1.

Thermostats: Langevin (default; LAMMPS ``fix langevin`` / ASE ``Langevin``,
damping time τ = 100 fs, i.e. friction 1/τ) or Nosé–Hoover (``fix nvt`` / ASE
``NoseHooverChainNVT``, same τ).  The first ``equilibration_fs`` of each temperature
are discarded.  Initial velocities are Maxwell–Boltzmann at T with zero total momentum.

High-pressure sampling (thesis §5.1.1: 2D silica in fixed lattice vectors compressed by
4.5 %): ``compress=0.045`` scales the lattice vectors (in-plane only for sheets) and
the coordinates by 1 − 0.045 and keeps the cell fixed during the run.

Every snapshot carries its provenance in ``atoms.info``: ``material``,
``temperature_K``, ``md_step``, ``md_time_fs`` (from the start of the run, including
equilibration), ``sampler``, ``thermostat``, ``timestep_fs``, ``seed``, ``compress``
and ``sampler_energy_eV``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from ase import Atoms

from hdnnp.errors import HdnnpError

#: Thesis defaults (§3.1.1).
DEFAULT_TEMPERATURES = (300.0, 500.0, 750.0, 1000.0)


@dataclass
class SamplingSettings:
    """NVT sampling protocol.  Times in fs, temperatures in K."""

    temperatures: Sequence[float] = DEFAULT_TEMPERATURES
    n_snapshots: int = 100            # kept per temperature
    timestep_fs: float = 0.273
    interval_fs: float = 273.0
    equilibration_fs: float = 1000.0
    thermostat: str = "langevin"
    damping_fs: float = 100.0
    compress: float = 0.0
    seed: int = 0

    def __post_init__(self):
        self.temperatures = tuple(float(t) for t in self.temperatures)
        if not self.temperatures or min(self.temperatures) <= 0:
            raise HdnnpError("temperatures must be positive (K)")
        if self.timestep_fs <= 0 or self.interval_fs <= 0 or self.equilibration_fs < 0:
            raise HdnnpError("time step and snapshot interval must be > 0, equilibration ≥ 0")
        if self.n_snapshots < 1:
            raise HdnnpError("n_snapshots must be ≥ 1")
        if self.thermostat not in ("langevin", "nose-hoover"):
            raise HdnnpError(f"unknown thermostat {self.thermostat!r} (langevin, nose-hoover)")
        if not 0.0 <= self.compress < 0.5:
            raise HdnnpError(f"compression must be in [0, 0.5), got {self.compress}")

    @property
    def interval_steps(self) -> int:
        return max(1, round(self.interval_fs / self.timestep_fs))

    @property
    def equilibration_steps(self) -> int:
        return round(self.equilibration_fs / self.timestep_fs)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["temperatures"] = list(self.temperatures)
        return d


@dataclass
class Sampler:
    """A resolved sampler: a LAMMPS force field or an ASE calculator factory."""

    name: str
    forcefield: object | None = None            # hdnnp.reference_data.forcefields.ForceField
    make_calculator: Callable[[], object] | None = None


def resolve_sampler(spec, atoms: Atoms | None = None) -> Sampler:
    """Turn a sampler specification into a :class:`Sampler`.

    ``None`` → the material's default force field; a force-field name (optionally
    ``"ff:NAME"``); ``"reference"`` or a tblite method (``"GFN1-xTB"``);
    ``"hdnnp:PATH"`` or the path of a potential; ``"ase:NAME"`` (ASE calculator by
    name); or an ASE calculator object.
    """
    from hdnnp.reference_data import forcefields
    from hdnnp.reference_data.calculators import TBLITE_METHODS, canonical_method, make_calculator

    if spec is None:
        if atoms is None:
            raise HdnnpError("no sampler given")
        ff = forcefields.default_force_field(atoms)
        return Sampler(ff.name, forcefield=ff)
    if not isinstance(spec, str):
        if hasattr(spec, "get_potential_energy") or hasattr(spec, "calculate"):
            return Sampler(getattr(spec, "name", spec.__class__.__name__),
                           make_calculator=lambda: spec)
        if isinstance(spec, forcefields.ForceField):
            return Sampler(spec.name, forcefield=spec)
        raise HdnnpError(f"cannot use {spec!r} as a sampler")
    s = spec.strip()
    if s.lower().startswith("ff:"):
        ff = forcefields.get_force_field(s[3:])
        return Sampler(ff.name, forcefield=ff)
    if s.lower() in forcefields.FORCE_FIELDS:
        return Sampler(s.lower(), forcefield=forcefields.FORCE_FIELDS[s.lower()])
    if s.lower() == "reference" or canonical_method(s) in TBLITE_METHODS:
        method = "GFN1-xTB" if s.lower() == "reference" else canonical_method(s)
        return Sampler(method, make_calculator=lambda: make_calculator(method))
    if s.lower().startswith("ase:"):
        from hdnnp.reference_data.calculators import ase_calculator

        name = s[4:]
        return Sampler(s, make_calculator=lambda: ase_calculator(name))
    path = s[6:] if s.lower().startswith("hdnnp:") else s
    if s.lower().startswith("hdnnp:") or Path(path).exists():
        if not Path(path).exists():
            raise HdnnpError(f"{path}: no such potential file or directory")

        def _hdnnp():
            import hdnnp

            return hdnnp.Calculator(path, extrapolation="ignore")

        return Sampler(f"hdnnp:{path}", make_calculator=_hdnnp)
    raise HdnnpError(f"unknown sampler {spec!r}: use a force field "
                     f"({', '.join(forcefields.FORCE_FIELDS)}), 'reference', a tblite method, "
                     f"'ase:NAME' or 'hdnnp:MODEL'")


def compress_cell(atoms: Atoms, fraction: float) -> Atoms:
    """Copy of ``atoms`` with lattice vectors and coordinates scaled by 1 − ``fraction``.

    Sheets keep their cell height (only in-plane vectors and the sheet's own
    coordinates scale), see :func:`hdnnp.reference_data.augment.scale`.
    """
    from hdnnp.reference_data.augment import scale

    return scale(atoms, -float(fraction))


def _temperature_seed(seed: int, temperature: float) -> int:
    return int(np.random.SeedSequence([int(seed), round(temperature * 1000)])
               .generate_state(1)[0])


def sample_nvt(atoms: Atoms, sampler=None, settings: SamplingSettings | None = None,
               progress: bool = True, on_snapshot: Callable[[Atoms], None] | None = None
               ) -> list[Atoms]:
    """Run NVT MD at every temperature of ``settings`` and return the snapshots.

    ``sampler``: see :func:`resolve_sampler`.  The same start structure is used for
    every temperature; each temperature has its own random stream derived from
    ``settings.seed``, so results are reproducible.
    """
    settings = settings or SamplingSettings()
    smp = resolve_sampler(sampler, atoms)
    start = compress_cell(atoms, settings.compress) if settings.compress else atoms.copy()
    start.calc = None
    n_prod = settings.n_snapshots * settings.interval_steps
    total = len(settings.temperatures) * (settings.equilibration_steps + n_prod)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, unit="step", desc=f"MD ({smp.name})", leave=False)
    out: list[Atoms] = []
    try:
        for temp in settings.temperatures:
            seed_t = _temperature_seed(settings.seed, temp)
            runner = _run_lammps if smp.forcefield is not None else _run_ase
            for snap in runner(start, smp, settings, temp, seed_t, bar):
                snap.info.update({
                    "material": str(atoms.info.get("material", snap.get_chemical_formula())),
                    "temperature_K": float(temp), "sampler": smp.name,
                    "thermostat": settings.thermostat, "timestep_fs": settings.timestep_fs,
                    "seed": int(settings.seed), "compress": float(settings.compress),
                    "md_time_fs": round(snap.info["md_step"] * settings.timestep_fs, 6)})
                out.append(snap)
                if on_snapshot is not None:
                    on_snapshot(snap)
    finally:
        if bar is not None:
            bar.close()
    return out


def _chunks(n: int, size: int = 2000):
    while n > 0:
        k = min(n, size)
        yield k
        n -= k


def _run_lammps(start: Atoms, smp: Sampler, st: SamplingSettings, temp: float, seed: int,
                bar) -> list[Atoms]:
    from hdnnp.reference_data.forcefields import LammpsSession

    sess = LammpsSession(start, smp.forcefield)
    snaps = []
    try:
        sess.run_nvt(temp, st.timestep_fs, 0, seed, st.thermostat, st.damping_fs)
        step = 0
        for k in _chunks(st.equilibration_steps):
            sess.run_nvt(temp, st.timestep_fs, k, seed, reset=False)
            step += k
            if bar is not None:
                bar.update(k)
        for _ in range(st.n_snapshots):
            sess.run_nvt(temp, st.timestep_fs, st.interval_steps, seed, reset=False)
            step += st.interval_steps
            if bar is not None:
                bar.update(st.interval_steps)
            snap = sess.snapshot(start)
            snap.info["md_step"] = step
            snap.info["sampler_energy_eV"] = sess.energy()
            snap.info["md_temperature_K"] = sess.temperature()
            snaps.append(snap)
    finally:
        sess.close()
    return snaps


def _run_ase(start: Atoms, smp: Sampler, st: SamplingSettings, temp: float, seed: int,
             bar) -> list[Atoms]:
    from ase import units
    from ase.constraints import FixCom
    from ase.md.velocitydistribution import Stationary, thermalize_momenta

    work = start.copy()
    work.calc = smp.make_calculator()
    rng = np.random.default_rng(seed)
    thermalize_momenta(work, temperature_K=temp, rng=rng)
    Stationary(work)
    work.set_constraint(FixCom())  # no drift of the centre of mass
    dt = st.timestep_fs * units.fs
    if st.thermostat == "langevin":
        from ase.md.langevin import Langevin

        dyn = Langevin(work, dt, temperature_K=temp, friction=1.0 / (st.damping_fs * units.fs),
                       fixcm=False, rng=rng)
    else:
        from ase.md.nose_hoover_chain import NoseHooverChainNVT

        dyn = NoseHooverChainNVT(work, dt, temperature_K=temp, tdamp=st.damping_fs * units.fs)
    step = 0
    for k in _chunks(st.equilibration_steps, 100):
        dyn.run(k)
        step += k
        if bar is not None:
            bar.update(k)
    snaps = []
    for _ in range(st.n_snapshots):
        dyn.run(st.interval_steps)
        step += st.interval_steps
        if bar is not None:
            bar.update(st.interval_steps)
        snap = work.copy()
        snap.calc = None
        snap.set_constraint()
        snap.arrays.pop("momenta", None)  # positions only, as from LAMMPS
        snap.info["md_step"] = step
        snap.info["sampler_energy_eV"] = float(work.get_potential_energy())
        snap.info["md_temperature_K"] = float(work.get_temperature())
        snaps.append(snap)
    return snaps
