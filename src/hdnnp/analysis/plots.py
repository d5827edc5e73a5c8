"""Figures for potentials and training runs (matplotlib, written as PNG).

Every function takes plain arrays (eV, Å inside; axes labelled with units), writes
one figure to ``path`` *atomically* (:func:`hdnnp.fileio.atomic_path`: a figure is
either complete or not there) and returns the path.  The format follows the suffix
(``.png`` default; ``.pdf``, ``.svg`` also work).  Figures are drawn on
:class:`matplotlib.figure.Figure` objects rendered by the Agg backend, without pyplot:
no global state, no display needed, safe in threads and on headless machines.

The figures follow the thesis (§3.3, §3.4, §4.3.1, §5.1.1):

* :func:`plot_loss_curves` – train and validation energy (and force) error per epoch
  on a logarithmic axis, best epoch marked (§3.3 "Loss Curves");
* :func:`plot_loss_comparison` – validation-error curves of several runs (cutoffs,
  training set sizes, optimizers, seeds: §3.4, figs. 3.2–3.7);
* :func:`plot_parity` – predicted against reference values with the line y = x and
  MAE, RMSE, Pearson r (§3.3 "Predicted vs. True"); scatter for up to ``max_scatter``
  points, logarithmic-density hexbin above (10⁶ force components take ~1 s);
* :func:`plot_error_histogram` – histogram of squared errors on a logarithmic axis
  (§3.3 "Squared Error");
* :func:`plot_energy_distribution` – histograms of cohesive energy per atom of several
  data sets (figs. 4.14, 4.15);
* :func:`plot_scaling_scan` – cohesive energy per atom against the scaling factor,
  model and reference, with the maximum and mean of the training set (figs. 5.2–5.10);
* :func:`plot_convergence` – final test error against a varied parameter, one curve
  per seed or mean ± standard deviation (§3.4).

Sets named after the splits of a training run keep their colour in every figure:
train blue, validation vermilion, test green (:data:`SPLIT_COLORS`); other labels get
the colours of :data:`COLORS` that the splits in the same figure leave free, in order.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike

from hdnnp.errors import HdnnpError
from hdnnp.fileio import atomic_path

#: Thesis colours for the training-set lines of the scaling scan (fig. 5.2): maximum
#: red, mean orange; further data sets (fig. 5.10) get the next colours.
_LINE_COLORS = ("#d62728", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b")

__all__ = ["COLORS", "SPLIT_COLORS", "STYLE", "new_figure", "plot_convergence",
           "plot_energy_distribution", "plot_error_histogram", "plot_loss_comparison",
           "plot_loss_curves", "plot_parity", "plot_scaling_scan", "save_figure"]

#: Colour-blind-safe palette (Okabe & Ito, "Color Universal Design", 2008).
COLORS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000",
          "#F0E442")

#: Fixed colours of the training-run splits (from :data:`COLORS`).
SPLIT_COLORS = {"train": COLORS[0], "validation": COLORS[1], "test": COLORS[2]}


def _set_colors(labels) -> list[str]:
    """A colour per label: split names their :data:`SPLIT_COLORS`, other labels the
    unused colours of :data:`COLORS` in order (cycling when there are many)."""
    labels = list(labels)
    taken = {SPLIT_COLORS[k] for k in labels if k in SPLIT_COLORS}
    free = [c for c in COLORS if c not in taken] or list(COLORS)
    out, k = [], 0
    for label in labels:
        if label in SPLIT_COLORS:
            out.append(SPLIT_COLORS[label])
        else:
            out.append(free[k % len(free)])
            k += 1
    return out

#: Publication defaults: 9 pt text, inward ticks on all sides, 200 dpi PNG.
STYLE = {
    "font.size": 9.0,
    "axes.labelsize": 9.0,
    "axes.titlesize": 9.0,
    "legend.fontsize": 7.5,
    "xtick.labelsize": 8.0,
    "ytick.labelsize": 8.0,
    "axes.linewidth": 0.8,
    "lines.linewidth": 1.4,
    "lines.markersize": 4.0,
    "xtick.direction": "in",
    "ytick.direction": "in",
    "xtick.top": True,
    "ytick.right": True,
    "xtick.minor.visible": True,
    "ytick.minor.visible": True,
    "legend.frameon": False,
    "axes.prop_cycle": None,  # replaced by a cycler of COLORS in _styled
    "savefig.dpi": 200,
    "figure.dpi": 100,
    "mathtext.default": "regular",
}

_FORMATS = {".png": "png", ".pdf": "pdf", ".svg": "svg", ".jpg": "jpg", ".jpeg": "jpg"}


def _styled(func):
    """Run a plot function inside ``matplotlib.rc_context(STYLE)``."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        import matplotlib
        from cycler import cycler

        style = dict(STYLE)
        style["axes.prop_cycle"] = cycler(color=list(COLORS))
        with matplotlib.rc_context(style):
            return func(*args, **kwargs)

    return wrapper


