r"""Committee training: several potentials from different seeds, saved as one.

A committee (ensemble) of :math:`K` members shares the data split, descriptor and
architecture; the members differ in their weight initialisation and mini-batch order
(training seeds ``seed``, ``seed + 1``, ...).  The committee's energy is the members'
mean, and its spread :math:`\sigma_E` estimates the model error (Schran, Brezina and
Marsalek, J. Chem. Phys. 153, 104105 (2020); the "query by committee" of active
learning, thesis §6).  Averaging members with independent errors also lowers the error
of the prediction itself.

Layout of a committee run directory::

    RUN/config.json            the committee's configuration
    RUN/member-1/ ... member-K/ complete training runs (log, checkpoints, model, report)
    RUN/model.json             the committee potential (all members in one file)
    RUN/metrics.json, RUN/predictions.npz, RUN/report/   the committee's evaluation
    RUN/split.json, RUN/validation.extxyz, RUN/test.extxyz   the members' common split

Members are trained one after another, or ``jobs`` at a time in separate processes
(with ``threads`` threads each, one by default: on a small CPU count one member per
core uses the machine better than threads within one member).  A run is resumable:
members that finished are kept, interrupted members continue from their checkpoints.
"""

from __future__ import annotations

import json
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor, wait
from pathlib import Path

from hdnnp._version import __version__
from hdnnp.errors import HdnnpError
from hdnnp.fileio import atomic_write_text
from hdnnp.model import NeuralNetworkPotential
from hdnnp.potential import load_potential, save_potential
from hdnnp.training.config import TrainConfig
from hdnnp.training.datasets import prepare_splits
from hdnnp.training.evaluation import evaluate_run, write_split
from hdnnp.training.trainer import Trainer


def member_config(cfg: TrainConfig, k: int) -> TrainConfig:
    """Configuration of member ``k`` (0-based): seed + k, run directory ``member-(k+1)``."""
    d = cfg.to_dict()
    t = d["training"]
    t["seed"] = cfg.training.seed + k
    t["committee"], t["jobs"] = 1, 1
    if cfg.training.jobs > 1 and t["threads"] is None:
        t["threads"] = 1
    d["output"] = str(Path(cfg.output) / f"member-{k + 1}")
    return TrainConfig.from_dict(d)


def _member_state(run_dir: Path) -> str:
    """``done``, ``started`` (a checkpoint to resume from) or ``new``."""
    metrics = run_dir / "metrics.json"
    if metrics.exists() and (run_dir / "model.json").exists():
        if json.loads(metrics.read_text()).get("stop_reason") != "interrupted":
            return "done"
    return "started" if (run_dir / "checkpoint.pt").exists() else "new"


def _train_member(cfg_dict: dict, resume: bool, extend: bool, verbose: bool,
                  prefix: str) -> dict:
    """Train one member in a worker process (``jobs`` > 1); messages go to stdout."""

    def log(*args, **kwargs):
        print(prefix, *args, flush=True)

    try:
        return _member_trainer(TrainConfig.from_dict(cfg_dict), resume, extend, False,
                               log if verbose else None).run()
    except HdnnpError as exc:
        # re-raised as the base class: it crosses the process boundary by pickling
        raise HdnnpError(f"{prefix} {exc}") from None


def _member_trainer(cfg: TrainConfig, resume: bool, extend: bool, progress: bool,
                    log) -> Trainer:
    return Trainer(cfg, resume=resume, progress=progress, log=log, extending=extend)


