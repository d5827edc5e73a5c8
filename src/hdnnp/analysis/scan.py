r"""Energy against scaling factor: how far a potential extrapolates (thesis §5.1.1).

A relaxed structure is compressed or expanded homogeneously: its cell vectors and
Cartesian coordinates are multiplied by :math:`1 + f` for scaling factors
:math:`f \in [-0.10, 0.10]` (thesis fig. 5.2, where the structures were relaxed first),
so every interatomic distance scales by :math:`1 + f`.  For each scaled structure the
model's cohesive energy per atom

.. math:: E_\mathrm{coh}/N = \Big(E - \sum_Z N_Z E_Z^\mathrm{ref}\Big) / N
          \qquad \text{(eV/atom, thesis eq. 4.3)}

is computed, and the reference method's ("true") value when a reference calculator is
given.  Plotted against :math:`f` with the maximum and mean cohesive energy per atom
of the training set (:func:`hdnnp.analysis.plots.plot_scaling_scan`), the curve shows
where the potential interpolates and where it extrapolates.
"""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from ase import Atoms
from numpy.typing import ArrayLike

from hdnnp.errors import HdnnpError

__all__ = ["ScanResult", "energy_per_atom_stats", "parse_factors", "scale_structure",
           "scaling_scan"]


def parse_factors(spec: str) -> np.ndarray:
    """Scaling factors from ``"start:stop:num"`` (inclusive, evenly spaced) or a list.

    >>> parse_factors("-0.1:0.1:5")
    array([-0.1 , -0.05,  0.  ,  0.05,  0.1 ])
    >>> parse_factors("-0.05, 0, 0.05")
    array([-0.05,  0.  ,  0.05])
    """
    text = spec.strip()
    try:
        if ":" in text:
            parts = text.split(":")
            if len(parts) != 3:
                raise ValueError
            start, stop, num = float(parts[0]), float(parts[1]), int(parts[2])
            if num < 1:
                raise ValueError
            factors = np.linspace(start, stop, num)
        else:
            factors = np.array([float(x) for x in text.replace(",", " ").split()])
    except ValueError:
        raise HdnnpError(f"bad scaling factors {spec!r}: use START:STOP:NUM "
                         "(e.g. -0.1:0.1:21) or a list (e.g. -0.1,0,0.1)") from None
    if factors.size == 0:
        raise HdnnpError("no scaling factors given")
    if (factors <= -1.0).any() or not np.isfinite(factors).all():
        raise HdnnpError("scaling factors must be finite and greater than -1")
    return factors


def scale_structure(atoms: Atoms, factor: float) -> Atoms:
    """A copy of ``atoms`` with cell and coordinates multiplied by ``1 + factor``."""
    if not factor > -1.0:
        raise HdnnpError(f"scaling factor must be greater than -1, got {factor}")
    scaled = atoms.copy()
    scaled.calc = None
    s = 1.0 + float(factor)
    scaled.set_cell(atoms.cell.array * s, scale_atoms=False)
    scaled.positions = atoms.positions * s
    return scaled


def _atom_reference_sum(atoms: Atoms, reference_energies: Mapping[str, float]) -> float:
    counts = Counter(atoms.get_chemical_symbols())
    missing = sorted(set(counts) - set(reference_energies))
    if reference_energies and missing:
        raise HdnnpError(f"no isolated-atom reference energy for {', '.join(missing)}")
    return float(sum(n * float(reference_energies.get(e, 0.0)) for e, n in counts.items()))


@dataclass
class ScanResult:
    """Result of :func:`scaling_scan` (energies in eV/atom)."""

    factors: np.ndarray
    energy_per_atom: np.ndarray
    reference_energy_per_atom: np.ndarray | None
    n_atoms: int
    formula: str
    reference_energies: dict[str, float] = field(default_factory=dict)
    #: Descriptor values outside the training range per factor (hdnnp calculators only).
    extrapolation: np.ndarray | None = None

    @property
    def energy_kind(self) -> str:
        """``"cohesive"`` with isolated-atom energies, else ``"total"`` (per atom)."""
        return "cohesive" if self.reference_energies else "total"

    def minimum(self, which: str = "model") -> float:
        """Factor of the lowest energy (``"model"`` or ``"reference"``), NaN-safe."""
        e = self.energy_per_atom if which == "model" else self.reference_energy_per_atom
        if e is None or not np.isfinite(e).any():
            raise HdnnpError(f"no {which} energies in this scan")
        return float(self.factors[int(np.nanargmin(e))])

    def plot(self, path, training_max=None, training_mean=None, model_label: str = "HDNNP",
             reference_label: str = "reference", title: str | None = None):
        """Write the scan figure (:func:`hdnnp.analysis.plots.plot_scaling_scan`)."""
        from hdnnp.analysis.plots import plot_scaling_scan

        kind = "cohesive energy" if self.reference_energies else "total energy"
        return plot_scaling_scan(self.factors, self.energy_per_atom, path,
                                 reference_energy_per_atom=self.reference_energy_per_atom,
                                 training_max=training_max, training_mean=training_mean,
                                 model_label=model_label, reference_label=reference_label,
                                 ylabel=f"{kind} per atom (eV/atom)",
                                 title=title if title is not None else self.formula)

    def to_dict(self) -> dict:
        """JSON-friendly dict (NaN → None)."""
        def lst(a):
            return None if a is None else [float(x) if np.isfinite(x) else None for x in a]

        return {"formula": self.formula, "n_atoms": self.n_atoms,
                "energy_kind": self.energy_kind, "units": "eV/atom",
                "reference_energies_eV": dict(self.reference_energies),
                "factors": lst(self.factors), "energy_per_atom": lst(self.energy_per_atom),
                "reference_energy_per_atom": lst(self.reference_energy_per_atom),
                "extrapolation_warnings": (None if self.extrapolation is None
                                           else [int(x) for x in self.extrapolation])}