def new_figure(nrows: int = 1, ncols: int = 1, figsize: tuple[float, float] = (4.2, 3.3),
            **kwargs):
    """A pyplot-free figure and its axes (``squeeze=False``: always a 2-D array)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False, **kwargs)
    return fig, axes


def save_figure(fig, path: str | Path, dpi: int | None = None) -> Path:
    """Write ``fig`` to ``path`` atomically; the format follows the suffix (PNG default)."""
    path = Path(path)
    fmt = _FORMATS.get(path.suffix.lower())
    if fmt is None:
        if path.suffix:
            raise HdnnpError(f"{path}: unknown figure format {path.suffix!r}; use "
                             f"{', '.join(sorted(_FORMATS))}")
        fmt = "png"
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=fmt, dpi=dpi)
    return path


def _finite(values: ArrayLike) -> np.ndarray:
    a = np.asarray(values, dtype=np.float64).ravel()
    return a[np.isfinite(a)]


def _as_sets(data, name: str = "data") -> dict[str, np.ndarray]:
    """``{label: finite 1-D array}`` from a mapping or a single array."""
    if isinstance(data, Mapping):
        sets = {str(k): _finite(v) for k, v in data.items()}
    else:
        sets = {"": _finite(data)}
    if not sets or not any(v.size for v in sets.values()):
        raise HdnnpError(f"nothing to plot: {name} holds no finite values")
    return sets


# ------------------------------------------------------------ energy distribution
@_styled
def plot_energy_distribution(data: Mapping[str, ArrayLike] | ArrayLike, path: str | Path,
                             xlabel: str = "cohesive energy per atom (eV/atom)",
                             bins: int | ArrayLike = 60, layout: str = "overlay",
                             density: bool = False, range: tuple[float, float] | None = None,
                             logy: bool = False, title: str | None = None) -> Path:
    r"""Histograms of energies of one or several data sets (thesis figs. 4.14, 4.15).

    Parameters
    ----------
    data:
        ``{label: values}``, e.g. cohesive energies per atom
        :math:`E_\mathrm{coh}/N = (E - \sum_Z N_Z E_Z^\mathrm{ref})/N` in eV/atom
        (:meth:`hdnnp.data.Dataset.cohesive_energies`), or one array.  Non-finite
        values are left out.
    path:
        Output figure (PNG unless the suffix says otherwise).
    xlabel:
        Axis label, with units.
    bins:
        Number of bins (shared by all data sets, spanning all values or ``range``) or
        the bin edges.
    layout:
        ``"overlay"``: all histograms on one axis; ``"stacked"``: one panel per data
        set, sharing the energy axis (as thesis fig. 4.15).
    density:
        Normalise each histogram to unit area (compare sets of different size).
    logy:
        Logarithmic count axis (shows rare high-energy structures).
    """
    if layout not in ("overlay", "stacked"):
        raise HdnnpError(f"layout must be 'overlay' or 'stacked', got {layout!r}")
    sets = _as_sets(data, "the energy distribution")
    values = np.concatenate([v for v in sets.values() if v.size])
    if np.ndim(bins) == 0:
        lo, hi = range if range is not None else (values.min(), values.max())
        if hi <= lo:  # a single value: give the bar a visible width
            lo, hi = lo - 0.5, hi + 0.5
        edges = np.linspace(lo, hi, int(bins) + 1)
    else:
        edges = np.asarray(bins, dtype=np.float64)
    ylabel = "probability density" if density else "structures"
    if layout == "overlay" or len(sets) == 1:
        fig, axes = new_figure()
        ax = axes[0, 0]
        for k, (label, v) in enumerate(sets.items()):
            color = COLORS[k % len(COLORS)]
            legend = f"{label} (n = {v.size})" if label else f"n = {v.size}"
            if v.size:
                ax.hist(v, bins=edges, density=density, histtype="stepfilled", color=color,
                        alpha=0.25 if len(sets) > 1 else 0.6, linewidth=0)
                ax.hist(v, bins=edges, density=density, histtype="step", color=color,
                        linewidth=1.2, label=legend)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        if logy:
            ax.set_yscale("log")
        ax.legend(loc="best")
        if title:
            ax.set_title(title)
    else:
        fig, axes = new_figure(len(sets), 1, figsize=(4.2, 1.0 + 1.35 * len(sets)), sharex=True)
        for k, (label, v) in enumerate(sets.items()):
            ax = axes[k, 0]
            color = COLORS[k % len(COLORS)]
            if v.size:
                ax.hist(v, bins=edges, density=density, histtype="stepfilled", color=color,
                        alpha=0.6, edgecolor=color, linewidth=0.8)
                stats = f"n = {v.size}\nmean {v.mean():.3g}, max {v.max():.3g}"
            else:
                stats = "n = 0"
            ax.text(0.98, 0.92, f"{label}\n{stats}" if label else stats,
                    transform=ax.transAxes, ha="right", va="top", fontsize=7.5)
            ax.set_ylabel(ylabel)
            if logy:
                ax.set_yscale("log")
        axes[-1, 0].set_xlabel(xlabel)
        if title:
            axes[0, 0].set_title(title)
    return save_figure(fig, path)


def _paired_sets(ref, pred, label: str | None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{label: (ref, pred)}`` (flattened, finite pairs) from arrays or mappings."""
    from hdnnp.analysis.metrics import finite_pairs

    if isinstance(ref, Mapping) != isinstance(pred, Mapping):
        raise HdnnpError("ref and pred must both be arrays or both be mappings")
    if isinstance(ref, Mapping):
        if set(ref) != set(pred):
            raise HdnnpError(f"ref and pred have different sets: {sorted(ref)} and "
                             f"{sorted(pred)}")
        items = [(str(k), ref[k], pred[k]) for k in ref]
    else:
        items = [(label or "", ref, pred)]
    out = {}
    for name, r, p in items:
        p_, r_ = finite_pairs(p, r)
        out[name] = (r_, p_)
    if not any(r.size for r, _ in out.values()):
        raise HdnnpError("nothing to plot: no finite reference/prediction pairs")
    return out


