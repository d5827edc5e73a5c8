"""Figures for potentials and training runs (matplotlib, written as PNG).

Every function takes plain arrays (eV, Å inside; axes labelled with units), writes
one figure to ``path`` *atomically* (:func:`hdnnp.fileio.atomic_path`: a figure is
either complete or not there) and returns the path.  The format follows the suffix
(``.png`` default; ``.pdf``, ``.svg`` also work).  Figures are drawn on
:class:`matplotlib.figure.Figure` objects rendered by the Agg backend, without pyplot:
no global state, no display needed, safe in threads and on headless machines.

The figures follow the thesis (§3.3, §3.4, §4.3.1, §5.1.1):

* :func:`plot_energy_distribution` – histograms of cohesive energy per atom of several
  data sets (figs. 4.14, 4.15).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike

from hdnnp.errors import HdnnpError
from hdnnp.fileio import atomic_path

__all__ = ["COLORS", "plot_energy_distribution", "save_figure"]

#: Colour-blind-safe palette (Okabe & Ito, "Color Universal Design", 2008).
COLORS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000",
          "#F0E442")

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


def _figure(nrows: int = 1, ncols: int = 1, figsize: tuple[float, float] = (4.2, 3.3),
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
        fig, axes = _figure()
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
        fig, axes = _figure(len(sets), 1, figsize=(4.2, 1.0 + 1.35 * len(sets)), sharex=True)
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