def _default_reference_energies(calculator) -> dict[str, float]:
    model = getattr(calculator, "model", None)
    get = getattr(model, "reference_energy_dict", None)
    return dict(get()) if callable(get) else {}


def scaling_scan(calculator, atoms: Atoms, factors: ArrayLike | Sequence[float],
                 reference_calculator=None,
                 reference_energies: Mapping[str, float] | None = None,
                 progress: bool = False,
                 reference_method_atom_energies: Mapping[str, float] | None = None
                 ) -> ScanResult:
    """Cohesive energy per atom of ``atoms`` scaled by ``1 + f`` for each factor ``f``.

    Parameters
    ----------
    calculator:
        ASE calculator of the model, typically :class:`hdnnp.Calculator`.
    atoms:
        The (relaxed) structure; it is not modified.
    factors:
        Scaling factors (thesis: :math:`f \\in [-0.10, 0.10]`), each > −1.
    reference_calculator:
        Optional ASE calculator of the reference method (e.g. GFN1-xTB from
        :mod:`hdnnp.reference_data.calculators`).  A structure on which it fails (e.g.
        no SCF convergence) gets NaN and a warning.
    reference_energies:
        Isolated-atom energies :math:`E_Z^\\mathrm{ref}` (eV per element) subtracted
        from the total energies of both the model and the reference method.  Default:
        the model's own (``calculator.model.reference_energy_dict()`` for an hdnnp
        calculator: the energies of the training data), else none (energies are then
        total energies per atom, ``ScanResult.energy_kind == "total"``).
    progress:
        Show a progress bar (tqdm).
    reference_method_atom_energies:
        Isolated-atom energies of the reference method, if they differ from
        ``reference_energies`` (a model trained on another method's data); default:
        ``reference_energies``, right for a model trained on the reference method's data.

    Returns a :class:`ScanResult` with ``factors``, ``energy_per_atom`` and
    ``reference_energy_per_atom`` (None without a reference calculator), in eV/atom,
    and for hdnnp calculators ``extrapolation``: the number of descriptor values
    outside the training range at each factor (where the potential extrapolates).
    """
    f = np.asarray(factors, dtype=np.float64).ravel()
    if f.size == 0:
        raise HdnnpError("no scaling factors given")
    if len(atoms) == 0:
        raise HdnnpError("cannot scan an empty structure")
    ref_e = (dict(reference_energies) if reference_energies is not None
             else _default_reference_energies(calculator))
    n = len(atoms)
    shift = _atom_reference_sum(atoms, ref_e)
    ref_shift = (shift if reference_method_atom_energies is None
                 else _atom_reference_sum(atoms, reference_method_atom_energies))
    model = np.full(f.size, np.nan)
    extrapolation = np.zeros(f.size, dtype=np.int64)
    has_extrapolation = False
    reference = np.full(f.size, np.nan) if reference_calculator is not None else None
    iterator = range(f.size)
    if progress:
        from tqdm import tqdm

        iterator = tqdm(iterator, desc="scaling scan", unit="structure")
    for k in iterator:
        scaled = scale_structure(atoms, float(f[k]))
        scaled.calc = calculator
        model[k] = (scaled.get_potential_energy() - shift) / n
        count = getattr(calculator, "results", {}).get("extrapolation_warnings")
        if count is not None:
            extrapolation[k] = int(count)
            has_extrapolation = True
        if reference_calculator is not None:
            scaled.calc = reference_calculator
            try:
                reference[k] = (scaled.get_potential_energy() - ref_shift) / n
            except HdnnpError:
                raise
            except Exception as exc:  # reference codes fail in many ways (SCF, overlap)
                warnings.warn(f"reference calculation failed at scaling factor {f[k]:g} "
                              f"({exc.__class__.__name__}: {exc}); recorded as NaN",
                              stacklevel=2)
        scaled.calc = None
    return ScanResult(f, model, reference, n, atoms.get_chemical_formula(), ref_e,
                      extrapolation if has_extrapolation else None)


def energy_per_atom_stats(structures: Sequence[Atoms],
                          reference_energies: Mapping[str, float] | None = None
                          ) -> dict[str, float]:
    r"""Maximum, mean and minimum of :math:`E_\mathrm{coh}/N` (eV/atom) of labelled structures.

    The horizontal lines of thesis fig. 5.2 are the maximum and mean cohesive energy per
    atom of the training set; use the same isolated-atom energies as for the scan.
    """
    from hdnnp.data import Dataset

    if not len(structures):
        raise HdnnpError("no structures to compute energy statistics from")
    e = Dataset(structures, reference_energies).cohesive_energies()
    e = e[np.isfinite(e)]
    return {"max": float(e.max()), "mean": float(e.mean()), "min": float(e.min()),
            "n": int(e.size)}