_QUANTITIES = {
    # quantity: (axis text, units, error units, error scale)
    "energy": ("energy per atom", "eV/atom", "meV/atom", 1000.0),
    "force": ("force component", "eV/Å", "eV/Å", 1.0),
}


def _quantity(quantity: str, units: str | None, error_units: str | None,
              error_scale: float | None) -> tuple[str, str, str, float]:
    text, u, eu, scale = _QUANTITIES.get(quantity, (quantity, "", "", 1.0))
    if units is not None and units != u:
        # other units: errors in the same units unless told otherwise
        u, eu, scale = units, units, 1.0
    if error_units is not None:
        eu = error_units
    if error_scale is not None:
        scale = float(error_scale)
    return text, u, eu, scale


def _metrics_text(r: np.ndarray, p: np.ndarray, scale: float, eu: str) -> str:
    from hdnnp.analysis.metrics import regression_metrics

    if r.size == 0:
        return "no data"
    m = regression_metrics(p * scale, r * scale)
    return (f"MAE {m['mae']:.3g} {eu}\nRMSE {m['rmse']:.3g} {eu}\n"
            f"r = {m['pearson_r']:.4f}   (n = {m['n']})")


def _with_units(text: str, units: str) -> str:
    return f"{text} ({units})" if units else text


# -------------------------------------------------------------------- parity
@_styled
def plot_parity(ref: ArrayLike | Mapping[str, ArrayLike],
                pred: ArrayLike | Mapping[str, ArrayLike], path: str | Path,
                quantity: str = "energy", units: str | None = None, label: str | None = None,
                error_units: str | None = None, error_scale: float | None = None,
                style: str = "auto", max_scatter: int = 20000,
                title: str | None = None) -> Path:
    """Predicted against reference values with the line y = x (thesis §3.3).

    Parameters
    ----------
    ref, pred:
        Reference and predicted values (any shape; forces are compared component by
        component), or ``{set label: values}`` mappings with the same keys, e.g.
        ``{"train": …, "validation": …, "test": …}``.  Non-finite pairs are left out.
    quantity:
        ``"energy"`` (energy per atom: values in eV/atom, errors shown in meV/atom),
        ``"force"`` (eV/Å) or any other name (then give ``units``).
    units:
        Units of the values, shown on the axes; errors are shown in the same units
        unless ``error_units`` and ``error_scale`` (error in error units = scale ×
        error in value units) are given.
    label:
        Legend label of a single set.
    style:
        ``"scatter"``, ``"hexbin"`` (one panel per set, logarithmic colour scale of the
        point density) or ``"auto"``: scatter up to ``max_scatter`` points in all.

    The legend (scatter) or a text box per panel (hexbin) gives MAE, RMSE, Pearson r
    and the number of points of each set.
    """
    if style not in ("auto", "scatter", "hexbin"):
        raise HdnnpError(f"style must be 'auto', 'scatter' or 'hexbin', got {style!r}")
    sets = _paired_sets(ref, pred, label)
    text, u, eu, scale = _quantity(quantity, units, error_units, error_scale)
    n_total = sum(r.size for r, _ in sets.values())
    if style == "auto":
        style = "scatter" if n_total <= max_scatter else "hexbin"
    allv = np.concatenate([np.concatenate([r, p]) for r, p in sets.values()])
    lo, hi = float(allv.min()), float(allv.max())
    pad = 0.03 * (hi - lo) if hi > lo else max(abs(lo) * 0.01, 1e-3)
    lim = (lo - pad, hi + pad)
    xlabel = _with_units(f"reference {text}", u)
    ylabel = _with_units(f"predicted {text}", u)
    if style == "scatter":
        fig, axes = new_figure(figsize=(3.8, 3.8))
        ax = axes[0, 0]
        size = 10.0 if n_total <= 2000 else 3.0
        for color, (name, (r, p)) in zip(_set_colors(sets), sets.items()):
            stats = _metrics_text(r, p, scale, eu).replace("\n", ", ", 1)
            legend = f"{name}: {stats}" if name else stats
            ax.scatter(r, p, s=size, color=color, alpha=0.6, linewidths=0, label=legend,
                       rasterized=True)
        ax.plot(lim, lim, color="black", linestyle="--", linewidth=0.9, zorder=0,
                label="y = x")
        ax.legend(loc="upper left", fontsize=6.5, handletextpad=0.3, markerscale=2.0)
        _square(ax, lim, xlabel, ylabel)
    else:
        from matplotlib.colors import LogNorm

        fig, axes = new_figure(1, len(sets), figsize=(3.6 * len(sets) + 0.4, 3.6),
                            sharex=True, sharey=True)
        for k, (name, (r, p)) in enumerate(sets.items()):
            ax = axes[0, k]
            if r.size:
                hb = ax.hexbin(r, p, gridsize=90, extent=(*lim, *lim), mincnt=1,
                               norm=LogNorm(), cmap="viridis", linewidths=0, rasterized=True)
                fig.colorbar(hb, ax=ax, label="points per bin", shrink=0.8)
            ax.plot(lim, lim, color="black", linestyle="--", linewidth=0.9)
            stats = _metrics_text(r, p, scale, eu)
            ax.text(0.04, 0.96, f"{name}\n{stats}" if name else stats, transform=ax.transAxes,
                    ha="left", va="top", fontsize=7)
            _square(ax, lim, xlabel, ylabel if k == 0 else None)
    if title:
        fig.suptitle(title)
    return save_figure(fig, path)


