"""Several potentials on several subsets of one data set (thesis §5.2, figs. 5.10–5.16).

The thesis compares potential A (trained on MD snapshots only) with potential B (trained
on MD plus scaled structures) on the original and on the scaled structures.
:func:`compare_models` predicts every model once on the data, splits the predictions
into the requested subsets (structures whose ``info`` matches, e.g.
``augmentation=scale``) and writes into ``out_dir``:

============================  ========================================================
``metrics.json``              {model: {subset: metrics}}: energy per atom (meV/atom)
                              and force components (eV/Å): MAE, RMSE, max, Pearson r
``energy_parity_<model>.png`` predicted vs reference cohesive energy per atom, one
                              colour per subset, MAE/RMSE/r in the panel
``force_parity_<model>.png``  the same for the force components (with forces)
``energy_error_hist.png``     squared errors of every model on every subset,
                              normalised per set (fractions), so subsets of different
                              size compare; axis bounded below (see plot_error_histogram)
``force_error_hist.png``      the same for the force components
``energy_distribution.png``   the reference cohesive energies of each subset
``report.html``               all of it on one page with the table
============================  ========================================================

Energies are cohesive energies per atom with the data set's isolated-atom energies
(the models' when the data set has none); the errors are the same either way.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from hdnnp.errors import HdnnpError
from hdnnp.fileio import atomic_write_text

__all__ = ["compare_models", "parse_subset", "subset_indices"]


def parse_subset(text: str) -> tuple[str, str, str, str]:
    """``[LABEL:]CONDITION`` → (label, key, operator, value); CONDITION as in ``hdnnp data
    select --where`` (:func:`hdnnp.data.parse_where`: ``augmentation=scale``,
    ``temperature_K>=750`` ...); the label defaults to the condition itself."""
    from hdnnp.data import parse_where

    label, colon, rest = text.partition(":")
    if not colon or any(op in label for op in "=<>!"):
        label, rest = "", text
    key, op, value = parse_where(rest)
    return (label.strip() or rest.strip()), key, op, value


def subset_indices(structures: Sequence, key: str, op: str, value: str) -> np.ndarray:
    """Indices of the structures whose ``info`` satisfies ``key <op> value``."""
    from hdnnp.data import where_matches

    return np.array([k for k, a in enumerate(structures)
                     if where_matches(a.info, key, op, value)], dtype=np.int64)


def _safe(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9.+-]+", "_", label).strip("_") or "model"


def compare_models(models: Mapping[str, object], data, subsets: Sequence[str] = (),
                   out_dir: str | Path = "compare", progress: bool = False) -> dict:
    """Predict each of ``models`` ({label: NeuralNetworkPotential}) on ``data`` (a
    :class:`hdnnp.data.Dataset`) and compare them on each subset; returns the metrics."""
    from hdnnp.analysis.metrics import energy_metrics, force_metrics
    from hdnnp.analysis.plots import (
        plot_energy_distribution,
        plot_error_histogram,
        plot_parity,
    )
    from hdnnp.predict import predict_structures

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    structures = list(data.structures)
    if not structures:
        raise HdnnpError("no structures to compare on")
    parts: dict[str, np.ndarray] = {}
    for text in subsets:
        label, key, op, value = parse_subset(text)
        idx = subset_indices(structures, key, op, value)
        if idx.size == 0:
            seen = sorted({str(a.info.get(key)) for a in structures})[:8]
            raise HdnnpError(f"--subset {text}: no structure has {key} {op} {value} "
                             f"(values seen: {', '.join(seen)})")
        parts[label] = idx
    if not parts:
        parts["all"] = np.arange(len(structures))
    n_atoms = data.n_atoms
    atom_start = np.concatenate([[0], np.cumsum(n_atoms)])
    first = next(iter(models.values()))
    ref_e = dict(data.reference_energies) or first.reference_energy_dict()
    shift = data.reference_sum(ref_e)
    coh_ref = data.cohesive_energies(ref_e)
    metrics: dict[str, dict] = {}
    e_ref, e_pred, f_ref, f_pred = {}, {}, {}, {}
    for label, model in models.items():
        pred = predict_structures(model, structures, forces=True, progress=progress)
        coh = (pred["energy"] - shift) / n_atoms
        metrics[label] = {}
        for sub, idx in parts.items():
            atoms_idx = np.concatenate([np.arange(atom_start[k], atom_start[k + 1])
                                        for k in idx])
            m = {"n_structures": int(idx.size)}
            m.update(energy_metrics(pred["energy_ref"][idx], pred["energy"][idx],
                                    n_atoms[idx]))
            fr, fp = pred["forces_ref"][atoms_idx], pred["forces"][atoms_idx]
            if np.isfinite(fr).any():
                m.update(force_metrics(fr, fp))
            metrics[label][sub] = {k: (None if isinstance(v, float) and not np.isfinite(v)
                                       else v) for k, v in m.items()}
            e_ref[(label, sub)], e_pred[(label, sub)] = coh_ref[idx], coh[idx]
            f_ref[(label, sub)], f_pred[(label, sub)] = fr, fp
        plot_parity({s: e_ref[(label, s)] for s in parts}, {s: e_pred[(label, s)]
                                                             for s in parts},
                    out / f"energy_parity_{_safe(label)}.png", quantity="energy",
                    title=f"{label}: energy")
        if any(np.isfinite(f_ref[(label, s)]).any() for s in parts):
            plot_parity({s: f_ref[(label, s)] for s in parts},
                        {s: f_pred[(label, s)] for s in parts},
                        out / f"force_parity_{_safe(label)}.png", quantity="force",
                        title=f"{label}: forces")
    names = {key: f"{key[0]} on {key[1]}" for key in e_ref}
    plot_error_histogram({names[k]: v for k, v in e_ref.items()},
                         {names[k]: v for k, v in e_pred.items()},
                         out / "energy_error_hist.png", quantity="energy")
    if any(np.isfinite(v).any() for v in f_ref.values()):
        plot_error_histogram({names[k]: v for k, v in f_ref.items()},
                             {names[k]: v for k, v in f_pred.items()},
                             out / "force_error_hist.png", quantity="force")
    plot_energy_distribution({s: coh_ref[idx] for s, idx in parts.items()},
                             out / "energy_distribution.png", density=True)
    atomic_write_text(out / "metrics.json", json.dumps(metrics, indent=1))
    _write_html(out, metrics, models, parts)
    return metrics


def _write_html(out: Path, metrics: dict, models: Mapping, parts: Mapping) -> None:
    from hdnnp.analysis.html import HtmlPage

    page = HtmlPage("Comparison of potentials")
    page.paragraph(f"{len(models)} potential(s) on {len(parts)} subset(s); energies per "
                   "atom in meV/atom, force components in eV/Å.")
    rows = []
    for label, per in metrics.items():
        for sub, m in per.items():
            rows.append({"model": label, "subset": sub, "structures": m["n_structures"],
                         "energy MAE": m.get("energy_mae_meV_per_atom"),
                         "energy RMSE": m.get("energy_rmse_meV_per_atom"),
                         "energy r": m.get("energy_pearson_r"),
                         "force MAE": m.get("force_mae_eV_per_A"),
                         "force RMSE": m.get("force_rmse_eV_per_A"),
                         "force r": m.get("force_pearson_r")})
    page.table(rows)
    page.heading("Parity")
    for label in models:
        page.figure(out / f"energy_parity_{_safe(label)}.png", f"{label}: energies")
        if (out / f"force_parity_{_safe(label)}.png").is_file():
            page.figure(out / f"force_parity_{_safe(label)}.png", f"{label}: forces")
    page.heading("Squared errors and energy distributions")
    page.figure(out / "energy_error_hist.png", "squared errors of the energy per atom, "
                "fraction of each set per bin; dashed: mean squared error")
    if (out / "force_error_hist.png").is_file():
        page.figure(out / "force_error_hist.png", "squared errors of the force components")
    page.figure(out / "energy_distribution.png", "reference cohesive energies per subset")
    page.write(out / "report.html")
