r"""The data of a training run: loading, selection and the train/validation/test split.

Steps, in this order, each recorded in the run's ``data_selection``:

1. read every ``data.train`` source with the one loader of the data layer
   (:func:`hdnnp.data.load_datasets`: files, directories, archives, databases,
   ``bundled:NAME``);
2. the energy caps (``max_energy_above_min``: ænet's ``MAXENERGY`` relative to the
   lowest cohesive energy per atom; ``max_energy_per_atom``: an absolute bound), the
   ``where`` conditions on the structures' info, the MD snapshot selection
   (``snapshot_interval``, ``snapshots_per_trajectory``), then ``n_structures`` drawn
   with ``data.seed`` (``augmented_fraction`` of them augmented when given);
3. the seeded split (:meth:`hdnnp.data.Dataset.split_three`): ``test_fraction`` and
   ``validation_fraction`` of the selected structures are held out, unless separate
   ``data.test`` / ``data.validation`` files are given.

The labels of every split must be finite (:func:`check_finite_labels`) before any
descriptor is computed.
"""

from __future__ import annotations

import math

import numpy as np

from hdnnp.data import Dataset, load_datasets
from hdnnp.errors import HdnnpError
from hdnnp.training.config import TrainConfig


def check_finite_labels(ds: Dataset, what: str = "training") -> None:
    """Raise :class:`HdnnpError` naming the first structure with a non-finite label.

    Checked before any descriptor is computed: a NaN or inf energy, force or reference
    energy would otherwise surface epochs later as a non-finite loss (and look like a
    learning-rate problem).  Structures are named by ``info["source"]``.
    """
    for el, value in ds.reference_energies.items():
        if not math.isfinite(float(value)):
            raise HdnnpError(f"the reference energy of {el} is {value}; reference energies "
                             "must be finite numbers (eV)")
    energies = ds.energies
    bad = np.flatnonzero(~np.isfinite(energies))
    if bad.size:
        raise HdnnpError(f"{ds.names[bad[0]]}: reference energy is {energies[bad[0]]} "
                         f"({bad.size} {what} structure(s) with a non-finite energy)")
    for k in range(len(ds)):
        forces = ds.forces(k)
        if forces is not None and not np.isfinite(forces).all():
            atom = int(np.flatnonzero(~np.isfinite(forces).all(axis=1))[0])
            raise HdnnpError(f"{ds.names[k]}: reference force on atom {atom + 1} is "
                             f"{forces[atom].tolist()} (non-finite; {what} set)")


def prepare_splits(cfg: TrainConfig) -> tuple[dict[str, Dataset], dict]:
    """``{"train", "validation", "test"}`` data sets of a run and a summary of the
    selection (counts after each step).  Raises :class:`HdnnpError` for no training data,
    missing reference energies, elements of a held-out set that training lacks, or
    non-finite labels."""
    dc = cfg.data
    if not dc.train:
        raise HdnnpError("no training data given (data.train is empty)")

    def load(sources):
        return load_datasets(sources, dc.format, dc.length_unit, dc.energy_unit,
                             require_energies=True)

    ds = load(dc.train)
    if dc.reference_energies is not None:
        ds.reference_energies = {k: float(v) for k, v in dc.reference_energies.items()}
    missing = [e for e in ds.elements if e not in ds.reference_energies]
    if ds.reference_energies and missing:
        raise HdnnpError(f"reference energies missing for element(s) {', '.join(missing)}")
    info: dict = {"read": len(ds)}
    if dc.max_energy_above_min is not None:
        ds = ds.filter_energy(dc.max_energy_above_min, relative_to_minimum=True)
        info["after_energy_cap"] = len(ds)
    if dc.max_energy_per_atom is not None:
        ds = ds.filter_energy(dc.max_energy_per_atom)
        info["after_energy_cap"] = len(ds)
    if dc.where:
        ds = ds.where(dc.where)
        info["after_where"] = len(ds)
    if dc.snapshot_interval is not None or dc.snapshots_per_trajectory is not None:
        ds = ds.snapshots(dc.snapshot_interval or 1, dc.snapshots_per_trajectory)
        info["after_snapshots"] = len(ds)
    if dc.augmented_fraction is not None:
        ds = ds.augmented_mix(dc.augmented_fraction, dc.n_structures, seed=dc.seed)
    elif dc.n_structures is not None:
        ds = ds.sample(dc.n_structures, seed=dc.seed)
    train, validation, test = ds.split_three(
        0.0 if dc.validation else dc.validation_fraction,
        0.0 if dc.test else dc.test_fraction, seed=dc.seed)
    for name, sources in (("validation", dc.validation), ("test", dc.test)):
        if sources:
            separate = load(sources)
            separate.reference_energies = dict(ds.reference_energies)
            if name == "validation":
                validation = separate
            else:
                test = separate
    splits = {"train": train, "validation": validation, "test": test}
    if len(train) == 0:
        raise HdnnpError("the training set is empty")
    for name, part in splits.items():
        check_finite_labels(part, name)
        extra = set(part.elements) - set(train.elements)
        if extra:
            raise HdnnpError(f"the {name} set has element(s) {', '.join(sorted(extra))} that "
                             "are not in the training set")
    info.update({f"n_{name}": len(part) for name, part in splits.items()})
    return splits, info