def _square(ax, lim, xlabel, ylabel) -> None:
    ax.set_xlim(lim)
    ax.set_ylim(lim)
    ax.set_aspect("equal", adjustable="box")
    ax.set_xlabel(xlabel)
    if ylabel:
        ax.set_ylabel(ylabel)


# --------------------------------------------------------- squared-error histogram
def squared_error_edges(squared: Mapping[str, np.ndarray], bins: int = 50,
                        dynamic_range: float = 1e6) -> np.ndarray:
    """Log-spaced bin edges for the squared errors of several sets: from the smallest
    positive value, but at most ``dynamic_range`` below the smallest of the sets' mean
    squared errors, to the largest value (see :func:`plot_error_histogram`)."""
    positive = np.concatenate([np.asarray(v)[np.asarray(v) > 0] for v in squared.values()])
    if positive.size:
        mses = [float(np.mean(v)) for v in squared.values() if np.size(v)]
        low_mse = min([m for m in mses if m > 0], default=0.0)
        lo, hi = float(positive.min()), float(positive.max())
        lo = max(lo, low_mse / dynamic_range) if low_mse > 0 else lo
        if hi <= lo:
            lo, hi = lo / 2.0, max(hi, lo) * 2.0
    else:
        lo, hi = 1e-12, 1.0
    return np.logspace(np.log10(lo), np.log10(hi), int(bins) + 1)


