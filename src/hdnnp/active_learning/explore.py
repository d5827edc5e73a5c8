"""Exploration: NVT MD with the current committee from scaled seed structures.

One *run* per (seed structure, scale factor s, temperature T): the seed is scaled by
1 + s (:func:`hdnnp.reference_data.augment.scale`: lattice vectors and coordinates; sheets
keep their height), then NVT MD with the committee's mean forces as the calculator
(:func:`hdnnp.reference_data.sampling.sample_nvt`: ASE Langevin or Nosé–Hoover chain,
Maxwell–Boltzmann start at T) keeps ``snapshots`` snapshots every ``interval_steps``
after ``equilibration_steps``.  A run whose MD breaks down (atoms closer than
:data:`hdnnp.validation.MIN_DISTANCE`, non-finite forces: the committee is far outside
its training data) ends there and counts as failed; its snapshots so far are kept.

Each run is written to its own file as soon as it ends (``explore/run-NNNN.extxyz``,
atomically), so an interrupted exploration continues with the next missing run.  Seeds
are derived from (explore.seed, iteration, run), so a rerun gives the same snapshots.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from ase import Atoms

from hdnnp.errors import HdnnpError
from hdnnp.fileio import atomic_write_text


def run_plan(seeds: list[Atoms], settings) -> list[dict]:
    """The runs of one exploration: seed index, scale factor and temperature of each."""
    return [{"seed_index": i, "scale_factor": float(s), "temperature_K": float(t)}
            for i in range(len(seeds)) for s in settings.scalings for t in settings.temperatures]


def _run_seed(base: int, iteration: int, run: int) -> int:
    return int(np.random.SeedSequence([int(base), int(iteration), int(run)]).generate_state(1)[0]
               % (2**31 - 1))


def _one_run(start: Atoms, calc, plan: dict, settings, seed: int) -> tuple[list[Atoms], str]:
    from hdnnp.reference_data.sampling import SamplingSettings, sample_nvt

    st = SamplingSettings(temperatures=[plan["temperature_K"]], n_snapshots=1,
                          timestep_fs=settings.timestep_fs,
                          interval_fs=settings.interval_steps * settings.timestep_fs,
                          equilibration_fs=settings.equilibration_steps * settings.timestep_fs,
                          thermostat=settings.thermostat, damping_fs=settings.damping_fs,
                          seed=seed)
    # one sample_nvt call per snapshot would restart the MD; run it once for all snapshots
    st.n_snapshots = settings.snapshots
    kept: list[Atoms] = []
    try:
        kept = sample_nvt(start, calc, st, progress=False, on_snapshot=None)
        status = "ok"
    except HdnnpError as exc:
        status = f"failed: {str(exc).splitlines()[0][:200]}"
    except (FloatingPointError, ValueError, RuntimeError) as exc:
        status = f"failed: {exc.__class__.__name__}: {str(exc)[:200]}"
    return kept, status


def explore(model_path: str | Path, seeds: list[Atoms], settings, iteration: int,
            workdir: str | Path, progress: bool = True, after_run=None
            ) -> tuple[list[Atoms], list[dict]]:
    """Run (or continue) the exploration of one iteration; returns the snapshots and the
    runs (with their status).  Snapshots carry ``iteration``, ``run``, ``seed_index``,
    ``scale_factor``, ``temperature_K`` and ``md_step`` in ``info``.  ``after_run(r)`` is
    called when run ``r`` has been written."""
    import hdnnp
    from hdnnp.io import read_structures, write_structures
    from hdnnp.reference_data.augment import scale

    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    plan = run_plan(seeds, settings)
    calc = hdnnp.Calculator(model_path, extrapolation="ignore")
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(plan), unit="run", desc=f"iteration {iteration}: exploring")
    snapshots: list[Atoms] = []
    runs = []
    try:
        for r, p in enumerate(plan):
            path = workdir / f"run-{r:04d}.extxyz"
            meta_path = workdir / f"run-{r:04d}.json"
            if meta_path.exists():
                meta = json.loads(meta_path.read_text())
                snaps = read_structures(path) if meta["n_snapshots"] else []
            else:
                seed = _run_seed(settings.seed, iteration, r)
                start = seeds[p["seed_index"]].copy()
                start.calc = None
                if p["scale_factor"]:
                    start = scale(start, p["scale_factor"])
                snaps, status = _one_run(start, calc, p, settings, seed)
                for k, a in enumerate(snaps):
                    a.calc = None
                    a.info.pop("augmentation", None)
                    a.info.update({"iteration": iteration, "run": r, "snapshot": k,
                                   "seed_index": p["seed_index"],
                                   "scale_factor": p["scale_factor"],
                                   "temperature_K": p["temperature_K"]})
                if snaps:
                    write_structures(path, snaps)
                meta = {**p, "run": r, "md_seed": seed, "status": status,
                        "n_snapshots": len(snaps)}
                atomic_write_text(meta_path, json.dumps(meta, indent=1))
                if after_run is not None:
                    after_run(r)
            for a in snaps:
                a.info.pop("source", None)
            snapshots.extend(snaps)
            runs.append(meta)
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    return snapshots, runs
