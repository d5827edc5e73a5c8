r"""Evaluation of a training run: epoch metrics, the final predictions and the report.

One metric implementation and one unit convention for the whole run: the errors of the
energy per atom in meV/atom and of the force components in eV/Å, computed by
:func:`hdnnp.analysis.metrics.energy_metrics` and
:func:`~hdnnp.analysis.metrics.force_metrics` (MAE, RMSE, largest error; formulas
there) for the epoch records of ``log.jsonl`` (:class:`ErrorAccumulator`) as for
``metrics.json`` (:func:`evaluate_run`, by way of the report).  Keys:
``energy_{mae,rmse,max_abs}_meV_per_atom`` and ``force_{mae,rmse,max_abs}_eV_per_A``,
prefixed with the split (``train_``, ``validation_``, ``test_``) in ``metrics.json``.

The three splits have three jobs (thesis §3.3; the usual practice of the field): the
training set is fitted, the validation set chooses the best epoch, ends a stage early and
so is seen by the model selection, and the test set is predicted once, by
:func:`evaluate_run` after training, so that its errors estimate those of new
structures.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from hdnnp.analysis.metrics import energy_metrics, force_metrics
from hdnnp.analysis.report import write_report
from hdnnp.data import Dataset
from hdnnp.fileio import atomic_path, atomic_write_text
from hdnnp.io import write_structures
from hdnnp.model import NeuralNetworkPotential
from hdnnp.predict import predict_structures
from hdnnp.training.featureset import FeatureSet, TrainingBatch
from hdnnp.training.losses import batch_predictions

#: the metrics of an epoch record (``log.jsonl``); ``metrics.json`` has more per split
EPOCH_METRICS = ("energy_mae_meV_per_atom", "energy_rmse_meV_per_atom",
                 "energy_max_abs_meV_per_atom", "force_mae_eV_per_A", "force_rmse_eV_per_A",
                 "force_max_abs_eV_per_A")

#: the splits of a run, in the order of the report
SPLITS = ("train", "validation", "test")


class ErrorAccumulator:
    """Collects the predictions of training batches; :meth:`result` gives their metrics
    (keys :data:`EPOCH_METRICS`: meV/atom and eV/Å)."""

    def __init__(self):
        self._energy: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self._forces: list[tuple[np.ndarray, np.ndarray]] = []

    def add(self, energy: torch.Tensor, forces: torch.Tensor | None, tb: TrainingBatch):
        """Energies [B] (eV) and forces [N, 3] (eV/Å, None: none) predicted for ``tb``."""
        self._energy.append((energy.detach().double().cpu().numpy(),
                             tb.energy.detach().double().cpu().numpy(),
                             tb.n_atoms.detach().cpu().numpy()))
        if forces is not None and tb.force_atoms.numel():
            fa = tb.force_atoms
            self._forces.append((forces.detach()[fa].double().cpu().numpy(),
                                 tb.forces[fa].detach().double().cpu().numpy()))

    def result(self) -> dict:
        out: dict[str, float] = {}
        if self._energy:
            pred, ref, n = (np.concatenate(parts) for parts in zip(*self._energy))
            out.update(energy_metrics(ref, pred, n))
        if self._forces:
            pred, ref = (np.concatenate(parts) for parts in zip(*self._forces))
            out.update(force_metrics(ref, pred, unit="eV/A"))
        return {k: out[k] for k in EPOCH_METRICS if k in out}


def _batches(fs: FeatureSet, step: int):
    n = len(fs)
    if n <= step:
        yield fs.batch()
        return
    for start in range(0, n, step):
        yield fs.batch(np.arange(start, min(n, start + step)))


def evaluate_featureset(model: NeuralNetworkPotential, fs: FeatureSet | None,
                        step: int = 256) -> dict:
    """Metrics (:data:`EPOCH_METRICS`) of ``model`` on a stored feature set, ``step``
    structures at a time; ``{}`` for no or an empty set."""
    if fs is None or len(fs) == 0:
        return {}
    model.eval()
    acc = ErrorAccumulator()
    for tb in _batches(fs, max(1, step)):
        energy, forces = batch_predictions(model, tb, True, create_graph=False)
        acc.add(energy, forces, tb)
    return acc.result()


def selection_loss(metrics: dict, energy_weight: float, force_weight: float) -> float:
    r"""The loss :math:`w_E\,\mathrm{RMSE}_E^2 + w_F\,\mathrm{RMSE}_F^2` (eV/atom, eV/Å)
    of a metrics dict: the training loss of :mod:`hdnnp.training.losses` evaluated on a
    whole set, by which the best epoch is chosen."""
    loss = energy_weight * (metrics.get("energy_rmse_meV_per_atom", 0.0) / 1000) ** 2
    if "force_rmse_eV_per_A" in metrics:
        loss += force_weight * metrics["force_rmse_eV_per_A"] ** 2
    return loss


def write_split(run_dir: Path, splits: dict[str, Dataset]) -> None:
    """``split.json`` (the structure names of each split) and ``{split}.extxyz`` for the
    validation and test sets (the structures a user may want to predict again)."""
    atomic_write_text(run_dir / "split.json", json.dumps(
        {name: ds.names for name, ds in splits.items()}, indent=0))
    for name in ("validation", "test"):
        ds = splits.get(name)
        if ds is not None and len(ds):
            write_structures(run_dir / f"{name}.extxyz", ds.structures, format="extxyz")


def evaluate_run(model: NeuralNetworkPotential, run_dir: Path, splits: dict[str, Dataset],
                 train_force_mask=None, figures: bool = True, progress: bool = False) -> dict:
    """Predict every split with the full model (descriptors and forces by autograd), write
    ``predictions.npz`` and the report; returns the report's metrics (``metrics.json``).

    ``splits`` maps ``train``/``validation``/``test`` to data sets (missing or empty
    splits are left out).  ``train_force_mask`` restricts the training-force metrics to
    the structures that took part in force training (None: all with reference forces).
    """
    model.eval()
    arrays = {}
    for name in SPLITS:
        ds = splits.get(name)
        if ds is None:
            continue
        fmask = train_force_mask if name == "train" else None
        pred = predict_structures(model, ds.structures, forces=True, progress=progress)
        n_at = pred["n_atoms"]
        fr, fp = pred["forces_ref"], pred["forces"]
        if fmask is not None:
            atom_mask = np.repeat(fmask, n_at)
            fr, fp = fr[atom_mask], fp[atom_mask]
        ok = ~np.isnan(fr).any(1) if len(fr) else np.zeros(0, bool)
        arrays.update({
            f"{name}_energy_ref": pred["energy_ref"], f"{name}_energy_pred": pred["energy"],
            f"{name}_n_atoms": n_at, f"{name}_forces_ref": fr[ok].reshape(-1, 3),
            f"{name}_forces_pred": fp[ok].reshape(-1, 3),
            f"{name}_names": np.array(ds.names, dtype=str),
            f"{name}_numbers": (np.concatenate([a.numbers for a in ds.structures])
                                if len(ds) else np.zeros(0, dtype=np.int64))})
        if "energy_std" in pred:
            arrays[f"{name}_energy_std"] = pred["energy_std"]
    with atomic_path(run_dir / "predictions.npz") as tmp:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, **arrays)
    return write_report(run_dir, figures=figures)
