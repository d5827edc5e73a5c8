"""The resumable active-learning loop of ``hdnnp learn``.

Layout of a run directory (every file written atomically with :mod:`hdnnp.fileio`)::

    RUN/config.json                 the settings (a rerun must agree; stop.* may change)
    RUN/reference_energies.json     isolated-atom energies (eV) of all labels
    RUN/summary.json                one line per iteration, status, final model
    RUN/iter-000/state.json         the stages completed, in order
    RUN/iter-000/train-data.extxyz  initial structures + labels of earlier iterations
    RUN/iter-000/train/member-K/    one hdnnp training run per member (warm start)
    RUN/iter-000/train/model.json   the committee
    RUN/iter-000/explore/run-NNNN.{extxyz,json}   MD runs (resumed run by run)
    RUN/iter-000/explored.extxyz    every snapshot with its scores in ``info``
    RUN/iter-000/fingerprints.npy   descriptor fingerprints of the snapshots
    RUN/iter-000/decision.json      counts accurate/candidate/failed; stop or go on
    RUN/iter-000/selected.extxyz    the candidates chosen for labelling
    RUN/iter-000/labels.db          their reference labels (hdnnp label's resumable db)
    RUN/iter-000/report.json, report.md, spread.png

Every iteration runs the stages ``train → explore → score → select → label → report``.
A stage's outputs are complete before its name is appended to ``state.json``; a rerun
skips completed stages and redoes an unfinished one: training restarts its unfinished
members from scratch (training is deterministic, so the committee equals that of an
uninterrupted run), exploration continues with its first missing MD run, labelling
continues in its database (which never holds a structure twice).  So a kill at any
point (even SIGKILL) loses at most the work of the unfinished step, and no label or
iteration is duplicated.

The loop stops after an iteration whose exploration is accurate (fraction of snapshots
below the lower trust level ≥ ``stop.accurate_fraction``), when the label budget is
spent, when nothing is left to select, or after ``stop.max_iterations``; the last
iteration's committee is the result (``summary.json``: ``final_model``).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
from pathlib import Path

import numpy as np

from hdnnp.active_learning.config import LearnConfig, train_config
from hdnnp.errors import HdnnpError
from hdnnp.fileio import atomic_path, atomic_write_text

STAGES = ("train", "explore", "score", "select", "label", "report")

#: Environment variable of the test hook: a comma-separated list of points
#: (``iter-001/label``, ``iter-000/train:marked``, ``iter-000/explore/run-0003``) at which
#: the process kills itself with SIGKILL — the resumability test's stand-in for a crash.
KILL_ENV = "HDNNP_LEARN_KILL_AT"


def _kill_point(point: str) -> None:
    wanted = os.environ.get(KILL_ENV, "")
    if wanted and point in [w.strip() for w in wanted.split(",")]:
        os.kill(os.getpid(), signal.SIGKILL)


def _json(path: Path, data) -> None:
    atomic_write_text(path, json.dumps(data, indent=1, default=_plain) + "\n")


def _plain(o):
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON-serialisable: {type(o).__name__}")


# ------------------------------------------------------------------ evaluation
def evaluate(model, dataset, chunk: int = 16) -> dict:
    """Errors of ``model`` on a labelled ``dataset``: energy MAE and RMSE per atom
    (meV/atom) and force-component RMSE (eV/Å)."""
    import torch

    from hdnnp.neighbours import build_batch

    model = model.eval()
    dtype = next(model.parameters()).dtype
    de, df = [], []
    for start in range(0, len(dataset), chunk):
        structs = [dataset[k] for k in range(start, min(start + chunk, len(dataset)))]
        batch = build_batch(structs, model.elements, model.cutoff, dtype=dtype)
        out = model(batch, forces=True)
        e = out["energy"].detach().double().cpu().numpy()
        f = out["forces"].detach().double().cpu().numpy()
        offset = 0
        for a, ek in zip(structs, e):
            n = len(a)
            de.append((ek - a.get_potential_energy()) / n)
            df.append((f[offset:offset + n] - a.get_forces()).ravel())
            offset += n
        del out, batch
        torch.cuda.empty_cache() if torch.cuda.is_available() else None
    de = np.asarray(de)
    df = np.concatenate(df) if df else np.zeros(0)
    return {"n_structures": len(de),
            "energy_mae_meV_per_atom": float(np.mean(np.abs(de)) * 1000) if len(de) else None,
            "energy_rmse_meV_per_atom": float(np.sqrt(np.mean(de**2)) * 1000) if len(de)
            else None,
            "force_rmse_eV_per_A": float(np.sqrt(np.mean(df**2))) if df.size else None}


# ------------------------------------------------------------------ the loop
class Learner:
    """One active-learning run directory (see the module docstring)."""

    def __init__(self, cfg: LearnConfig, progress: bool = True, log=print):
        self.cfg = cfg
        self.run_dir = Path(cfg.output)
        self.progress = progress
        self.log = log or (lambda *a, **k: None)
        self._initial = None
        self._validation = None
        self._seeds = None

    # -- bookkeeping
    def iter_dir(self, i: int) -> Path:
        return self.run_dir / f"iter-{i:03d}"

    def stages_done(self, i: int) -> list[str]:
        p = self.iter_dir(i) / "state.json"
        return json.loads(p.read_text())["stages"] if p.exists() else []

    def _mark(self, i: int, stage: str) -> None:
        _kill_point(f"iter-{i:03d}/{stage}")
        done = self.stages_done(i)
        if stage not in done:
            done.append(stage)
        _json(self.iter_dir(i) / "state.json", {"stages": done})
        _kill_point(f"iter-{i:03d}/{stage}:marked")

    def _check_config(self) -> None:
        saved = self.run_dir / "config.json"
        mine = self.cfg.model_dump(mode="json")
        if saved.exists():
            old = json.loads(saved.read_text())

            def core(d):
                d = json.loads(json.dumps(d))
                d.pop("stop", None)
                d.pop("output", None)
                for k in ("workers", "scheduler", "in_process"):
                    d.get("label", {}).pop(k, None)
                return d

            if core(old) != core(mine):
                diff = sorted(k for k in set(core(old)) | set(core(mine))
                              if core(old).get(k) != core(mine).get(k))
                raise HdnnpError(f"{self.run_dir} was started with other settings (differ in: "
                                 f"{', '.join(diff)}); only stop.* and label.workers/scheduler "
                                 "may change on a rerun; use another output directory")
        # read the inputs before the run directory is claimed: a wrong path is an error
        # that a corrected configuration can fix without "other settings"
        self.initial()
        self.seeds()
        self.validation()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        _json(saved, mine)

    # -- data
    def initial(self):
        if self._initial is None:
            from hdnnp.data import load_datasets

            ds = load_datasets(self.cfg.initial, require_energies=True)
            self._initial = ds
        return self._initial

    def validation(self):
        if self._validation is None and self.cfg.validation:
            from hdnnp.data import load_datasets

            self._validation = load_datasets(self.cfg.validation, require_energies=True)
        return self._validation

    def seeds(self):
        if self._seeds is None:
            from hdnnp.data import load_dataset
            from hdnnp.io import read_structures

            seeds = []
            for spec in self.cfg.seeds:
                if str(spec).startswith("bundled:"):
                    seeds.extend(load_dataset(spec).structures)
                else:
                    seeds.extend(read_structures(spec))
            for a in seeds:
                a.calc = None
            self._seeds = seeds
        return self._seeds

    def reference_energies(self) -> dict:
        path = self.run_dir / "reference_energies.json"
        if path.exists():
            return json.loads(path.read_text())
        ref = dict(self.initial().reference_energies)
        elements = sorted({s for a in self.initial() for s in a.get_chemical_symbols()})
        missing = [e for e in elements if e not in ref]
        if missing:
            from hdnnp.reference_data.calculators import isolated_atom_energies

            ref.update(isolated_atom_energies(missing, self.cfg.label.reference_settings()))
        _json(path, ref)
        return ref

    def labels(self, i: int) -> list:
        """Labelled structures of iteration ``i`` (input order; failed SCFs left out)."""
        db = self.iter_dir(i) / "labels.db"
        if not db.exists():
            return []
        from hdnnp.reference_data.labelling import load_labelled

        return list(load_labelled(db).structures)

    def n_selected(self, i: int) -> int:
        p = self.iter_dir(i) / "selected.json"
        return int(json.loads(p.read_text())["n_selected"]) if p.exists() else 0

    def labels_used(self, before: int) -> int:
        """Structures sent to labelling by iterations ``< before``."""
        return sum(self.n_selected(j) for j in range(before))

    # -- stages
    def stage_train(self, i: int) -> None:
        from hdnnp.data import save_dataset
        from hdnnp.model import NeuralNetworkPotential
        from hdnnp.potential import load_potential, save_potential
        from hdnnp.training.run import train

        d = self.iter_dir(i)
        structs = list(self.initial().structures)
        for j in range(i):
            structs.extend(self.labels(j))
        ref = self.reference_energies()
        data_file = d / "train-data.extxyz"
        save_dataset(data_file, structs, reference_energies=ref)
        tdir = d / "train"
        members = []
        K = self.cfg.committee
        for k in range(K):
            out = tdir / f"member-{k + 1}"
            metrics = out / "metrics.json"
            finished = (metrics.exists() and (out / "model.json").exists()
                        and json.loads(metrics.read_text()).get("stop_reason") != "interrupted")
            if not finished:
                shutil.rmtree(out, ignore_errors=True)
                init = None
                if self.cfg.warm_start and i > 0:
                    prev = self.iter_dir(i - 1) / "train" / f"member-{k + 1}" / "model.json"
                    init = str(prev) if prev.exists() else None
                if init is None:
                    init = (self.cfg.train.get("training") or {}).get("init_model")
                mcfg = train_config(self.cfg.train, [str(data_file)], list(self.cfg.validation),
                                    str(out), init_model=init, seed_offset=k)
                self.log(f"iteration {i}: training member {k + 1} of {K} on {len(structs)} "
                         "structures" + (" (warm start)" if init else ""))
                train(mcfg, progress=self.progress, log=None)
                _kill_point(f"iter-{i:03d}/train/member-{k + 1}")
            members.append(load_potential(out / "model.json"))
        committee = NeuralNetworkPotential.committee(members)
        info = {"iteration": i, "n_train_structures": len(structs), "members": K}
        val = self.validation()
        if val is not None:
            info["validation"] = evaluate(committee, val)
        save_potential(committee, tdir / "model.json", training={"active_learning": info})
        _json(tdir / "evaluation.json", info)

    def stage_explore(self, i: int) -> None:
        from hdnnp.active_learning.explore import explore
        from hdnnp.io import write_structures

        d = self.iter_dir(i)
        snaps, runs = explore(d / "train" / "model.json", self.seeds(), self.cfg.explore, i,
                              d / "explore", progress=self.progress,
                              after_run=lambda r: _kill_point(f"iter-{i:03d}/explore/run-{r:04d}"))
        if not snaps:
            raise HdnnpError(f"{d}: every MD run failed at once; lower the temperatures or "
                             "check the seed structures")
        write_structures(d / "explored.extxyz", snaps)
        _json(d / "explore" / "runs.json", runs)

    def stage_score(self, i: int) -> None:
        from hdnnp.active_learning.score import min_pair_distance, score_structures
        from hdnnp.active_learning.select import classify
        from hdnnp.io import read_structures, write_structures

        d = self.iter_dir(i)
        snaps = read_structures(d / "explored.extxyz")
        for a in snaps:
            a.info.pop("source", None)
        scores, fps = score_structures(d / "train" / "model.json", snaps, self.progress,
                                       desc=f"iteration {i}: scoring")
        for a, s in zip(snaps, scores):
            a.info.update(s)
            a.info["min_pair_distance"] = min_pair_distance(a)
        with atomic_path(d / "fingerprints.npy") as tmp:
            with open(tmp, "wb") as fh:
                np.save(fh, fps)
        write_structures(d / "explored.extxyz", snaps)
        key = self.cfg.select.score
        values = np.array([s[key] for s in scores], dtype=float)
        pair_ok = np.array([a.info["min_pair_distance"] for a in snaps]) >= \
            self.cfg.select.min_pair_distance
        classes = classify(values, self.cfg.select.lower, self.cfg.select.upper, pair_ok)
        counts = {c: int((classes == c).sum()) for c in ("accurate", "candidate", "failed")}
        frac = counts["accurate"] / max(len(snaps), 1)
        used = self.labels_used(i)
        stop = self._stop_reason(i, frac, used, counts["candidate"])
        _json(d / "decision.json", {"counts": counts, "n_snapshots": len(snaps),
                                    "accurate_fraction": frac, "labels_used_before": used,
                                    "stop": stop})
        # "score" is marked by run(); the decision belongs to it

    def _stop_reason(self, i: int, accurate_fraction: float, used: int,
                     candidates: int) -> str | None:
        st = self.cfg.stop
        if accurate_fraction >= st.accurate_fraction:
            return "converged"
        if used >= st.label_budget:
            return "label budget spent"
        if i + 1 >= st.max_iterations:
            return "max iterations"
        if candidates == 0:
            return "no candidates"
        return None

    def _reopen(self, i: int, reported_stop: str) -> bool:
        """After a rerun with a larger budget or more iterations, let the last iteration
        (which stopped for the old limits and labelled nothing) select and label.
        Idempotent: a kill inside it is repaired by the next rerun."""
        if reported_stop not in ("label budget spent", "max iterations"):
            return False
        dec = self.decision(i)
        if self._stop_reason(i, dec["accurate_fraction"], dec["labels_used_before"],
                             dec["counts"]["candidate"]) is not None:
            return False
        dec["stop"] = None
        _json(self.iter_dir(i) / "decision.json", dec)
        _json(self.iter_dir(i) / "state.json", {"stages": ["train", "explore", "score"]})
        self.log(f"iteration {i}: the new limits allow more labels; continuing")
        return True

    def decision(self, i: int) -> dict:
        return json.loads((self.iter_dir(i) / "decision.json").read_text())

    def stage_select(self, i: int) -> None:
        from hdnnp.active_learning.score import score_structures
        from hdnnp.active_learning.select import select
        from hdnnp.io import read_structures, write_structures

        d = self.iter_dir(i)
        dec = self.decision(i)
        chosen: list[int] = []
        snaps = read_structures(d / "explored.extxyz")
        if dec["stop"] is None:
            key = self.cfg.select.score
            values = np.array([float(a.info[key]) for a in snaps])
            fps = np.load(d / "fingerprints.npy")
            # fingerprints of the training structures with the same committee
            train_structs = read_structures(d / "train-data.extxyz")
            _, train_fps = score_structures(d / "train" / "model.json", train_structs)
            remaining = self.cfg.stop.label_budget - dec["labels_used_before"]
            _, chosen = select(values, fps, self.cfg.select, train_fps, max_n=remaining,
                               min_pair=[float(a.info["min_pair_distance"]) for a in snaps])
        picked = []
        for j in chosen:
            a = snaps[j].copy()
            a.info.pop("source", None)
            a.info["explored_index"] = int(j)
            picked.append(a)
        if picked:
            write_structures(d / "selected.extxyz", picked)
        _json(d / "selected.json", {"n_selected": len(picked), "explored_index": chosen})

    def stage_label(self, i: int) -> None:
        from hdnnp.io import read_structures
        from hdnnp.reference_data.labelling import label

        d = self.iter_dir(i)
        if self.n_selected(i) == 0:
            return
        structs = read_structures(d / "selected.extxyz")
        for a in structs:
            a.calc = None
            a.info.pop("source", None)
        ls = self.cfg.label
        summary = label(structs, d / "labels.db", ls.reference_settings(), workers=ls.workers,
                        scheduler=ls.scheduler, progress=self.progress,
                        source=str(d / "selected.extxyz"), in_process=ls.in_process)
        self.log(f"iteration {i}: {summary}")

    def stage_report(self, i: int) -> dict:
        from hdnnp.io import read_structures

        d = self.iter_dir(i)
        dec = self.decision(i)
        ev = json.loads((d / "train" / "evaluation.json").read_text())
        snaps = read_structures(d / "explored.extxyz")
        key = self.cfg.select.score
        scores = {k: np.array([float(a.info[k]) for a in snaps]) for k in
                  ("max_force_dev", "energy_spread_per_atom", "extrapolation_count")}
        runs = json.loads((d / "explore" / "runs.json").read_text())
        labelled = len(self.labels(i))
        hist = {}
        for k, v in scores.items():
            v = v[np.isfinite(v)]
            if v.size:
                counts, edges = np.histogram(v, bins=20)
                hist[k] = {"counts": counts.tolist(), "edges": edges.tolist()}
        report = {
            "iteration": i, "n_train_structures": ev["n_train_structures"],
            "n_snapshots": dec["n_snapshots"], "counts": dec["counts"],
            "accurate_fraction": dec["accurate_fraction"],
            "md_runs": len(runs), "md_runs_failed": sum(r["status"] != "ok" for r in runs),
            "score": key, "trust_window": [self.cfg.select.lower, self.cfg.select.upper],
            "selected": self.n_selected(i), "labelled_ok": labelled,
            "labels_used": self.labels_used(i + 1), "stop": dec["stop"],
            "validation": ev.get("validation"),
            "score_quantiles": {k: {q: float(np.quantile(v[np.isfinite(v)], float(q)))
                                    for q in ("0.5", "0.9", "0.99", "1.0")}
                                for k, v in scores.items() if np.isfinite(v).any()},
            "histograms": hist}
        _json(d / "report.json", report)
        atomic_write_text(d / "report.md", _markdown(report))
        if self.cfg.figures:
            _plot(scores[key], self.cfg.select.lower, self.cfg.select.upper, key,
                  d / "spread.png", i)
        return report

    # -- driver
    def run(self) -> dict:
        self._check_config()
        t0 = time.perf_counter()
        i = 0
        while True:
            d = self.iter_dir(i)
            d.mkdir(parents=True, exist_ok=True)
            done = self.stages_done(i)
            for stage in STAGES:
                if stage in done:
                    continue
                getattr(self, f"stage_{stage}")(i)
                self._mark(i, stage)
            report = json.loads((d / "report.json").read_text())
            if report["stop"] is not None and self._reopen(i, report["stop"]):
                continue
            self._write_summary(i, report, time.perf_counter() - t0)
            if report["stop"] is not None:
                break
            i += 1
        return json.loads((self.run_dir / "summary.json").read_text())

    def _write_summary(self, last: int, report: dict, wall: float) -> None:
        rows = []
        for j in range(last + 1):
            r = json.loads((self.iter_dir(j) / "report.json").read_text())
            rows.append({k: r[k] for k in ("iteration", "n_train_structures", "n_snapshots",
                                           "counts", "accurate_fraction", "selected",
                                           "labelled_ok", "labels_used", "stop",
                                           "validation")})
        status = report["stop"] or "running"
        _json(self.run_dir / "summary.json", {
            "status": status, "iterations": last + 1, "labels_used": report["labels_used"],
            "n_initial": len(self.initial()),
            "final_model": str(self.iter_dir(last) / "train" / "model.json"),
            "wall_s_this_run": round(wall, 1), "history": rows})


def _markdown(r: dict) -> str:
    c = r["counts"]
    lines = [f"# Active learning, iteration {r['iteration']}", "",
             "| quantity | value |", "|---|---|",
             f"| training structures | {r['n_train_structures']} |",
             f"| explored snapshots (MD runs, failed) | {r['n_snapshots']} ({r['md_runs']}, "
             f"{r['md_runs_failed']}) |",
             f"| accurate / candidate / failed | {c['accurate']} / {c['candidate']} / "
             f"{c['failed']} |",
             f"| accurate fraction | {r['accurate_fraction']:.3f} |",
             f"| trust window ({r['score']}) | {r['trust_window'][0]:g} … "
             f"{r['trust_window'][1]:g} |",
             f"| selected / labelled | {r['selected']} / {r['labelled_ok']} |",
             f"| labels used so far | {r['labels_used']} |"]
    v = r.get("validation")
    if v:
        lines.append(f"| validation energy MAE (meV/atom) | {v['energy_mae_meV_per_atom']:.3f} |")
        lines.append(f"| validation force RMSE (eV/Å) | {v['force_rmse_eV_per_A']:.4f} |")
    lines.append(f"| stop | {r['stop'] or '—'} |")
    return "\n".join(lines) + "\n"


def _plot(values: np.ndarray, lower: float, upper: float, key: str, path: Path,
          i: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    v = values[np.isfinite(values)]
    fig, ax = plt.subplots(figsize=(4.5, 3.2))
    if v.size:
        ax.hist(v, bins=30, color="tab:blue")
    ax.axvline(lower, color="tab:green", ls="--", label="lower")
    ax.axvline(upper, color="tab:red", ls="--", label="upper")
    ax.set_xlabel(key + (" (eV/Å)" if key == "max_force_dev" else ""))
    ax.set_ylabel("snapshots")
    ax.set_title(f"iteration {i}")
    ax.legend()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


def learn(cfg: LearnConfig, progress: bool = True, log=print) -> dict:
    """Run (or continue) the active-learning loop of ``cfg``; returns ``summary.json``."""
    return Learner(cfg, progress=progress, log=log).run()
