r"""Error metrics between predicted and reference values (thesis §3.3).

For predictions :math:`p_i` and reference values :math:`t_i`, :math:`i = 1 … n`, with
errors :math:`e_i = p_i - t_i`:

.. math::

    \mathrm{MAE} = \frac1n \sum_i |e_i|, \qquad
    \mathrm{RMSE} = \sqrt{\frac1n \sum_i e_i^2}, \qquad
    \text{max abs} = \max_i |e_i|, \qquad
    \text{mean error (bias)} = \frac1n \sum_i e_i,

the coefficient of determination
:math:`R^2 = 1 - \sum_i e_i^2 / \sum_i (t_i - \bar t)^2`, and the Pearson correlation
coefficient (see :func:`pearson_r`).

Energies are compared per atom (the thesis and ænet report meV/atom; Artrith & Urban,
Comput. Mater. Sci. 114, 135 (2016)); forces are compared component by component
(every Cartesian component of every atom is one sample), in eV/Å or meV/Å.

Non-finite pairs (NaN or ±inf in either array) are left out of every metric; ``n``
counts the pairs that were used.  No finite pair at all is an error
(:class:`~hdnnp.errors.HdnnpError`).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from hdnnp.errors import HdnnpError

__all__ = ["METRIC_KEYS", "energy_metrics", "finite_pairs", "force_metrics", "pearson_r",
           "per_atom", "regression_metrics", "squared_errors"]

#: Keys of :func:`regression_metrics`, in display order.
METRIC_KEYS = ("n", "mae", "rmse", "max_abs", "pearson_r", "r2", "mean_error")

_FORCE_UNITS = {"eV/A": (1.0, "eV_per_A"), "meV/A": (1000.0, "meV_per_A")}


def finite_pairs(pred: ArrayLike, ref: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Flattened float64 copies of ``pred`` and ``ref`` without non-finite pairs.

    Raises :class:`~hdnnp.errors.HdnnpError` when the shapes differ.
    """
    p = np.asarray(pred, dtype=np.float64)
    t = np.asarray(ref, dtype=np.float64)
    if p.shape != t.shape:
        raise HdnnpError(f"predicted and reference values have different shapes "
                         f"{p.shape} and {t.shape}")
    p = p.ravel()
    t = t.ravel()
    ok = np.isfinite(p) & np.isfinite(t)
    if not ok.all():
        p, t = p[ok], t[ok]
    return p, t


def pearson_r(x: ArrayLike, y: ArrayLike) -> float:
    r"""Pearson correlation coefficient of two samples (thesis eq. 3.1).

    .. math::

        r = \frac{\sum_i (x_i - \bar x)(y_i - \bar y)}
                 {\sqrt{\sum_i (x_i - \bar x)^2}\,\sqrt{\sum_i (y_i - \bar y)^2}}

    This is the standard definition (K. Pearson, Proc. R. Soc. Lond. 58, 240 (1895));
    the thesis prints an extra factor :math:`n` under each square root, which would
    make :math:`|r| \ll 1` for perfectly correlated data.  :math:`r \in [-1, 1]`; 1 for
    exactly linear data with positive slope, −1 with negative slope.  NaN when either
    sample has zero variance (r is undefined) or fewer than two pairs.  Non-finite
    pairs are ignored.
    """
    a, b = finite_pairs(x, y)
    if a.size < 2:
        return float("nan")
    da = a - a.mean()
    db = b - b.mean()
    # normalise by the largest deviation first: robust against over/underflow
    sa = np.abs(da).max()
    sb = np.abs(db).max()
    if sa == 0.0 or sb == 0.0:
        return float("nan")
    da /= sa
    db /= sb
    r = float(np.dot(da, db) / np.sqrt(np.dot(da, da) * np.dot(db, db)))
    return max(-1.0, min(1.0, r))


