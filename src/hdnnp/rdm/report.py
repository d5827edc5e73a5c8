"""Figures and the self-contained HTML report of an ``hdnnp rdm train`` run (atomic units).

Figures (PNG, next to the report, embedded in it by :class:`hdnnp.analysis.html.HtmlPage`):
``learning_curve.png`` (training loss and validation 1-RDM MAE per epoch),
``rdm_maps.png`` (γ(x, x') exact, predicted and their difference for test systems),
``occupations.png`` (natural occupation spectra, exact vs predicted),
``density.png`` (diag γ against n).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from hdnnp.errors import HdnnpError

__all__ = ["plot_learning_curve", "plot_occupations", "plot_rdm_maps", "write_run_report"]


def _figure(nrows=1, ncols=1, size=(4.6, 3.4)):
    """:func:`hdnnp.analysis.plots.new_figure` with ``size`` per panel."""
    from hdnnp.analysis.plots import new_figure

    return new_figure(nrows, ncols, figsize=(size[0] * ncols, size[1] * nrows))


def plot_learning_curve(log: list[dict], path: Path, best_epoch: int | None = None) -> Path:
    from hdnnp.analysis.plots import save_figure

    fig, ax = _figure(1, 2)
    ep = [r["epoch"] for r in log]
    ax[0, 0].semilogy(ep, [r["train_loss"] for r in log])
    ax[0, 0].set(xlabel="epoch", ylabel="training loss (MSE / s²)")
    ax[0, 1].semilogy(ep, [r["validation_rdm_mae"] for r in log])
    if best_epoch:
        ax[0, 1].axvline(best_epoch, color="grey", ls="--", lw=0.8, label="chosen epoch")
        ax[0, 1].legend()
    ax[0, 1].set(xlabel="epoch", ylabel="validation MAE of γ (bohr⁻¹)")
    return save_figure(fig, path)


def plot_rdm_maps(x, rdm, predicted, path: Path, count: int = 2) -> Path:
    from hdnnp.analysis.plots import save_figure

    count = min(count, len(rdm))
    fig, ax = _figure(count, 3, size=(3.6, 3.2))
    ext = (x[0], x[-1], x[0], x[-1])
    for r in range(count):
        lim = float(np.max(np.abs(rdm[r])))
        diff = predicted[r] - rdm[r]
        dl = float(np.max(np.abs(diff))) or 1.0
        for c, (data, title, vmax, cmap) in enumerate((
                (rdm[r], "exact γ(x,x')", lim, "RdBu_r"),
                (predicted[r], "predicted γ(x,x')", lim, "RdBu_r"),
                (diff, "predicted − exact", dl, "PuOr_r"))):
            im = ax[r, c].imshow(data, origin="lower", extent=ext, cmap=cmap, vmin=-vmax,
                                 vmax=vmax)
            ax[r, c].set(title=title, xlabel="x' (bohr)", ylabel="x (bohr)")
            fig.colorbar(im, ax=ax[r, c], shrink=0.8)
    return save_figure(fig, path)


def plot_occupations(occupations, predicted, path: Path, count: int = 4) -> Path:
    from hdnnp.analysis.plots import save_figure

    fig, ax = _figure()
    a = ax[0, 0]
    k = np.arange(1, occupations.shape[1] + 1)
    for r in range(min(count, len(occupations))):
        line, = a.semilogy(k, np.clip(occupations[r], 1e-16, None), "o-", ms=3,
                           label=f"exact {r + 1}")
        a.semilogy(k, np.clip(np.abs(predicted[r]), 1e-16, None), "x--", ms=4,
                   color=line.get_color(), label=f"predicted {r + 1}")
    a.set(xlabel="natural orbital k", ylabel="occupation per spin-orbital |f_k|",
          xlim=(0.5, min(20, len(k)) + 0.5), ylim=(1e-10, 2))
    a.legend(fontsize=7, ncol=2)
    return save_figure(fig, path)


def _plot_density(x, density, predicted, path: Path) -> Path:
    from hdnnp.analysis.plots import save_figure

    fig, ax = _figure()
    for r in range(min(3, len(density))):
        line, = ax[0, 0].plot(x, density[r], label=f"n, system {r + 1}")
        ax[0, 0].plot(x, np.diagonal(predicted[r]), "--", color=line.get_color(),
                      label="diag γ predicted")
    ax[0, 0].set(xlabel="x (bohr)", ylabel="n(x) (bohr⁻¹)")
    ax[0, 0].legend(fontsize=7)
    return save_figure(fig, path)


def write_run_report(run_dir: str | Path, output: str | Path | None = None) -> Path:
    """``report.html`` (or ``output``) of a finished run, with its figures."""
    from hdnnp.analysis.html import HtmlPage

    run_dir = Path(run_dir)
    try:
        metrics = json.loads((run_dir / "metrics.json").read_text())
        log = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()
               if line.strip()]
        pred = np.load(run_dir / "predictions.npz")
    except (OSError, ValueError) as exc:
        raise HdnnpError(f"{run_dir}: not a finished 'hdnnp rdm train' run ({exc})") from None
    with pred:
        p = {k: pred[k] for k in pred.files}
    figs = {
        "learning_curve.png": plot_learning_curve(log, run_dir / "learning_curve.png",
                                                  metrics.get("best_epoch")),
        "rdm_maps.png": plot_rdm_maps(p["x"], p["rdm"], p["predicted"],
                                      run_dir / "rdm_maps.png"),
        "occupations.png": plot_occupations(p["occupations"], p["predicted_occupations"],
                                            run_dir / "occupations.png"),
        "density.png": _plot_density(p["x"], p["density"], p["predicted"],
                                     run_dir / "density.png"),
    }
    page = HtmlPage(f"1-RDM model: {metrics['model']}")
    page.paragraph("Atomic units (Hartree, bohr; γ in bohr⁻¹). The validation MAE of γ "
                   f"chose epoch {metrics['best_epoch']} of {metrics['epochs_run']} "
                   f"(stopped by: {metrics['stop_reason']}); the test set was evaluated "
                   "once.")
    page.heading("Metrics")
    rows = []
    for split in ("validation", "test", "uhf_baseline_test"):
        if split in metrics:
            rows.append({"set": split, **metrics[split]})
    page.table(rows)
    page.table([{k: metrics[k] for k in ("train_systems", "validation_systems",
                                         "test_systems", "parameters")}])
    page.heading("Figures")
    page.figure(figs["learning_curve.png"], "training loss and validation MAE", wide=True)
    page.figure(figs["rdm_maps.png"], "test systems: exact, predicted, difference", wide=True)
    page.figure(figs["occupations.png"], "natural occupations per spin-orbital, exact and "
                "predicted (|f_k|: negative occupations of unconstrained models are shown "
                "by magnitude)")
    page.figure(figs["density.png"], "density from the diagonal of the predicted γ")
    return page.write(Path(output) if output else run_dir / "report.html")
