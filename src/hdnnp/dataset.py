r"""Labelled data sets: structures with reference energies and forces.

A :class:`Dataset` is a list of ASE ``Atoms`` whose reference energy (eV) and
forces (eV/Å) are attached as ``SinglePointCalculator`` results, plus optional
per-element isolated-atom energies :math:`E^\mathrm{ref}_Z` that turn total
energies into cohesive energies (thesis eq. 4.3):

.. math:: E_\mathrm{coh} = E - \sum_Z N_Z E^\mathrm{ref}_Z,
          \qquad E_\mathrm{coh/atom} = E_\mathrm{coh} / N.

Splits and samples are reproducible: they depend only on the seed and the order of
the structures.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.data import atomic_numbers

from hdnnp.errors import HdnnpError

#: The ``info`` keys that identify one MD trajectory of a data set
#: (:meth:`Dataset.snapshots`); its snapshots are ordered by ``md_step``.
TRAJECTORY_KEYS = ("material", "sampler", "temperature_K", "seed", "augmentation",
                   "dataset")


def structure_energy(atoms: Atoms) -> float | None:
    """Reference total energy attached to ``atoms`` (eV), or None."""
    calc = atoms.calc
    if calc is None:
        return None
    e = getattr(calc, "results", {}).get("energy")
    return None if e is None else float(e)


def structure_forces(atoms: Atoms) -> np.ndarray | None:
    """Reference forces attached to ``atoms`` ([N, 3], eV/Å), or None."""
    calc = atoms.calc
    if calc is None:
        return None
    f = getattr(calc, "results", {}).get("forces")
    return None if f is None else np.asarray(f, dtype=np.float64)


def sort_elements(symbols: Iterable[str]) -> list[str]:
    """Elements ordered by atomic number (the order used for networks and spins)."""
    return sorted(set(symbols), key=lambda s: atomic_numbers[s])


class Dataset:
    """A labelled data set.

    Example::

        >>> ds = Dataset.from_files("TiO2-xsf.tar.gz",             # doctest: +SKIP
        ...                         reference_energies={"O": -432.503149303,
        ...                                             "Ti": -1604.604515075})
        >>> train, test = ds.split(test_fraction=0.1, seed=1)      # doctest: +SKIP
    """

    def __init__(self, structures: Sequence[Atoms],
                 reference_energies: Mapping[str, float] | None = None,
                 require_energy: bool = True, validate: bool = True):
        """``validate`` runs :func:`hdnnp.validation.check_structure` on every structure
        (finite, bounded positions, cell, energy, forces; no duplicate atoms) and checks
        the reference energies are finite, so data built in memory or taken from a
        database is as safe as data read by the readers (which check it already, hence
        ``validate=False`` for structures that come from them or from another Dataset)."""
        from hdnnp.validation import check_reference_energies, check_structure

        self.structures: list[Atoms] = list(structures)
        self.reference_energies: dict[str, float] = check_reference_energies(
            reference_energies, "isolated-atom reference energies")
        if validate:
            for k, atoms in enumerate(self.structures):
                check_structure(atoms, str(atoms.info.get("source", f"structure {k + 1}")))
        self._energies = np.array([structure_energy(a) if structure_energy(a) is not None
                                   else np.nan for a in self.structures], dtype=np.float64)
        if require_energy:
            self.require_energies()

    # ---------------------------------------------------------------- creation
    @classmethod
    def from_files(cls, paths: str | Path | Sequence[str | Path], format: str | None = None,
                   reference_energies: Mapping[str, float] | None = None,
                   **kwargs) -> Dataset:
        from hdnnp.io import read_structures

        return cls(read_structures(paths, format, **kwargs), reference_energies, validate=False)

    def require_energies(self) -> None:
        """Raise :class:`HdnnpError` naming the first structure without a reference energy."""
        missing = np.flatnonzero(np.isnan(self._energies))
        if missing.size:
            raise HdnnpError(f"{self.names[missing[0]]}: structure has no reference energy "
                             f"({missing.size} such structures)")

    # ---------------------------------------------------------------- access
    def __len__(self) -> int:
        return len(self.structures)

    def __getitem__(self, k: int) -> Atoms:
        return self.structures[k]

    def __iter__(self):
        return iter(self.structures)

    @property
    def names(self) -> list[str]:
        return [str(a.info.get("source", f"structure {k}")) for k, a in enumerate(self.structures)]

    @property
    def energies(self) -> np.ndarray:
        """Total reference energies (eV), [S]."""
        return self._energies.copy()

    @property
    def n_atoms(self) -> np.ndarray:
        return np.array([len(a) for a in self.structures], dtype=np.int64)

    @property
    def elements(self) -> list[str]:
        return sort_elements(s for a in self.structures for s in a.get_chemical_symbols())

    @property
    def has_forces(self) -> np.ndarray:
        return np.array([structure_forces(a) is not None for a in self.structures], dtype=bool)

    def forces(self, k: int) -> np.ndarray | None:
        return structure_forces(self.structures[k])

    def reference_sum(self, reference_energies: Mapping[str, float] | None = None) -> np.ndarray:
        """Σ_Z N_Z E_ref_Z per structure (eV)."""
        ref = self.reference_energies if reference_energies is None else reference_energies
        out = np.zeros(len(self))
        for k, a in enumerate(self.structures):
            counts = Counter(a.get_chemical_symbols())
            out[k] = sum(n * float(ref.get(e, 0.0)) for e, n in counts.items())
        return out

    def cohesive_energies(self, reference_energies: Mapping[str, float] | None = None,
                          per_atom: bool = True) -> np.ndarray:
        """E - Σ N_Z E_ref_Z (eV, per atom by default), thesis eq. 4.3."""
        e = self._energies - self.reference_sum(reference_energies)
        return e / self.n_atoms if per_atom else e

    # ---------------------------------------------------------------- selection
    def subset(self, indices: Iterable[int]) -> Dataset:
        idx = [int(i) for i in indices]
        return Dataset([self.structures[i] for i in idx], self.reference_energies,
                       require_energy=False, validate=False)

    def sample(self, n: int, seed: int = 0) -> Dataset:
        """``n`` structures drawn without replacement with a fixed seed (original order kept)."""
        if n > len(self):
            raise HdnnpError(f"cannot draw {n} structures from a data set of {len(self)}")
        rng = np.random.default_rng(seed)
        return self.subset(np.sort(rng.choice(len(self), size=n, replace=False)))

    def split(self, test_fraction: float = 0.1, seed: int = 0) -> tuple[Dataset, Dataset]:
        """Random train/test split; the test set gets round(test_fraction * S) structures."""
        if not 0.0 <= test_fraction < 1.0:
            raise HdnnpError(f"test fraction must be in [0, 1), got {test_fraction}")
        rng = np.random.default_rng(seed)
        perm = rng.permutation(len(self))
        n_test = round(test_fraction * len(self))
        test, train = np.sort(perm[:n_test]), np.sort(perm[n_test:])
        return self.subset(train), self.subset(test)

    def split_three(self, validation_fraction: float = 0.1, test_fraction: float = 0.1,
                    seed: int = 0) -> tuple[Dataset, Dataset, Dataset]:
        """Seeded train/validation/test split: one permutation of the structures, the
        first round(test_fraction S) are the test set, the next round(validation_fraction
        S) the validation set, the rest the training set (each in the original order)."""
        for name, f in (("validation", validation_fraction), ("test", test_fraction)):
            if not 0.0 <= f < 1.0:
                raise HdnnpError(f"{name} fraction must be in [0, 1), got {f}")
        if validation_fraction + test_fraction >= 1.0:
            raise HdnnpError(f"validation fraction {validation_fraction} + test fraction "
                             f"{test_fraction} leave no training data")
        perm = np.random.default_rng(seed).permutation(len(self))
        n_test = round(test_fraction * len(self))
        n_valid = round(validation_fraction * len(self))
        parts = np.split(perm, [n_test, n_test + n_valid])
        test, valid, train = (self.subset(np.sort(p)) for p in parts)
        return train, valid, test

    def where(self, conditions: Sequence[str]) -> Dataset:
        """The structures whose ``info`` satisfies every condition (``"augmentation=none"``,
        ``"temperature_K<=500"``; syntax of :func:`parse_where`)."""
        parsed = [parse_where(c) for c in conditions]
        return self.subset(k for k, a in enumerate(self.structures)
                           if all(where_matches(a.info, *p) for p in parsed))

    def snapshots(self, interval: int, per_trajectory: int | None = None) -> Dataset:
        """Every ``interval``-th snapshot of each MD trajectory, the first
        ``per_trajectory`` of them (thesis §3.4.3: the time between snapshots doubled
        from Δτ = 273 fs to 546 fs at a fixed number of structures).

        A trajectory is the structures sharing :data:`TRAJECTORY_KEYS` (material,
        sampler, target temperature, seed, augmentation, data set), ordered by ``md_step``;
        the snapshot time is ``interval`` times the data set's own sampling interval.
        Raises :class:`HdnnpError` when a structure has no ``md_step``."""
        if interval < 1:
            raise HdnnpError(f"snapshot interval must be at least 1, got {interval}")
        keep = []
        for members in self.trajectories().values():
            keep += members[::interval][:per_trajectory]
        return self.subset(sorted(keep))

    def trajectories(self) -> dict[tuple, list[int]]:
        """The indices of each MD trajectory's snapshots in ``md_step`` order, keyed by
        the values of :data:`TRAJECTORY_KEYS`.  Raises :class:`HdnnpError` when a
        structure has no ``md_step``."""
        groups: dict[tuple, list[tuple[int, int]]] = {}
        for k, a in enumerate(self.structures):
            if "md_step" not in a.info:
                raise HdnnpError(f"{self.names[k]}: no md_step in its info, so it is not an "
                                 "MD snapshot (needed by snapshot_interval)")
            key = tuple(str(a.info.get(t, "")) for t in TRAJECTORY_KEYS)
            groups.setdefault(key, []).append((int(a.info["md_step"]), k))
        return {key: [k for _, k in sorted(members)] for key, members in groups.items()}

    def augmented_mix(self, fraction: float, n: int, seed: int = 0) -> Dataset:
        """``n`` structures of which round(``fraction`` n) are augmented (``info
        ["augmentation"]`` other than ``"none"``) and the rest MD snapshots, each part
        drawn with ``seed`` (thesis fig. 4.10: 25 %, 50 %, 100 % of the data scaled).
        Structures with the same geometry (numbers, positions and cell: an MD snapshot
        bundled in both set A and set B) count once.  Raises :class:`HdnnpError` when a
        part has too few structures."""
        if not 0.0 <= fraction <= 1.0:
            raise HdnnpError(f"augmented fraction must be in [0, 1], got {fraction}")
        seen, pools = set(), {True: [], False: []}
        for k, a in enumerate(self.structures):
            geometry = (a.numbers.tobytes(), a.positions.tobytes(), a.cell.array.tobytes())
            if geometry in seen:
                continue
            seen.add(geometry)
            pools[str(a.info.get("augmentation", "none")) != "none"].append(k)
        n_aug = round(fraction * n)
        rng = np.random.default_rng(seed)
        chosen = []
        for augmented, count in ((True, n_aug), (False, n - n_aug)):
            pool = pools[augmented]
            if count > len(pool):
                raise HdnnpError(f"augmented fraction {fraction:g} of {n} structures needs "
                                 f"{count} {'augmented' if augmented else 'MD'} structures; "
                                 f"the data have {len(pool)}")
            chosen += list(rng.choice(pool, size=count, replace=False)) if count else []
        return self.subset(sorted(int(k) for k in chosen))

    def filter_energy(self, max_energy_per_atom: float,
                      relative_to_minimum: bool = False) -> Dataset:
        """Keep structures with cohesive energy per atom ≤ the bound (ænet's MAXENERGY)."""
        e = self.cohesive_energies()
        bound = max_energy_per_atom + (np.nanmin(e) if relative_to_minimum else 0.0)
        return self.subset(np.flatnonzero(e <= bound))

    def __add__(self, other: Dataset) -> Dataset:
        ref = dict(self.reference_energies)
        for k, v in other.reference_energies.items():
            if k in ref and abs(ref[k] - v) > 1e-9:
                raise HdnnpError(f"cannot merge data sets with different reference energies "
                                 f"for {k}: {ref[k]} and {v}")
            ref[k] = v
        return Dataset(self.structures + other.structures, ref, require_energy=False,
                       validate=False)

    # ---------------------------------------------------------------- summary
    def summary_by(self, key: str) -> dict[str, dict]:
        """Statistics per value of ``info[key]`` (thesis tables 3.1–3.2: per temperature,
        per augmentation ...): structures, cohesive (else total) energy per atom min / max
        / mean / std (eV/atom) and force components RMS / max (eV/Å); structures without
        the key are grouped under ``"—"``.  Groups in sorted order (numbers as numbers)."""
        groups: dict[object, list[int]] = {}
        for k, a in enumerate(self.structures):
            v = a.info.get(key, "—")
            v = v.item() if isinstance(v, np.generic) else v
            groups.setdefault(v, []).append(k)
        e = self.cohesive_energies()

        def order(v):
            return (0, float(v), "") if isinstance(v, int | float) else (1, 0.0, str(v))

        out = {}
        for v in sorted(groups, key=order):
            idx = groups[v]
            ev = e[idx]
            f = [self.forces(k) for k in idx]
            f = np.concatenate([x for x in f if x is not None]) if any(
                x is not None for x in f) else np.zeros((0, 3))
            out[str(v)] = {
                "structures": len(idx),
                "energy_per_atom": {"min": float(ev.min()), "max": float(ev.max()),
                                    "mean": float(ev.mean()), "std": float(ev.std())},
                "force_rms_eV_per_A": float(np.sqrt((f ** 2).mean())) if f.size else None,
                "force_max_eV_per_A": float(np.abs(f).max()) if f.size else None,
            }
        return out

    def summary(self) -> dict:
        """Counts and energy statistics (eV) of the data set."""
        e = self.cohesive_energies()
        n = self.n_atoms
        comp = Counter(s for a in self.structures for s in a.get_chemical_symbols())
        return {
            "structures": len(self),
            "atoms": int(n.sum()),
            "atoms_per_structure": [int(n.min()), int(n.max())] if len(self) else [0, 0],
            "elements": {e_: int(c) for e_, c in sorted(comp.items())},
            "with_forces": int(self.has_forces.sum()),
            "reference_energies": dict(self.reference_energies),
            "energy_per_atom": {
                "min": float(np.min(e)) if len(self) else None,
                "max": float(np.max(e)) if len(self) else None,
                "mean": float(np.mean(e)) if len(self) else None,
                "std": float(np.std(e)) if len(self) else None,
                "kind": "cohesive" if self.reference_energies else "total",
            },
        }


def _info_equals(value, wanted: str) -> bool:
    """Equality of an ``info`` value and the text of a condition: booleans
    case-insensitively, numbers within a relative 1e-9, anything else as text."""
    import numpy as np

    if isinstance(value, bool | np.bool_):
        return str(bool(value)).lower() == wanted.lower()
    if isinstance(value, int | float | np.integer | np.floating):
        try:
            x, w = float(value), float(wanted)
        except ValueError:
            return False
        if not (np.isfinite(x) and np.isfinite(w)):
            return x == w
        return abs(x - w) <= 1e-9 * max(1.0, abs(x))
    return str(value) == wanted


#: Operators of a structure condition (``hdnnp data select --where``, ``hdnnp compare
#: --subset``), two-character ones first (so ``>=`` is not read as ``>``).
WHERE_OPERATORS = ("==", "!=", ">=", "<=", ">", "<", "=")


def parse_where(condition: str) -> tuple[str, str, str]:
    """``"max_force_dev>0.1"`` → ``("max_force_dev", ">", "0.1")``.

    The operator is the first of :data:`WHERE_OPERATORS` found from the left (``a>=1``
    is ``>=``); ``==`` is ``=``.  Raises :class:`HdnnpError` for a condition without an
    operator or key, or an ordering comparison with a value that is not a number.
    """
    import math

    best = None
    for op in WHERE_OPERATORS:
        k = condition.find(op)
        if k >= 0 and (best is None or k < best[0] or (k == best[0] and len(op) >
                                                          len(best[1]))):
            best = (k, op)
    if best is None:
        raise HdnnpError(f"a condition expects KEY=VALUE or KEY<OP>VALUE with OP one of "
                         f"=, !=, <, <=, >, >=; got {condition!r}")
    k, op = best
    key, value = condition[:k].strip(), condition[k + len(op):].strip()
    if not key:
        raise HdnnpError(f"condition {condition!r}: no key before {op!r}")
    op = "=" if op == "==" else op
    if op in ("<", "<=", ">", ">="):
        try:
            number = float(value)
        except ValueError:
            number = math.nan
        if not math.isfinite(number):
            raise HdnnpError(f"condition {condition!r}: {op} needs a finite number, got "
                             f"{value!r}")
    return key, op, value


def where_matches(info: dict, key: str, op: str, value: str) -> bool:
    """Whether ``info[key] <op> value`` holds (False when ``key`` is missing, and for an
    ordering comparison when ``info[key]`` is not a number or NaN)."""
    import math

    import numpy as np

    if key not in info:
        return False
    x = info[key]
    if op == "=":
        return _info_equals(x, value)
    if op == "!=":
        return not _info_equals(x, value)
    if isinstance(x, bool | np.bool_):
        return False
    try:
        x = float(x)
    except (TypeError, ValueError):
        return False
    if math.isnan(x):  # inf compares (an unscorable snapshot has max_force_dev = inf)
        return False
    v = float(value)
    return {"<": x < v, "<=": x <= v, ">": x > v, ">=": x >= v}[op]