def train_committee(cfg: TrainConfig, resume: bool = False, progress: bool = True,
                    log=print, extend: bool = False) -> dict:
    """Train (or resume) the committee configured by ``cfg``; returns its metrics.

    ``extend``: the configuration of a resumed committee asks for more epochs or stages,
    so that finished members continue too."""
    verbose = log is not None
    log = log or (lambda *a, **k: None)
    oc = cfg.training
    size = int(oc.committee)
    run_dir = Path(cfg.output)
    members = [member_config(cfg, k) for k in range(size)]
    states = [_member_state(Path(m.output)) for m in members]
    if not resume and any(s != "new" for s in states):
        raise HdnnpError(f"{run_dir} already holds a committee run; use --resume to continue "
                         "it or choose another output directory")
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run_dir / "config.json", json.dumps(cfg.to_dict(), indent=2))
    t0 = time.perf_counter()
    todo = [(k, m, s != "new") for k, (m, s) in enumerate(zip(members, states))
            if s != "done" or extend]
    jobs = max(1, min(int(oc.jobs), len(todo)))
    log(f"committee of {size}: {size - len(todo)} member(s) already trained, training "
        f"{len(todo)}, {jobs} at a time")
    interrupted = False
    if jobs == 1:
        for k, m, res in todo:
            result = _member_trainer(m, res, extend, progress,
                                     lambda *a, k=k, **kw: log(f"member {k + 1}:", *a)).run()
            if result.get("stop_reason") == "interrupted":
                interrupted = True
                break
    else:
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=jobs, mp_context=ctx) as pool:
            futures = [pool.submit(_train_member, m.to_dict(), res, extend, verbose,
                                   f"member {k + 1}:") for k, m, res in todo]
            try:
                wait(futures)
            except KeyboardInterrupt:
                # the workers received the interrupt too: they stop, keeping their best models
                interrupted = True
                log("interrupted: the members stop and keep their best models")
                wait(futures)
            for f in futures:
                exc = f.exception()
                if isinstance(exc, KeyboardInterrupt):
                    interrupted = True
                elif exc is not None:
                    raise exc
                elif f.result().get("stop_reason") == "interrupted":
                    interrupted = True

    trained = [(k, m) for k, m in enumerate(members) if (Path(m.output) / "model.json").exists()]
    if not trained:
        raise HdnnpError(f"{run_dir}: no committee member finished; nothing to save")
    models = [load_potential(Path(m.output) / "model.json") for _, m in trained]
    model = NeuralNetworkPotential.committee(models) if len(models) > 1 else models[0]
    member_metrics = []
    for k, m in trained:
        path = Path(m.output) / "metrics.json"
        mm = json.loads(path.read_text()) if path.exists() else {}
        member_metrics.append({"member": k + 1, "seed": m.training.seed,
                               **{key: mm[key] for key in (
                                   "test_energy_rmse_meV_per_atom", "test_force_rmse_eV_per_A",
                                   "validation_energy_rmse_meV_per_atom",
                                   "validation_force_rmse_eV_per_A",
                                   "train_energy_rmse_meV_per_atom", "train_force_rmse_eV_per_A",
                                   "best_epoch", "epochs_run", "stop_reason", "wall_s")
                                  if key in mm}})
    provenance = {"committee": len(trained), "committee_requested": size,
                  "members": member_metrics, "member_training": models[0].metadata.get(
                      "training", {}), "config": cfg.to_dict(), "hdnnp_version": __version__}
    # written before the evaluation too: the report reads the reference energies from it
    save_potential(model, run_dir / "model.json", training=provenance)

    splits, _ = prepare_splits(cfg)
    write_split(run_dir, splits)
    metrics = evaluate_run(model, run_dir, splits, figures=cfg.figures, progress=progress)
    elapsed = time.perf_counter() - t0
    metrics.update({
        "committee": len(trained), "members": member_metrics,
        "stop_reason": "interrupted" if interrupted else "members trained",
        "epochs_run": max((mm.get("epochs_run", 0) for mm in member_metrics), default=0),
        "wall_s": round(elapsed, 2)})
    atomic_write_text(run_dir / "metrics.json", json.dumps(metrics, indent=2))
    provenance.update({k: v for k, v in metrics.items() if isinstance(v, int | float)})
    save_potential(model, run_dir / "model.json", training=provenance)
    missing = size - len(trained)
    log(f"committee of {len(trained)} member(s) saved: {run_dir / 'model.json'}"
        + (f" ({missing} member(s) unfinished; continue with --resume)" if missing else ""))
    return metrics
