"""The report of a study: loss curves, error against the varied parameter, a table, the choice.

Written into the study directory:

=====================  ==============================================================
``summary.json``       one row per setting (mean and standard deviation over seeds of
                       the validation and test metric, wall time) and the chosen one
``loss_curves.png``    validation error per epoch of every run, log scale, target line
``error_vs_<key>.png`` final validation and test error against each numeric or
                       categorical varied key, mean ± std over seeds (points: runs)
``report.html``        all of it on one page, figures embedded, with the command
=====================  ==============================================================

The **validation** error chooses the setting (the lowest mean over seeds); the test
error is reported beside it and never used to choose (thesis §3.3 trains on one set and
reports another; choosing on the test set would make the reported error optimistic).
Runs that failed or are not finished appear in the table with their state and no
numbers; they do not enter the means.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from hdnnp.errors import HdnnpError
from hdnnp.fileio import atomic_write_text
from hdnnp.studies.runner import StudyRunner, run_status
from hdnnp.studies.spec import resolve_key

__all__ = ["study_rows", "write_study_report"]

_UNITS = {"meV_per_atom": "meV/atom", "eV_per_A": "eV/Å"}


def _unit(metric: str) -> str:
    for suffix, unit in _UNITS.items():
        if metric.endswith(suffix):
            return unit
    return ""


def _pretty(metric: str) -> str:
    name = metric
    for suffix in _UNITS:
        name = name.removesuffix("_" + suffix)
    return name.replace("_", " ").replace("mae", "MAE").replace("rmse", "RMSE")


def _run_metrics(run_dir: Path) -> dict | None:
    path = run_dir / "metrics.json"
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _wall(run_dir: Path) -> float | None:
    log = run_dir / "log.jsonl"
    if not log.is_file():
        return None
    last = None
    for line in log.read_text().splitlines():
        try:
            last = json.loads(line).get("wall_s", last)
        except ValueError:
            continue
    return last


def _stats(values: list[float]) -> tuple[float | None, float | None]:
    vals = [v for v in values if v is not None and math.isfinite(v)]
    if not vals:
        return None, None
    return float(np.mean(vals)), float(np.std(vals)) if len(vals) > 1 else 0.0


def study_rows(runner: StudyRunner) -> tuple[list[dict], int | None]:
    """Rows per setting (over seeds) and the index of the chosen row (lowest mean
    validation metric; None when no run finished).  ``validation mean``/``std`` and
    ``test mean``/``std`` are of the study's metric, in its unit."""
    metric = runner.spec.metric
    settings: dict[str, dict] = {}
    for r in runner.runs:
        row = settings.setdefault(r.setting, {"setting": r.setting, **{
            k.split(".")[-1]: (v if isinstance(v, int | float | str) else r.shown[k])
            for k, v in r.values.items()}, "_val": [], "_test": [], "_wall": [],
            "_states": []})
        rd = runner.run_dir(r)
        m = _run_metrics(rd)
        state = run_status(rd)
        if (rd.parent / f"{r.name}.failed").is_file() and state != "done":
            state = "failed"
        row["_states"].append(state)
        if m is not None:
            val = m.get(f"validation_{metric}")
            if val is None:  # no validation split: the training error chooses
                val = m.get(f"train_{metric}")
            row["_val"].append(val)
            row["_test"].append(m.get(f"test_{metric}"))
            row["_wall"].append(_wall(rd))
    rows = []
    for row in settings.values():
        vm, vs = _stats(row.pop("_val"))
        tm, ts = _stats(row.pop("_test"))
        wm, _ = _stats(row.pop("_wall"))
        states = row.pop("_states")
        row.update({"validation mean": vm, "validation std": vs,
                    "test mean": tm, "test std": ts,
                    "runs done": f"{states.count('done')}/{len(states)}",
                    "wall s (mean)": wm})
        if "failed" in states:
            row["runs done"] += f" ({states.count('failed')} failed)"
        rows.append(row)
    key = "validation mean"
    finite = [k for k, r in enumerate(rows) if r[key] is not None]
    chosen = min(finite, key=lambda k: rows[k][key]) if finite else None
    return rows, chosen


def _axis_values(values: list):
    """Numbers when every value is a number, else text (a categorical axis)."""
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        return np.array(values, dtype=np.float64)
    return np.array(["-".join(map(str, v)) if isinstance(v, list) else str(v)
                     for v in values])


