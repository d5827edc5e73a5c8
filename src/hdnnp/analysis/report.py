"""Report of a training run: ``metrics.json`` and figures (thesis §3.3).

:func:`write_report` reads a training-run directory (format in
:mod:`hdnnp.analysis.rundir`) and writes into ``run_dir/report/``:

=========================  ==========================================================
``metrics.json``           error metrics of each split (keys: :data:`METRICS_KEYS`)
``loss.png``               energy (and force) error per epoch, log scale (from the log)
``energy_parity.png``      predicted vs reference energy per atom, every split
``force_parity.png``       predicted vs reference force components (with forces)
``energy_error_hist.png``  squared errors of the energy per atom
``force_error_hist.png``   squared errors of the force components (with forces)
=========================  ==========================================================

Energy metrics are on the energy per atom, :math:`E/N`, in meV/atom; force metrics on
the Cartesian force components in eV/Å (:mod:`hdnnp.analysis.metrics`).  The splits
are those of :data:`~hdnnp.analysis.rundir.SPLITS` that ``predictions.npz`` holds:
``train``, ``validation`` (chose the best epoch), ``test`` (never seen in training); an
old run directory has train and test only.  Every metric has a key per split,
``{split}_{metric}`` (``validation_energy_rmse_meV_per_atom``,
``test_force_rmse_eV_per_A`` …), with the counts ``n_{split}`` and
``n_{split}_atoms``.

When ``predictions.npz`` holds the atomic numbers (``{split}_numbers``) and
``model.json`` the isolated-atom reference energies, energies are shown and correlated
as cohesive energies :math:`(E - \\sum_Z N_Z E_Z^\\mathrm{ref})/N` (thesis eq. 4.3);
the MAE and RMSE are the same either way.  Metrics that do not exist (no such split, no
forces, undefined correlation) are ``null`` in the JSON file and ``None`` in the
returned dict.
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import numpy as np

from hdnnp.analysis.metrics import energy_metrics, force_metrics
from hdnnp.analysis.rundir import SPLITS, SplitPredictions, read_predictions, read_training_log
from hdnnp.errors import HdnnpError
from hdnnp.fileio import atomic_write_text

__all__ = ["METRICS_KEYS", "compute_metrics", "format_metrics_table", "write_report"]

_PER_SPLIT = ("energy_mae_meV_per_atom", "energy_rmse_meV_per_atom", "energy_pearson_r",
              "force_mae_eV_per_A", "force_rmse_eV_per_A", "force_pearson_r")
_EXTRA_PER_SPLIT = ("energy_max_abs_meV_per_atom", "energy_mean_error_meV_per_atom",
                    "energy_r2", "force_max_abs_eV_per_A", "force_r2")

#: Keys of ``metrics.json``, in file order.
METRICS_KEYS: tuple[str, ...] = (
    *(f"{s}_{k}" for s in SPLITS for k in _PER_SPLIT),
    *(f"n_{s}" for s in SPLITS), *(f"n_{s}_atoms" for s in SPLITS),
    *(f"{s}_{k}" for s in SPLITS for k in _EXTRA_PER_SPLIT),
    "best_epoch",
)


def _clean(v):
    """JSON-safe value: NaN/inf → None, numpy scalars → Python numbers."""
    if v is None:
        return None
    if isinstance(v, int | np.integer):
        return int(v)
    v = float(v)
    return v if math.isfinite(v) else None


def _reference_energies(run_dir: Path | None) -> dict[str, float] | None:
    if run_dir is None or not (run_dir / "model.json").is_file():
        return None
    from hdnnp.potential import load_potential

    try:
        return load_potential(run_dir / "model.json").reference_energy_dict()
    except HdnnpError as exc:
        warnings.warn(f"cohesive energies not available: {exc}", stacklevel=3)
        return None


def _energies_per_atom(sp: SplitPredictions, reference_energies) -> tuple[np.ndarray, np.ndarray]:
    """Reference and predicted (cohesive, where possible) energy per atom, eV/atom."""
    shift = sp.reference_sum(reference_energies) if reference_energies else None
    if shift is None:
        shift = 0.0
    return (sp.energy_ref - shift) / sp.n_atoms, (sp.energy_pred - shift) / sp.n_atoms


def compute_metrics(predictions: dict[str, SplitPredictions],
                    reference_energies: dict[str, float] | None = None,
                    log: list[dict] | None = None) -> dict:
    """The ``metrics.json`` dict (keys :data:`METRICS_KEYS`) of the given splits.

    ``reference_energies`` (eV per element) turn total into cohesive energies when the
    predictions hold atomic numbers; ``log`` supplies ``best_epoch``.
    """
    out: dict = dict.fromkeys(METRICS_KEYS)
    for s in SPLITS:
        sp = predictions.get(s)
        out[f"n_{s}"] = sp.n_structures if sp else 0
        out[f"n_{s}_atoms"] = sp.n_atoms_total if sp else 0
        if sp is None or sp.n_structures == 0:
            continue
        e_ref, e_pred = _energies_per_atom(sp, reference_energies)
        if (np.isfinite(e_ref) & np.isfinite(e_pred)).any():
            m = energy_metrics(e_ref, e_pred, np.ones_like(e_ref))
            for k in (*_PER_SPLIT, *_EXTRA_PER_SPLIT):
                if k in m:
                    out[f"{s}_{k}"] = _clean(m[k])
        if sp.has_forces:
            m = force_metrics(sp.forces_ref, sp.forces_pred, unit="eV/A")
            for k in (*_PER_SPLIT, *_EXTRA_PER_SPLIT):
                if k in m:
                    out[f"{s}_{k}"] = _clean(m[k])
    if log:
        from hdnnp.analysis.rundir import best_epoch

        best = best_epoch(log)
        out["best_epoch"] = _clean(best["epoch"]) if best else None
    return out


def write_report(run_dir: str | Path, out_dir: str | Path | None = None,
                 figures: bool = True) -> dict:
    """Write ``metrics.json`` and the figures of a training run; return the metrics.

    Parameters
    ----------
    run_dir:
        Training-run directory (``predictions.npz`` required; ``log.jsonl`` for
        ``loss.png``; ``model.json`` for cohesive energies).
    out_dir:
        Where to write (default ``run_dir/report``).
    figures:
        Also draw the figures (``False``: ``metrics.json`` only).

    Raises :class:`~hdnnp.errors.HdnnpError` for a missing directory or predictions
    file.  Every file is written atomically.
    """
    from hdnnp.analysis import plots

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise HdnnpError(f"{run_dir}: no such training-run directory")
    out = Path(out_dir) if out_dir is not None else run_dir / "report"
    predictions = read_predictions(run_dir / "predictions.npz")
    if not predictions:
        raise HdnnpError(f"{run_dir / 'predictions.npz'}: holds no train, validation or test "
                          "predictions")
    log = read_training_log(run_dir) if (run_dir / "log.jsonl").is_file() else None
    numbers = any(sp.numbers is not None for sp in predictions.values())
    ref_e = _reference_energies(run_dir) if numbers else None
    metrics = compute_metrics(predictions, ref_e, log)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    if not figures:
        return metrics

    title = run_dir.resolve().name
    if log:
        plots.plot_loss_curves(log, out / "loss.png", title=title)
    splits = {s: sp for s, sp in predictions.items() if sp.n_structures}
    e_sets = {s: _energies_per_atom(sp, ref_e) for s, sp in splits.items()}
    kind = "cohesive energy per atom" if ref_e else "energy per atom"
    energy_kw = {"quantity": kind, "units": "eV/atom", "error_units": "meV/atom",
                 "error_scale": 1000.0, "title": title}
    if any(np.isfinite(r).any() for r, _ in e_sets.values()):
        ref = {s: r for s, (r, _) in e_sets.items()}
        pred = {s: p for s, (_, p) in e_sets.items()}
        plots.plot_parity(ref, pred, out / "energy_parity.png", **energy_kw)
        plots.plot_error_histogram(ref, pred, out / "energy_error_hist.png", **energy_kw)
    f_sets = {s: sp for s, sp in splits.items() if sp.has_forces}
    if f_sets:
        ref = {s: sp.forces_ref for s, sp in f_sets.items()}
        pred = {s: sp.forces_pred for s, sp in f_sets.items()}
        plots.plot_parity(ref, pred, out / "force_parity.png", quantity="force", title=title)
        plots.plot_error_histogram(ref, pred, out / "force_error_hist.png", quantity="force",
                                   title=title)
    return metrics


def _fmt(v, digits: int = 4) -> str:
    if v is None:
        return "–"
    if isinstance(v, int):
        return str(v)
    return f"{v:.{digits}g}"


_TABLE_ROWS = (("structures", "n_{s}"), ("atoms", "n_{s}_atoms"),
               ("energy MAE (meV/atom)", "{s}_energy_mae_meV_per_atom"),
               ("energy RMSE (meV/atom)", "{s}_energy_rmse_meV_per_atom"),
               ("energy max error (meV/atom)", "{s}_energy_max_abs_meV_per_atom"),
               ("energy Pearson r", "{s}_energy_pearson_r"),
               ("force MAE (eV/Å)", "{s}_force_mae_eV_per_A"),
               ("force RMSE (eV/Å)", "{s}_force_rmse_eV_per_A"),
               ("force max error (eV/Å)", "{s}_force_max_abs_eV_per_A"),
               ("force Pearson r", "{s}_force_pearson_r"))


def _split_present(metrics: dict, split: str) -> bool:
    """The split has structures (``n_{split}`` > 0) or, in a dict without the counts,
    at least one metric value."""
    n = metrics.get(f"n_{split}")
    if n is not None:
        return n > 0
    return any(metrics.get(key.format(s=split)) is not None for _, key in _TABLE_ROWS)


def format_metrics_table(metrics: dict) -> str:
    """A plain-text table of the metrics (rows: quantities, columns: splits).

    One column per split with structures, in the order train, validation, test
    (``metrics.json`` of an old run: train, test); ``–`` where a metric does not exist
    (no forces, undefined correlation).  A train column even when no split has
    structures.
    """
    splits = [s for s in SPLITS if _split_present(metrics, s)] or ["train"]
    width = max(len(name) for name, _ in _TABLE_ROWS)
    col = max(12, *(len(s) for s in splits))
    lines = ["  ".join([f"{'':<{width}}", *(f"{s:>{col}}" for s in splits)])]
    for name, key in _TABLE_ROWS:
        vals = [_fmt(metrics.get(key.format(s=s)), 6 if "pearson" in key else 4)
                for s in splits]
        lines.append("  ".join([f"{name:<{width}}", *(f"{v:>{col}}" for v in vals)]))
    if metrics.get("best_epoch") is not None:
        lines.append(f"best epoch: {metrics['best_epoch']}")
    return "\n".join(lines)