@_styled
def plot_error_histogram(ref: ArrayLike | Mapping[str, ArrayLike],
                         pred: ArrayLike | Mapping[str, ArrayLike], path: str | Path,
                         quantity: str = "energy", units: str | None = None,
                         label: str | None = None, error_units: str | None = None,
                         error_scale: float | None = None, bins: int = 50,
                         title: str | None = None, normalise: bool = True,
                         dynamic_range: float = 1e6) -> Path:
    r"""Histogram of squared errors :math:`(s(p_i - t_i))^2` on a logarithmic axis.

    Thesis §3.3 ("Squared Error").  Arguments as for :func:`plot_parity`; the errors
    are shown in ``error_units`` squared (energy: (meV/atom)², force: (eV/Å)²).  Each
    set gets a dashed vertical line at its mean squared error, MSE = RMSE².

    ``normalise`` (default) draws the fraction of each set per bin, so that sets of
    different size (450 training against 50 test structures) are compared by their
    distributions, not their counts.  The axis spans ``dynamic_range`` below the
    smallest MSE of the sets at most: squared errors below it (force components that
    vanish by symmetry give 1e-16 and less; exact zeros have no place on a log axis)
    are counted in the first bin and in the legend.
    """
    sets = _paired_sets(ref, pred, label)
    text, _, eu, scale = _quantity(quantity, units, error_units, error_scale)
    sq = {name: ((p - r) * scale) ** 2 for name, (r, p) in sets.items()}
    edges = squared_error_edges(sq, bins, dynamic_range)
    lo = edges[0]
    fig, axes = new_figure()
    ax = axes[0, 0]
    for color, (name, v) in zip(_set_colors(sq), sq.items()):
        below = int((v < lo * (1 - 1e-9)).sum())  # edges[0] is lo up to round-off
        legend = f"{name} (n = {v.size}" if name else f"n = {v.size}"
        legend += f", {below} below {lo:.1g}" if below else ""
        legend += ")" if name else ""
        shown = np.clip(v, lo, None)
        weights = np.full(v.size, 1.0 / v.size) if normalise and v.size else None
        ax.hist(shown, bins=edges, weights=weights, histtype="step", color=color,
                linewidth=1.2, label=legend)
        if v.size:
            ax.axvline(v.mean(), color=color, linestyle="--", linewidth=0.9,
                       label=f"MSE {v.mean():.3g}" + (f" ({name})" if name else ""))
    ax.set_xscale("log")
    unit2 = "/".join(f"{part}²" for part in eu.split("/")) if eu else ""  # meV²/atom²
    ax.set_xlabel(_with_units(f"squared error of {text}", unit2))
    ax.set_ylabel("fraction of the set" if normalise else "count")
    ax.legend(loc="best")
    if title:
        ax.set_title(title)
    return save_figure(fig, path)


# -------------------------------------------------------------------- loss curves
_LOSS_KEYS = {"energy": ("energy", "meV_per_atom", "meV/atom"),
              "force": ("force", "eV_per_A", "eV/Å")}

#: Line style of each split in the loss curves (an old log's ``test`` was its
#: selection set, drawn like ``validation``).
_LOSS_STYLES = {"train": "--", "validation": "-", "test": "-"}


def _loss_key(quantity: str, metric: str) -> tuple[str, str]:
    if quantity not in _LOSS_KEYS:
        raise HdnnpError(f"quantity must be 'energy' or 'force', got {quantity!r}")
    if metric not in ("rmse", "mae"):
        raise HdnnpError(f"metric must be 'rmse' or 'mae', got {metric!r}")
    name, suffix, unit = _LOSS_KEYS[quantity]
    return f"{name}_{metric}_{suffix}", f"{name} {metric.upper()} ({unit})"


def _log_y(ax) -> None:
    """Logarithmic y axis with plain tick labels (3, 10, 30) and minor labels when the
    axis spans less than a decade, where decade-only labels would leave it unlabelled."""
    from matplotlib.ticker import LogFormatter

    class _Plain(LogFormatter):
        def _num_to_string(self, x, vmin, vmax):
            return f"{x:g}"

    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(_Plain())
    ax.yaxis.set_minor_formatter(_Plain(labelOnlyBase=False, minor_thresholds=(1.0, 0.5)))


def _integer_x(ax) -> None:
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def _positive(v: np.ndarray) -> np.ndarray:
    return np.where(v > 0, v, np.nan)  # a log axis cannot show 0 or negative values


