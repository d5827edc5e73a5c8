"""The H2-dimer toy model of thesis §4.1.2: how many neurons does a pair curve need?

Data (made by :func:`prepare_h2_data`, GFN1-xTB through tblite, as the bundled sets):

* the **training pool**: 100 H2 molecules with bond lengths uniform in
  [``H2_RANGE``] = [0.6, 3.0] Å (the thesis: 85 train + 15 test; here 85 train + 15
  validation, which chooses the best epoch);
* the **curve**: 500 bond lengths evenly spaced over [0.45, 5.5] Å, the part inside the
  training range being the test set and the whole of it the figure.

Descriptor: one radial G2, :math:`G = e^{-\\eta r^2} f_c(r)` with η = 0.3 Å⁻², r_s = 0,
cosine cutoff r_c = 6.5 Å (thesis eq. for G² with the cutoff 6.5 Å it uses).  Networks:
one hidden tanh layer of N = 1, 2, 3, 4, 8 neurons (thesis fig. 4.7), L-BFGS on energies
and forces.  The figure (:func:`h2_curve_figure`) draws the reference curve and every
network's prediction over the whole curve, the training range shaded; ``h2-curves.json``
gives each network's energy RMSE inside and outside the training range.  The thesis's
finding to reproduce: a few tanh neurons follow the curve where there were training
data and depart from it outside.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from ase import Atoms

from hdnnp.errors import HdnnpError
from hdnnp.fileio import atomic_write_text
from hdnnp.studies.spec import StudySpec

__all__ = ["H2_RANGE", "h2_curve_figure", "h2_toy_spec", "prepare_h2_data"]

H2_RANGE = (0.6, 3.0)
CURVE_RANGE = (0.45, 5.5)
ETA = 0.3
CUTOFF = 6.5
POOL_FILE = "h2-train.extxyz"
TEST_FILE = "h2-test.extxyz"
CURVE_FILE = "h2-curve.extxyz"


def _dimer(d: float) -> Atoms:
    return Atoms("H2", positions=[[0.0, 0.0, 0.0], [0.0, 0.0, float(d)]])


def _label(distances, settings) -> list[Atoms]:
    from ase.calculators.singlepoint import SinglePointCalculator

    from hdnnp.reference_data.calculators import single_point

    out = []
    for d in distances:
        atoms = _dimer(d)
        res = single_point(atoms, settings)
        atoms.calc = SinglePointCalculator(atoms, energy=res["energy"], forces=res["forces"])
        atoms.info["bond_length_A"] = float(d)
        out.append(atoms)
    return out


def prepare_h2_data(directory: str | Path, seed: int = 1) -> dict[str, Path]:
    """Write the training pool, the test points and the curve into ``directory`` (once;
    files already there are kept, so a resumed study trains on the same data)."""
    from ase.io import write

    from hdnnp.reference_data.calculators import ReferenceSettings

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = {"train": directory / POOL_FILE, "test": directory / TEST_FILE,
             "curve": directory / CURVE_FILE}
    if all(p.is_file() for p in paths.values()):
        return paths
    settings = ReferenceSettings()  # GFN1-xTB, 300 K electronic temperature
    rng = np.random.default_rng(seed)
    pool = _label(np.sort(rng.uniform(*H2_RANGE, 100)), settings)
    curve = _label(np.linspace(*CURVE_RANGE, 500), settings)
    inside = [a for a in curve if H2_RANGE[0] <= a.info["bond_length_A"] <= H2_RANGE[1]]
    for key, images in (("train", pool), ("test", inside), ("curve", curve)):
        tmp = paths[key].with_suffix(".tmp.extxyz")
        write(tmp, images, format="extxyz")
        tmp.replace(paths[key])
    return paths


def h2_toy_spec(epochs: int | None = None, seeds=None, data_dir: str | Path = ".") -> StudySpec:
    """The study: one G2 → N tanh neurons → energy, N = 1, 2, 3, 4, 8."""
    data_dir = Path(data_dir).resolve()
    base = {
        "data": {"train": [str(data_dir / POOL_FILE)], "test": [str(data_dir / TEST_FILE)],
                 "validation_fraction": 0.15, "test_fraction": 0.0, "seed": 1},
        "descriptor": {"kind": "behler", "elements": ["H"], "functions": [
            {"type": "G2", "center": "H", "neighbours": ["H"], "eta": ETA, "rs": 0.0,
             "rc": CUTOFF}]},
        "network": {"hidden": [1], "activation": "tanh"},
        "training": {"optimizer": "lbfgs", "epochs": epochs or 300, "force_weight": 0.1},
        "figures": False,
    }
    return StudySpec(name="H2 dimer toy model (thesis §4.1.2)", base=base,
                     vary={"hidden": [[1], [2], [3], [4], [8]]}, seeds=seeds or 1,
                     labels={"hidden": "tanh neurons (one hidden layer)"},
                     names={"hidden": ["1", "2", "3", "4", "8"]}, target=None)


def h2_curve_figure(runner, data_dir: str | Path) -> tuple[Path, Path] | None:
    """Energy against bond length of the reference and of every finished network
    (``h2-curve.png``) and the errors inside / outside the training range
    (``h2-curves.json``); None when no run has finished."""
    from ase.io import read

    from hdnnp.analysis.plots import COLORS, new_figure, save_figure
    from hdnnp.calculator import Calculator

    curve_path = Path(data_dir) / CURVE_FILE
    if not curve_path.is_file():
        raise HdnnpError(f"{curve_path}: the H2 curve is missing (run the study first)")
    curve = read(curve_path, index=":", format="extxyz")
    d = np.array([a.info["bond_length_A"] for a in curve])
    ref = np.array([a.get_potential_energy() for a in curve])
    inside = (d >= H2_RANGE[0]) & (d <= H2_RANGE[1])
    fig, axes = new_figure(figsize=(5.2, 3.8))
    ax = axes[0, 0]
    ax.axvspan(*H2_RANGE, color="0.92", label="training range")
    ax.plot(d, ref, color="black", linewidth=2.0, label="GFN1-xTB")
    result = {}
    k = 0
    for r in runner.runs:
        model = runner.run_dir(r) / "model.json"
        if not (runner.run_dir(r) / "metrics.json").is_file() or not model.is_file():
            continue
        calc = Calculator(str(model), extrapolation="ignore")
        pred = []
        for a in curve:
            b = a.copy()
            b.calc = calc
            pred.append(b.get_potential_energy())
        pred = np.array(pred)
        err = (pred - ref) * 1000.0 / 2.0  # meV/atom
        result[r.setting + (f" seed {r.seed}" if len(runner.spec.seeds) > 1 else "")] = {
            "inside_rmse_meV_per_atom": float(np.sqrt(np.mean(err[inside] ** 2))),
            "outside_rmse_meV_per_atom": float(np.sqrt(np.mean(err[~inside] ** 2))),
            "outside_max_abs_meV_per_atom": float(np.max(np.abs(err[~inside]))),
        }
        ax.plot(d, pred, color=COLORS[k % len(COLORS)], linewidth=1.2,
                linestyle=("-", "--", "-.", ":")[k % 4], label=r.setting)
        k += 1
    if not result:
        return None
    ax.set_ylim(ref.min() - 0.15 * np.ptp(ref), ref.max() + 0.25 * np.ptp(ref))
    ax.set_xlabel("H–H distance (Å)")
    ax.set_ylabel("energy (eV)")
    ax.legend(loc="upper right", fontsize=7)
    ax.set_title("H2 dimer: networks vs reference")
    png = save_figure(fig, runner.directory / "h2-curve.png")
    js = runner.directory / "h2-curves.json"
    atomic_write_text(js, json.dumps(result, indent=1))
    return png, js
