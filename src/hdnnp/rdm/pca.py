r"""Principal component analysis of densities and 1-RDMs (atomic units).

For data :math:`X` (systems × features) the centred covariance
:math:`C = (X - \bar X)^\top (X - \bar X) / (S - 1)` has eigenvalues
:math:`\lambda_1 \ge \lambda_2 \ge \dots \ge 0`.  The **residual variance fraction** of
:math:`K` components is

.. math::  r_K = \sum_{k > K} \lambda_k \Big/ \sum_k \lambda_k ,

the fraction of the total variance (mean squared deviation from the mean) that the first
:math:`K` components leave unexplained; the number of components *to reach a tolerance*
:math:`\varepsilon` is the smallest :math:`K` with :math:`r_K \le \varepsilon`.  "Float
precision" (the paper's criterion, Wetherell et al., Faraday Discuss. 224, 265 (2020):
41 components for the 62-point densities, 327 for the 1-RDMs) is taken here as
:math:`\varepsilon = 2^{-23} \approx 1.19 \times 10^{-7}`, the unit roundoff of float32:
the explained-variance ratio :math:`1 - r_K` rounds to 1 in single precision.  The
tails are summed from the small end (no cancellation in :math:`1 - \text{cumsum}`).

1-RDMs are symmetric, so only the upper triangle (diagonal included) is independent:
the feature vector is :math:`(\gamma_{ii}, \sqrt2\,\gamma_{i<j})`, whose Euclidean norm
equals the Frobenius norm of the full matrix — the variances and hence :math:`r_K` are
those of the flattened full matrix, with half the features (1953 instead of 3844 on the
paper's grid).

The eigen-decomposition of the covariance matrix (accumulated in chunks, float64) is
used instead of an SVD of the whole data matrix: it needs memory for one
features × features matrix only; it resolves eigenvalues down to about
:math:`10^{-16}\lambda_1`, enough for tolerances well above that.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from hdnnp.errors import HdnnpError
from hdnnp.fileio import atomic_write_text

__all__ = [
    "PrincipalComponents",
    "components_for_tolerance",
    "fit_pca",
    "rdm_features",
    "rdm_from_features",
    "residual_variance",
    "run_pca_analysis",
]

FLOAT32_PRECISION = 2.0**-23


class PrincipalComponents:
    """Mean, variances (descending) and components (rows) of a data set."""

    def __init__(self, mean: np.ndarray, variances: np.ndarray, components: np.ndarray):
        self.mean, self.variances, self.components = mean, variances, components

    def transform(self, data: np.ndarray, k: int | None = None) -> np.ndarray:
        return (np.asarray(data) - self.mean) @ self.components[:k].T

    def inverse_transform(self, coefficients: np.ndarray) -> np.ndarray:
        k = coefficients.shape[-1]
        return coefficients @ self.components[:k] + self.mean


def fit_pca(data: np.ndarray, chunk: int = 4096) -> PrincipalComponents:
    """PCA of ``data`` (S × F) via the covariance matrix (module docstring)."""
    data = np.asarray(data, dtype=float)
    if data.ndim != 2 or len(data) < 2:
        raise HdnnpError(f"PCA needs at least two samples, got shape {data.shape}")
    mean = data.mean(axis=0)
    cov = np.zeros((data.shape[1], data.shape[1]))
    for start in range(0, len(data), chunk):
        block = data[start:start + chunk] - mean
        cov += block.T @ block
    cov /= len(data) - 1
    lam, vec = np.linalg.eigh(cov)
    order = np.argsort(lam)[::-1]
    return PrincipalComponents(mean, np.clip(lam[order], 0.0, None), vec[:, order].T.copy())


def residual_variance(variances: np.ndarray) -> np.ndarray:
    """r_K for K = 0 .. len(variances) (r_0 = 1, r_last = 0), tails summed small-first."""
    v = np.clip(np.asarray(variances, dtype=float), 0.0, None)
    total = v.sum()
    if total <= 0:
        return np.zeros(len(v) + 1)
    tails = np.concatenate([np.cumsum(v[::-1])[::-1], [0.0]])
    return tails / total


def components_for_tolerance(variances: np.ndarray, tolerance: float) -> int:
    """Smallest K with r_K ≤ tolerance."""
    r = residual_variance(variances)
    return int(np.argmax(r <= tolerance))


def rdm_features(rdm: np.ndarray) -> np.ndarray:
    """(..., N, N) symmetric 1-RDMs → (..., N(N+1)/2) upper-triangle features, off-diagonal
    entries times √2 (norm-preserving; module docstring)."""
    n = rdm.shape[-1]
    i, j = np.triu_indices(n)
    w = np.where(i == j, 1.0, np.sqrt(2.0))
    return rdm[..., i, j] * w


def rdm_from_features(features: np.ndarray, n: int) -> np.ndarray:
    """Inverse of :func:`rdm_features`."""
    i, j = np.triu_indices(n)
    w = np.where(i == j, 1.0, np.sqrt(2.0))
    out = np.zeros((*features.shape[:-1], n, n))
    out[..., i, j] = features / w
    out[..., j, i] = features / w
    return out


def run_pca_analysis(data_path: str | Path, out_dir: str | Path,
                     tolerances=(FLOAT32_PRECISION,), limit: int | None = None) -> dict:
    """PCA of a data set's densities and 1-RDMs: ``pca.json``, ``pca.md``,
    ``explained_variance.png`` in ``out_dir``; returns the summary."""
    from hdnnp.rdm.generate import load_dataset

    for t in tolerances:
        if not (0 < t < 1):
            raise HdnnpError(f"--tolerance must lie in (0, 1), got {t}")
    ds = load_dataset(data_path, limit=limit)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    sets = {"density": ds.density, "rdm": rdm_features(ds.rdm)}
    summary = {"data": str(data_path), "systems": len(ds), "tolerances": list(tolerances),
               "definition": "smallest K with sum_{k>K} l_k / sum_k l_k <= tolerance "
                             "(centred covariance eigenvalues l_k)",
               "rdm_features": "upper triangle incl. diagonal, off-diagonal x sqrt(2)",
               "components": {}, "features": {}, "residual_variance": {}}
    for name, x in sets.items():
        pc = fit_pca(x)
        summary["features"][name] = int(x.shape[1])
        summary["components"][name] = {f"{t:.3g}": components_for_tolerance(pc.variances, t)
                                       for t in tolerances}
        summary["residual_variance"][name] = residual_variance(pc.variances)[:400].tolist()
    atomic_write_text(out / "pca.json", json.dumps(summary, indent=1))
    lines = ["| data | features | " + " | ".join(f"K (r ≤ {t:.3g})" for t in tolerances)
             + " |", "|---|---|" + "---|" * len(tolerances)]
    for name in sets:
        ks = summary["components"][name]
        lines.append(f"| {name} | {summary['features'][name]} | "
                     + " | ".join(str(ks[f"{t:.3g}"]) for t in tolerances) + " |")
    atomic_write_text(out / "pca.md", "\n".join(lines) + "\n")
    _plot(summary, out / "explained_variance.png")
    return summary


def _plot(summary: dict, path: Path) -> None:
    from matplotlib.figure import Figure

    from hdnnp.analysis.plots import save_figure

    fig = Figure(figsize=(5.0, 3.6), layout="constrained")
    ax = fig.subplots()
    for name, label in (("density", "densities n(x)"), ("rdm", "1-RDMs γ(x,x')")):
        r = np.asarray(summary["residual_variance"][name])
        k = np.arange(len(r))
        ok = r > 0
        ax.semilogy(k[ok], r[ok], label=label)
    for t in summary["tolerances"]:
        ax.axhline(t, color="grey", ls="--", lw=0.8)
    ax.set_xlabel("number of components K")
    ax.set_ylabel("residual variance fraction $r_K$")
    ax.legend()
    ax.set_title(f"PCA of {summary['systems']} systems")
    save_figure(fig, path)