@_styled
def plot_loss_curves(log, path: str | Path, metric: str = "rmse", show_train: bool = True,
                     title: str | None = None) -> Path:
    """Errors of every split in the log per epoch on a logarithmic axis (thesis §3.3).

    ``log`` is a training log (``log.jsonl``, a run directory, or a list of epoch
    dicts; :func:`hdnnp.analysis.rundir.read_training_log`, which converts old logs to
    the current units).  One panel for the energy error (meV/atom), a second for the
    force error (eV/Å) when the log has force values; a curve for each split with
    values: ``train``, ``validation`` and, in logs written before the validation split,
    ``test`` (the selection set then).  ``metric`` is ``"rmse"`` or ``"mae"`` (the
    thesis plots the MAE).  The best epoch (flagged ``"best"`` by the trainer, else the
    lowest validation error) is marked by a vertical line and a star on the curve of
    the split that chose it.
    """
    from hdnnp.analysis.rundir import (
        SPLITS,
        best_epoch,
        log_series,
        read_training_log,
        selection_split,
    )

    records = read_training_log(log)
    if not records:
        raise HdnnpError("the training log has no epochs")
    splits = [s for s in SPLITS if show_train or s != "train"]
    panels = []
    for quantity in ("energy", "force"):
        key, ylabel = _loss_key(quantity, metric)
        series = {s: log_series(records, s, key) for s in splits}
        series = {s: xv for s, xv in series.items() if np.isfinite(xv[1]).any()}
        if series:
            panels.append((key, ylabel, series))
    if not panels:
        raise HdnnpError(f"the training log has no {metric.upper()} values")
    best = best_epoch(records, _loss_key("energy", metric)[0])
    marker = "o" if len(records) <= 30 else None
    fig, axes = new_figure(len(panels), 1, figsize=(4.2, 2.2 + 1.6 * len(panels)), sharex=True)
    for ax, (key, ylabel, series) in zip(axes[:, 0], panels):
        for color, (split, (x, v)) in zip(_set_colors(series), series.items()):
            ax.plot(x, _positive(v), color=color, linestyle=_LOSS_STYLES.get(split, "-"),
                    marker=marker, markersize=2.5, label=split)
        if best is not None:
            ax.axvline(float(best["epoch"]), color="0.45", linestyle=":", linewidth=1.0,
                       label=f"best epoch {best['epoch']}")
            split = selection_split(best, key)
            value = (best.get(split) or {}).get(key) if split in series else None
            if value is not None and value > 0:
                ax.plot([float(best["epoch"])], [float(value)], marker="*", markersize=9,
                        color="black", linestyle="none",
                        label=f"{split} {float(value):.3g}")
        _log_y(ax)
        ax.set_ylabel(ylabel)
        ax.legend(loc="best")
    axes[-1, 0].set_xlabel("epoch")
    _integer_x(axes[-1, 0])
    if title:
        axes[0, 0].set_title(title)
    return save_figure(fig, path)