def regression_metrics(pred: ArrayLike, ref: ArrayLike) -> dict[str, float]:
    r"""Error metrics of ``pred`` against ``ref`` (any shape, same units as the input).

    Returns ``{"n", "mae", "rmse", "max_abs", "pearson_r", "r2", "mean_error"}``
    (formulas in the module docstring); ``n`` is an ``int``, the rest are floats.
    ``mean_error`` is :math:`\overline{p - t}` (positive: the model over-estimates).
    ``pearson_r`` and ``r2`` are NaN where undefined (constant reference values).

    >>> m = regression_metrics([1.0, 2.0, 4.0], [1.0, 2.0, 3.0])
    >>> m["n"], m["mae"], m["max_abs"], round(m["rmse"], 6)
    (3, 0.3333333333333333, 1.0, 0.57735)
    """
    p, t = finite_pairs(pred, ref)
    if p.size == 0:
        raise HdnnpError("no finite values to compare (empty input or all NaN)")
    err = p - t
    sq = err * err
    ss_res = float(sq.sum())
    ss_tot = float(((t - t.mean()) ** 2).sum())
    return {
        "n": int(p.size),
        "mae": float(np.abs(err).mean()),
        "rmse": float(np.sqrt(sq.mean())),
        "max_abs": float(np.abs(err).max()),
        "pearson_r": pearson_r(p, t),
        "r2": 1.0 - ss_res / ss_tot if ss_tot > 0.0 else float("nan"),
        "mean_error": float(err.mean()),
    }


def squared_errors(pred: ArrayLike, ref: ArrayLike) -> np.ndarray:
    r"""Squared errors :math:`(p_i - t_i)^2` of the finite pairs (thesis §3.3), flattened."""
    p, t = finite_pairs(pred, ref)
    return (p - t) ** 2


def per_atom(energies: ArrayLike, n_atoms: ArrayLike) -> np.ndarray:
    """Energies per atom :math:`E/N` (eV/atom) from energies (eV) and atom counts."""
    e = np.asarray(energies, dtype=np.float64).ravel()
    n = np.asarray(n_atoms, dtype=np.float64).ravel()
    if e.shape != n.shape:
        raise HdnnpError(f"{e.size} energies but {n.size} atom counts")
    if (n <= 0).any():
        raise HdnnpError("atom counts must be positive")
    return e / n


def _scaled(m: dict[str, float], factor: float, prefix: str, unit: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for key in ("mae", "rmse", "max_abs", "mean_error"):
        out[f"{prefix}_{key}_{unit}"] = m[key] * factor
    out[f"{prefix}_pearson_r"] = m["pearson_r"]
    out[f"{prefix}_r2"] = m["r2"]
    return out


def energy_metrics(energy_ref: ArrayLike, energy_pred: ArrayLike,
                   n_atoms: ArrayLike) -> dict[str, float]:
    r"""Metrics of the energy per atom, :math:`E/N`, in meV/atom.

    ``energy_ref`` and ``energy_pred`` are total (or cohesive) energies per structure in
    eV, ``n_atoms`` the number of atoms of each structure; the error of structure
    :math:`i` is :math:`(E^\mathrm{pred}_i - E^\mathrm{ref}_i)/N_i`.  Because total and
    cohesive energies differ by the same :math:`\sum_Z N_Z E_Z^\mathrm{ref}` for both, the
    error metrics are the same for either; Pearson r and R² are computed on the values
    given (use cohesive energies for a meaningful R²).

    Returns ``energy_{mae,rmse,max_abs,mean_error}_meV_per_atom``, ``energy_pearson_r``,
    ``energy_r2`` and ``n_structures``.

    >>> m = energy_metrics([-10.0, -20.0], [-9.99, -20.0], [2, 4])
    >>> round(m["energy_mae_meV_per_atom"], 9), round(m["energy_max_abs_meV_per_atom"], 9)
    (2.5, 5.0)
    """
    e_ref = per_atom(energy_ref, n_atoms)
    e_pred = per_atom(energy_pred, n_atoms)
    m = regression_metrics(e_pred, e_ref)
    out = _scaled(m, 1000.0, "energy", "meV_per_atom")
    out["n_structures"] = m["n"]
    return out


def force_metrics(forces_ref: ArrayLike, forces_pred: ArrayLike,
                  unit: str = "eV/A") -> dict[str, float]:
    r"""Metrics of the force components (every :math:`F_{i\alpha}` is one sample).

    ``forces_ref`` and ``forces_pred`` are arrays of forces in eV/Å, e.g. ``[N, 3]``.
    ``unit`` is ``"eV/A"`` or ``"meV/A"`` for the results.  Returns
    ``force_{mae,rmse,max_abs,mean_error}_<unit>`` (``eV_per_A`` or ``meV_per_A``),
    ``force_pearson_r``, ``force_r2`` and ``n_force_components``.
    """
    try:
        factor, suffix = _FORCE_UNITS[unit]
    except KeyError:
        raise HdnnpError(f"unknown force unit {unit!r}; use 'eV/A' or 'meV/A'") from None
    m = regression_metrics(forces_pred, forces_ref)
    out = _scaled(m, factor, "force", suffix)
    out["n_force_components"] = m["n"]
    return out
