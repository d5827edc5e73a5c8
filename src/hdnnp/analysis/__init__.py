"""Analysis of potentials and training runs: metrics, figures, reports, scans.

Modules (one concept each, thesis §3.3–3.4, §4.3.1, §5.1.1):

==============  ===============================================================
``metrics``     error metrics: MAE, RMSE, maximum error, Pearson r, R², bias
``rundir``      reading a training-run directory (``log.jsonl``, ``predictions.npz``)
``plots``       matplotlib figures (loss curves, parity, squared-error histograms,
                energy distributions, scaling scans, convergence studies)
``report``      ``write_report(run_dir)``: metrics.json and figures of a training run
``scan``        energy-vs-scaling-factor scans (thesis fig. 5.2)
==============  ===============================================================

Importing :mod:`hdnnp.analysis` is cheap; matplotlib is imported only by the plot
functions.
"""

from __future__ import annotations

__all__ = ["energy_metrics", "force_metrics", "pearson_r", "regression_metrics"]

from hdnnp.analysis.metrics import energy_metrics, force_metrics, pearson_r, regression_metrics