@_styled
def plot_loss_comparison(logs: Mapping[str, object], path: str | Path,
                         quantity: str = "energy", metric: str = "rmse",
                         split: str | None = None, target: float | None = None,
                         title: str | None = None) -> Path:
    """Error curves of several training runs on one logarithmic axis (thesis §3.4).

    ``logs`` maps a label (``"Rc = 4.5 Å"``, ``"seed 3"``, ``"L-BFGS"`` …) to a training
    log (as for :func:`plot_loss_curves`).  ``split`` is the split whose errors are
    drawn: ``"validation"``, ``"train"`` or ``"test"``; None (default) takes for each
    log the set that chose its best epoch, the validation set (``test`` in logs written
    before the validation split, as in the thesis figures 3.2–3.7).  ``target`` draws a
    horizontal line at a target error (the thesis uses 5 meV/atom, after Artrith et
    al.).
    """
    from hdnnp.analysis.rundir import log_series, read_training_log

    key, ylabel = _loss_key(quantity, metric)
    if not logs:
        raise HdnnpError("no training logs to compare")
    fig, axes = new_figure(figsize=(4.6, 3.4))
    ax = axes[0, 0]
    used: list[str] = []
    for k, (name, log) in enumerate(logs.items()):
        records = read_training_log(log)
        for s in ((split,) if split is not None else ("validation", "test")):
            x, v = log_series(records, s, key)
            if np.isfinite(v).any():
                break
        if np.isfinite(v).any():
            ax.plot(x, _positive(v), color=COLORS[k % len(COLORS)],
                    linestyle=("-", "--", "-.", ":")[(k // len(COLORS)) % 4], label=str(name))
            if s not in used:
                used.append(s)
    if not used:
        which = split if split is not None else "validation (or old test)"
        raise HdnnpError(f"no {which} {key} values in the training logs")
    if target is not None:
        ax.axhline(target, color="black", linestyle=":", linewidth=1.0,
                   label=f"target {target:g}")
    _log_y(ax)
    _integer_x(ax)
    ax.set_xlabel("epoch")
    ax.set_ylabel(f"{'/'.join(used)} {ylabel}")
    ax.legend(loc="best", ncols=2 if len(logs) > 5 else 1)
    if title:
        ax.set_title(title)
    return save_figure(fig, path)


# ---------------------------------------------------------------- convergence
@_styled
def plot_convergence(parameter: ArrayLike, errors, path: str | Path, xlabel: str,
                     ylabel: str = "test energy RMSE (meV/atom)", mode: str = "curves",
                     labels: list[str] | None = None, logx: bool = False, logy: bool = False,
                     target: float | None = None, title: str | None = None) -> Path:
    """Final error against a varied parameter (thesis §3.4 convergence studies).

    Parameters
    ----------
    parameter:
        The P values of the varied parameter (cutoff radius in Å, training-set size,
        time between snapshots in fs …); strings (optimizer names) give a categorical
        axis.
    errors:
        ``[P]`` (one run per value), ``[R, P]`` (R repetitions, e.g. random seeds; NaN
        for a missing run) or ``{label: [P]}``.
    mode:
        ``"curves"``: one curve per repetition; ``"mean_std"``: mean ± standard
        deviation over the repetitions (error bars; individual runs as faint points).
    target:
        Horizontal line at a target error (thesis: 5 meV/atom).
    """
    if mode not in ("curves", "mean_std"):
        raise HdnnpError(f"mode must be 'curves' or 'mean_std', got {mode!r}")
    par = np.asarray(parameter)
    if par.ndim != 1 or par.size == 0:
        raise HdnnpError("parameter must be a non-empty list of values")
    if isinstance(errors, Mapping):
        labels = [str(k) for k in errors]
        err = np.array([np.asarray(v, dtype=np.float64).ravel() for v in errors.values()])
    else:
        err = np.atleast_2d(np.asarray(errors, dtype=np.float64))
    if err.ndim != 2 or err.shape[1] != par.size:
        raise HdnnpError(f"errors must have {par.size} values per run, got shape "
                         f"{np.shape(errors)}")
    if not np.isfinite(err).any():
        raise HdnnpError("nothing to plot: no finite errors")
    if labels is None:
        labels = [f"run {k + 1}" for k in range(err.shape[0])] if err.shape[0] > 1 else [""]
    if len(labels) != err.shape[0]:
        raise HdnnpError(f"{len(labels)} labels for {err.shape[0]} runs")
    categorical = not np.issubdtype(par.dtype, np.number)
    x = np.arange(par.size, dtype=np.float64) if categorical else par.astype(np.float64)
    fig, axes = new_figure()
    ax = axes[0, 0]
    if mode == "curves":
        for k, (name, row) in enumerate(zip(labels, err)):
            ax.plot(x, row, marker="o", color=COLORS[k % len(COLORS)], label=name or None)
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns → NaN
            mean = np.nanmean(err, axis=0)
            std = np.nanstd(err, axis=0)
        for row in err:
            ax.plot(x, row, linestyle="none", marker="o", markersize=2.5, color=COLORS[0],
                    alpha=0.35)
        ax.errorbar(x, mean, yerr=std, marker="o", color=COLORS[0], capsize=3,
                    label=f"mean ± std ({err.shape[0]} runs)")
    if target is not None:
        ax.axhline(target, color="black", linestyle=":", linewidth=1.0,
                   label=f"target {target:g}")
    if categorical:
        ax.set_xticks(x, [str(v) for v in par])
        ax.minorticks_off()
    if logx and not categorical:
        ax.set_xscale("log")
    if logy:
        _log_y(ax)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="best")
    if title:
        ax.set_title(title)
    return save_figure(fig, path)


# ------------------------------------------------------------------ scaling scan
def _named(values, default: str) -> dict[str, float]:
    if values is None:
        return {}
    if isinstance(values, Mapping):
        return {str(k): float(v) for k, v in values.items()}
    return {default: float(values)}


@_styled
def plot_scaling_scan(factors: ArrayLike, energy_per_atom: ArrayLike | Mapping[str, ArrayLike],
                      path: str | Path, reference_energy_per_atom: ArrayLike | None = None,
                      training_max: float | Mapping[str, float] | None = None,
                      training_mean: float | Mapping[str, float] | None = None,
                      model_label: str = "HDNNP", reference_label: str = "reference",
                      xlabel: str = "scaling factor f (lengths × (1 + f))",
                      ylabel: str = "cohesive energy per atom (eV/atom)",
                      title: str | None = None, x: ArrayLike | None = None,
                      derivative: bool = False) -> Path:
    """Cohesive energy per atom against the scaling factor (thesis fig. 5.2).

    Parameters
    ----------
    factors:
        Scaling factors f; cell and coordinates were multiplied by 1 + f
        (:func:`hdnnp.analysis.scan.scaling_scan`).
    energy_per_atom:
        Model prediction (eV/atom) at each factor, or ``{label: values}`` for several
        models (thesis fig. 5.10).
    reference_energy_per_atom:
        The reference method's ("true") values, eV/atom.
    training_max, training_mean:
        Maximum and mean cohesive energy per atom of the training set (eV/atom), drawn
        as horizontal red and orange dashed lines as in the thesis; ``{label: value}``
        for several data sets.
    x:
        Values of the horizontal axis if not the factors (a dimer's bond length
        d₀(1 + f) in Å, with ``xlabel`` to match).
    derivative:
        Add a second panel with the slope dE/dx of every curve (central finite
        differences on the sorted points, :func:`numpy.gradient`): where a potential
        extrapolates, its slope departs from the reference's before its energy does.
    """
    f = np.asarray(factors, dtype=np.float64).ravel()
    if f.size == 0:
        raise HdnnpError("no scaling factors to plot")
    xs = f if x is None else np.asarray(x, dtype=np.float64).ravel()
    if xs.size != f.size:
        raise HdnnpError(f"{xs.size} x values for {f.size} factors")
    models = (dict(energy_per_atom) if isinstance(energy_per_atom, Mapping)
              else {model_label: energy_per_atom})
    order = np.argsort(xs)
    xo = xs[order]
    fig, axes = new_figure(1, 2 if derivative else 1,
                        figsize=(8.6, 3.5) if derivative else (4.6, 3.5))
    ax = axes[0, 0]
    curves = []
    if reference_energy_per_atom is not None:
        ref = np.asarray(reference_energy_per_atom, dtype=np.float64).ravel()
        if ref.size != f.size:
            raise HdnnpError(f"{ref.size} reference energies for {f.size} factors")
        ax.plot(xo, ref[order], color="black", marker="o", markersize=3.5,
                label=reference_label)
        curves.append((reference_label, ref[order], {"color": "black", "marker": "o",
                                                     "markersize": 3.5}))
    for k, (name, values) in enumerate(models.items()):
        e = np.asarray(values, dtype=np.float64).ravel()
        if e.size != f.size:
            raise HdnnpError(f"{e.size} energies ({name}) for {f.size} factors")
        style = {"color": COLORS[k % len(COLORS)], "linestyle": "--", "marker": "s",
                 "markersize": 3.0}
        ax.plot(xo, e[order], label=name, **style)
        curves.append((name, e[order], style))
    lines = [(f"max {name}".strip(), v, "--") for name, v in
             _named(training_max, "training set").items()]
    lines += [(f"mean {name}".strip(), v, "-.") for name, v in
              _named(training_mean, "training set").items()]
    for k, (name, v, ls) in enumerate(lines):
        ax.axhline(v, color=_LINE_COLORS[k % len(_LINE_COLORS)], linestyle=ls, linewidth=1.0,
                   label=f"{name} ({v:.3f})")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.legend(loc="best")
    if title:
        ax.set_title(title)
    if derivative:
        dax = axes[0, 1]
        if xo.size < 2:
            raise HdnnpError("the slope panel needs at least two scan points")
        for name, values, style in curves:
            dax.plot(xo, np.gradient(values, xo), label=name, **style)
        dax.axhline(0.0, color="0.6", linewidth=0.8)
        dax.set_xlabel(xlabel)
        dax.set_ylabel(f"d({ylabel.split(' (')[0]})/d{('x' if x is not None else 'f')} "
                       f"(eV/atom{' per Å' if x is not None else ''})")
        dax.set_title("slope")
    return save_figure(fig, path)
