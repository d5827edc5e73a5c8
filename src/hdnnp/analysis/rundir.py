"""Reading a training-run directory written by the trainer.

Layout::

    run_dir/
      config.json       resolved training configuration
      log.jsonl         one JSON object per epoch (see below)
      model.json        the best potential (hdnnp.potential.load_potential)
      predictions.npz   reference and predicted energies/forces of the train, validation
                        and test sets

A run has up to three splits (:data:`SPLITS`): ``train`` (fitted), ``validation``
(chooses the best epoch and ends a stage early) and ``test`` (predicted once, at the end,
with the best model).  Units everywhere: energy per atom in meV/atom, force components
in eV/Å.

``log.jsonl`` lines::

    {"epoch": 7, "stage": 2, "optimizer": "lm", "wall_s": 1.2, "loss": 0.01, "lr": null,
     "train": {"energy_mae_meV_per_atom": …, "energy_rmse_meV_per_atom": …,
               "energy_max_abs_meV_per_atom": …, "force_mae_eV_per_A": …,
               "force_rmse_eV_per_A": …, "force_max_abs_eV_per_A": …},
     "validation": {…same keys…}, "best": true}

``lr`` is null for optimizers without a learning rate; force keys are absent (or null)
without forces; ``"validation"`` is absent without a validation set.  The log has no
test metrics (the test set is not looked at during training).

Logs written before the validation split have ``"test"`` where ``"validation"`` is now
(the test set chose the best epoch then) and force keys in meV/Å
(``force_mae_meV_per_A``, ``force_rmse_meV_per_A``).  :func:`read_training_log` reads
them with the force values converted to the ``force_*_eV_per_A`` keys (÷ 1000); the old
``"test"`` entry stays under ``"test"``.

``predictions.npz`` (numpy, no pickle) holds, for each split ``s`` of ``train``,
``validation``, ``test`` that the run has (older files: ``train`` and ``test`` only):
``{s}_energy_ref``, ``{s}_energy_pred`` (total energies, eV, [S]), ``{s}_n_atoms``
([S]), ``{s}_forces_ref``, ``{s}_forces_pred`` ([M, 3], eV/Å: the force rows of all
atoms, M = sum N, or of the atoms that have reference forces, M < sum N; empty without
forces), ``{s}_names`` ([S] strings).  Optional: ``{s}_numbers`` ([sum N] atomic
numbers, structure after structure), which with the reference energies of
``model.json`` gives cohesive energies; ``{s}_energy_std`` (committee spread, not read
here).
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hdnnp.errors import HdnnpError, InputFileError

__all__ = ["SPLITS", "SplitPredictions", "best_epoch", "log_series", "normalise_record",
           "read_predictions", "read_training_log", "selection_split"]

#: The splits of a training run, in report order.
SPLITS = ("train", "validation", "test")

#: Splits that choose the best epoch, in order of preference: ``validation``, or
#: ``test`` in logs written before the validation split.
_SELECTION_SPLITS = ("validation", "test")


# ------------------------------------------------------------------ log.jsonl
def read_training_log(source: str | Path | Iterable[Mapping]) -> list[dict]:
    """Epoch records of a training log.

    ``source`` is a ``log.jsonl`` file, a run directory holding one, or already
    parsed records (a list of dicts).  A last line without its newline that does not
    parse (the trainer was writing it) is skipped with a warning; any other bad line
    is an :class:`~hdnnp.errors.InputFileError` naming file and line.

    Records of old logs are normalised (:func:`normalise_record`): force metrics in
    meV/Å become the ``force_*_eV_per_A`` keys, so every record has one convention.
    The records returned are new dicts; parsed records passed in are not changed.
    """
    if isinstance(source, str | Path):
        path = Path(source)
        if path.is_dir():
            path = path / "log.jsonl"
        if not path.is_file():
            raise HdnnpError(f"{path}: no such training log")
        text = path.read_text(encoding="utf-8")
        lines = text.split("\n")
        records = []
        for k, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as exc:
                if k == len(lines):  # unterminated last line: being written right now
                    warnings.warn(f"{path}, line {k}: incomplete last line skipped",
                                  stacklevel=2)
                    continue
                raise InputFileError(path, f"not a JSON object ({exc.msg})", k) from None
            if not isinstance(rec, dict) or "epoch" not in rec:
                raise InputFileError(path, "expected a JSON object with an 'epoch'", k)
            records.append(normalise_record(rec))
        return records
    records = [dict(r) for r in source]
    for k, rec in enumerate(records):
        if "epoch" not in rec:
            raise HdnnpError(f"training log record {k} has no 'epoch'")
    return [normalise_record(r) for r in records]


_OLD_FORCE_SUFFIX = "_meV_per_A"


def normalise_record(record: Mapping) -> dict:
    """A log record in the current convention (a new dict; ``record`` is unchanged).

    In the metric dict of every split (``train``, ``validation``, ``test``), a key
    ``force_<name>_meV_per_A`` of an old log becomes ``force_<name>_eV_per_A`` with the
    value divided by 1000 (null stays null); an ``eV_per_A`` key already there wins.
    An old ``"test"`` entry (the set that chose the best epoch then) stays as it is.
    """
    out = dict(record)
    for split in SPLITS:
        m = out.get(split)
        if not isinstance(m, Mapping):
            continue
        new = {}
        for key, value in m.items():
            if key.startswith("force_") and key.endswith(_OLD_FORCE_SUFFIX):
                ev_key = key[: -len(_OLD_FORCE_SUFFIX)] + "_eV_per_A"
                if ev_key in m:
                    continue
                key = ev_key
                value = None if value is None else float(value) / 1000.0
            new[key] = value
        out[split] = new
    return out


def log_series(log: list[dict], split: str, key: str) -> tuple[np.ndarray, np.ndarray]:
    """Epochs and values of ``log[i][split][key]`` (NaN where absent or null)."""
    epochs = np.array([float(r["epoch"]) for r in log], dtype=np.float64)
    values = []
    for r in log:
        v = (r.get(split) or {}).get(key)
        values.append(np.nan if v is None else float(v))
    return epochs, np.array(values, dtype=np.float64)


def best_epoch(log: list[dict], key: str = "energy_rmse_meV_per_atom") -> dict | None:
    """The record of the best epoch.

    The last record flagged ``"best": true`` (the trainer's choice, the epoch whose
    model was saved); if none is flagged, the one with the lowest validation value of
    ``key`` (the test value in logs written before the validation split; the train
    value without either).  The last record when no split has a value of ``key``;
    None for an empty log.
    """
    flagged = [r for r in log if r.get("best")]
    if flagged:
        return flagged[-1]
    for split in (*_SELECTION_SPLITS, "train"):
        _, v = log_series(log, split, key)
        if np.isfinite(v).any():
            return log[int(np.nanargmin(v))]
    return log[-1] if log else None


def selection_split(record: Mapping, key: str) -> str | None:
    """The split whose ``key`` value chose the best epoch in ``record``: ``validation``,
    ``test`` (old logs) or ``train``, the first that has a value; None if none has."""
    for split in (*_SELECTION_SPLITS, "train"):
        if (record.get(split) or {}).get(key) is not None:
            return split
    return None


# ------------------------------------------------------------ predictions.npz
@dataclass
class SplitPredictions:
    """Reference and predicted values of one split (``train``, ``validation``, ``test``).

    Energies in eV ([S]), forces in eV/Å ([M, 3] with M ≤ sum N, the atoms with
    reference forces; shape (0, 3) without forces).
    """

    split: str
    energy_ref: np.ndarray
    energy_pred: np.ndarray
    n_atoms: np.ndarray
    forces_ref: np.ndarray
    forces_pred: np.ndarray
    names: np.ndarray
    numbers: np.ndarray | None = None

    @property
    def n_structures(self) -> int:
        return int(self.energy_ref.size)

    @property
    def n_atoms_total(self) -> int:
        return int(self.n_atoms.sum())

    @property
    def has_forces(self) -> bool:
        """Forces present with at least one finite reference/prediction pair."""
        if self.forces_ref.size == 0:
            return False
        return bool((np.isfinite(self.forces_ref) & np.isfinite(self.forces_pred)).any())

    def reference_sum(self, reference_energies: Mapping[str, float]) -> np.ndarray | None:
        r""":math:`\sum_Z N_Z E^\mathrm{ref}_Z` per structure (eV), or None without
        ``numbers``."""
        if self.numbers is None:
            return None
        from ase.data import atomic_numbers

        table = np.zeros(119)
        for sym, e in reference_energies.items():
            table[atomic_numbers[sym]] = float(e)
        if self.n_structures == 0:
            return np.zeros(0)
        starts = np.concatenate([[0], np.cumsum(self.n_atoms)[:-1]]).astype(np.int64)
        return np.add.reduceat(table[self.numbers], starts)


def _array(npz, key: str, path: Path) -> np.ndarray:
    try:
        return np.asarray(npz[key])
    except ValueError as exc:  # object arrays would need pickle
        raise InputFileError(path, f"array {key!r} cannot be read without pickle "
                             f"({exc})") from None


def read_predictions(source: str | Path) -> dict[str, SplitPredictions]:
    """The splits in ``predictions.npz`` (a file or a run directory holding one).

    Returns ``{"train": SplitPredictions, "validation": …, "test": …}`` with the splits
    present, in :data:`SPLITS` order (a split is present when its ``energy_ref`` array
    is; files written before the validation split have train and test only).  Shapes
    are checked.
    """
    path = Path(source)
    if path.is_dir():
        path = path / "predictions.npz"
    if not path.is_file():
        raise HdnnpError(f"{path}: no such predictions file (has the training finished?)")
    try:
        npz = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise InputFileError(path, f"not a numpy .npz file ({exc})") from None
    out: dict[str, SplitPredictions] = {}
    with npz:
        keys = set(npz.files)
        for s in SPLITS:
            if f"{s}_energy_ref" not in keys:
                continue
            missing = [f"{s}_{k}" for k in ("energy_pred", "n_atoms") if f"{s}_{k}" not in keys]
            if missing:
                raise InputFileError(path, f"missing array(s) {', '.join(missing)}")
            e_ref = _array(npz, f"{s}_energy_ref", path).astype(np.float64).ravel()
            e_pred = _array(npz, f"{s}_energy_pred", path).astype(np.float64).ravel()
            n_atoms = _array(npz, f"{s}_n_atoms", path).astype(np.int64).ravel()
            if not e_ref.size == e_pred.size == n_atoms.size:
                raise InputFileError(path, f"{s}: {e_ref.size} reference energies, "
                                     f"{e_pred.size} predictions, {n_atoms.size} atom counts")
            if (n_atoms <= 0).any():
                raise InputFileError(path, f"{s}_n_atoms: atom counts must be positive")
            forces = []
            for k in ("forces_ref", "forces_pred"):
                f = (_array(npz, f"{s}_{k}", path).astype(np.float64) if f"{s}_{k}" in keys
                     else np.zeros((0, 3)))
                if f.size == 0:
                    f = np.zeros((0, 3))
                elif f.ndim != 2 or f.shape[1] != 3 or f.shape[0] > int(n_atoms.sum()):
                    raise InputFileError(path, f"{s}_{k} has shape {f.shape}, expected "
                                         f"(M, 3) with M ≤ {int(n_atoms.sum())} atoms")
                forces.append(f)
            if forces[0].shape != forces[1].shape:
                raise InputFileError(path, f"{s}: reference forces {forces[0].shape} but "
                                     f"predicted forces {forces[1].shape}")
            names = (_array(npz, f"{s}_names", path).astype(str).ravel()
                     if f"{s}_names" in keys else np.array([""] * e_ref.size))
            numbers = None
            if f"{s}_numbers" in keys:
                numbers = _array(npz, f"{s}_numbers", path).astype(np.int64).ravel()
                if numbers.size != int(n_atoms.sum()):
                    raise InputFileError(path, f"{s}_numbers has {numbers.size} entries, "
                                         f"expected {int(n_atoms.sum())}")
            out[s] = SplitPredictions(s, e_ref, e_pred, n_atoms, forces[0], forces[1], names,
                                      numbers)
    return out