def _error_figures(runner: StudyRunner, out: Path) -> list[tuple[Path, str]]:
    """Error against each varied key (others averaged over), validation and test."""
    from hdnnp.analysis.plots import plot_convergence

    spec = runner.spec
    metric = spec.metric
    figures = []
    for key, values in spec.vary.items():
        rkey = resolve_key(key)
        seeds = spec.seeds
        for split in ("validation", "test"):
            # runs with the same (seed, value) differ in the other varied keys: their mean
            cells: dict[tuple[int, int], list[float]] = {}
            for r in runner.runs:
                m = _run_metrics(runner.run_dir(r))
                if m is None or m.get(f"{split}_{metric}") is None:
                    continue
                j = next(i for i, v in enumerate(values) if v == r.values[rkey])
                cells.setdefault((seeds.index(r.seed), j), []).append(
                    float(m[f"{split}_{metric}"]))
            err = np.full((len(seeds), len(values)), np.nan)
            for (i, j), vals in cells.items():
                err[i, j] = float(np.mean(vals))
            if not np.isfinite(err).any():
                continue
            label = spec.labels.get(key, key)
            axis = spec.names[key] if key in spec.names else values
            path = out / f"error_vs_{key.split('.')[-1]}_{split}.png"
            plot_convergence(_axis_values(axis), err, path, xlabel=label,
                             ylabel=f"{split} {_pretty(metric)} ({_unit(metric)})",
                             mode="mean_std", target=spec.target,
                             title=f"{spec.name}: {split} error")
            figures.append((path, f"{split} {_pretty(metric)} against {label}, mean ± std "
                                  f"over {len(seeds)} seed(s); faint points: single runs"))
    return figures


def _loss_figure(runner: StudyRunner, out: Path) -> Path | None:
    from hdnnp.analysis.plots import plot_loss_comparison

    metric = runner.spec.metric
    quantity = "force" if metric.startswith("force") else "energy"
    kind = "mae" if "_mae_" in metric else "rmse"
    logs = {}
    for r in runner.runs:
        log = runner.run_dir(r) / "log.jsonl"
        if log.is_file() and log.stat().st_size:
            label = r.setting if len(runner.spec.seeds) == 1 else f"{r.setting} s{r.seed}"
            logs[label] = log
    if not logs:
        return None
    path = out / "loss_curves.png"
    try:
        plot_loss_comparison(logs, path, quantity=quantity, metric=kind,
                             target=runner.spec.target, title=runner.spec.name)
    except HdnnpError:
        return None
    return path


def write_study_report(runner: StudyRunner, command: str | None = None,
                       extra_figures: list[tuple[Path, str]] | None = None) -> Path:
    """Write ``summary.json``, the figures and ``report.html``; returns the HTML path.
    ``extra_figures`` (path, caption) are added after the study's own (the H2 curves)."""
    from hdnnp.analysis.html import HtmlPage

    out = runner.directory
    out.mkdir(parents=True, exist_ok=True)
    rows, chosen = study_rows(runner)
    spec = runner.spec
    summary = {"name": spec.name, "metric": spec.metric, "chosen_by": "validation",
               "chosen": rows[chosen]["setting"] if chosen is not None else None,
               "rows": rows}
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=1))
    page = HtmlPage(f"Study: {spec.name}")
    page.paragraph(f"{len(runner.runs)} training runs: {len(rows)} settings × "
                   f"{len(spec.seeds)} seed(s). The validation {_pretty(spec.metric)} "
                   "chooses the setting; the test error is reported beside it.")
    if command:
        page.command(command)
    if chosen is not None:
        best = rows[chosen]["validation mean"]
        page.paragraph(f"Chosen setting: {rows[chosen]['setting']} (validation "
                       f"{_pretty(spec.metric)} {best:.4g} {_unit(spec.metric)}).")
    page.heading("Results")
    page.paragraph(f"Means and standard deviations over the seeds of the {_pretty(spec.metric)}"
                   f" ({_unit(spec.metric)}); highlighted: the chosen setting.")
    page.table(rows, highlight=chosen)
    page.heading("Figures")
    loss = _loss_figure(runner, out)
    if loss is not None:
        page.figure(loss, "validation error per epoch of every run (log scale); dotted: "
                          "target")
    for path, caption in [*(extra_figures or []), *_error_figures(runner, out)]:
        page.figure(path, caption)
    return page.write(out / "report.html")
