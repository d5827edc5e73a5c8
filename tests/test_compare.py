"""``hdnnp compare``: several models on subsets, metrics against a direct computation."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.calculators.singlepoint import SinglePointCalculator

from hdnnp.analysis.compare import compare_models, parse_subset, subset_indices
from hdnnp.cli import main
from hdnnp.data import Dataset
from hdnnp.descriptors import Chebyshev
from hdnnp.errors import HdnnpError
from hdnnp.model import NeuralNetworkPotential
from hdnnp.potential import save_potential
from hdnnp.predict import predict_structures


def _data() -> Dataset:
    frames = []
    for k, (a, kind) in enumerate([(3.55, "md"), (3.6, "md"), (3.65, "md"), (3.9, "scale"),
                                   (3.3, "scale")]):
        atoms = bulk("Cu", "fcc", a=a, cubic=True)
        atoms.rattle(0.03, seed=k)
        atoms.calc = EMT()
        e, f = atoms.get_potential_energy(), atoms.get_forces()
        atoms.calc = SinglePointCalculator(atoms, energy=e, forces=f)
        atoms.info.update({"augmentation": kind, "temperature_K": 300.0 + 100 * k})
        frames.append(atoms)
    return Dataset(frames, {"Cu": 0.0})


def _models():
    out = {}
    for seed, label in ((0, "A"), (1, "B")):
        torch.manual_seed(seed)
        out[label] = NeuralNetworkPotential(Chebyshev(["Cu"], 4.0, 3, 3.0, 1), hidden=(3,),
                                            reference_energies={"Cu": 0.0})
    return out


def test_subsets_parse_and_match_numbers_as_numbers():
    assert parse_subset("augmentation=scale") == ("augmentation=scale", "augmentation",
                                                 "=", "scale")
    assert parse_subset("hot:temperature_K>=600") == ("hot", "temperature_K", ">=", "600")
    with pytest.raises(HdnnpError, match="KEY=VALUE"):
        parse_subset("scale")
    data = _data()
    assert subset_indices(data.structures, "temperature_K", "=", "700").tolist() == [4]
    assert subset_indices(data.structures, "temperature_K", ">=", "600").tolist() == [3, 4]
    assert subset_indices(data.structures, "augmentation", "=", "md").tolist() == [0, 1, 2]


def test_metrics_per_subset_equal_a_direct_computation(tmp_path):
    data, models = _data(), _models()
    metrics = compare_models(models, data, ["augmentation=md", "augmentation=scale"],
                             tmp_path)
    for label, model in models.items():
        pred = predict_structures(model, data.structures)
        for sub, idx in (("augmentation=md", [0, 1, 2]), ("augmentation=scale", [3, 4])):
            de = (pred["energy"][idx] - pred["energy_ref"][idx]) / pred["n_atoms"][idx]
            m = metrics[label][sub]
            assert m["energy_mae_meV_per_atom"] == pytest.approx(1000 * np.abs(de).mean())
            rows = np.concatenate([np.arange(4 * k, 4 * k + 4) for k in idx])
            df = pred["forces"][rows] - pred["forces_ref"][rows]
            assert m["force_rmse_eV_per_A"] == pytest.approx(np.sqrt((df ** 2).mean()))
            assert m["n_structures"] == len(idx)
    assert json.loads((tmp_path / "metrics.json").read_text()) == json.loads(
        json.dumps(metrics))
    html = (tmp_path / "report.html").read_text()
    assert html.count("data:image/png;base64,") >= 6  # 2×2 parity, 2 histograms, energies


def test_cli_prints_the_table_and_refuses_an_empty_subset(tmp_path, capsys):
    from hdnnp.io import write_structures

    data = _data()
    write_structures(tmp_path / "d.extxyz", data.structures, format="extxyz")
    paths = [f"{k}={save_potential(m, tmp_path / f'{k}.json')}" for k, m in _models().items()]
    assert main(["compare", *paths, "--data", str(tmp_path / "d.extxyz"), "--subset",
                 "augmentation=md", "-o", str(tmp_path / "c")]) == 0
    out = capsys.readouterr().out
    assert "A" in out and "augmentation=md" in out and "report:" in out
    assert main(["compare", *paths, "--data", str(tmp_path / "d.extxyz"), "--subset",
                 "augmentation=rattle", "-o", str(tmp_path / "c2")]) == 2
    err = capsys.readouterr().err
    assert "no structure has augmentation = rattle" in err and "\n" not in err.strip()


def test_predict_reports_pearson_r_and_writes_parity_plots(tmp_path, capsys):
    from hdnnp.analysis.metrics import pearson_r
    from hdnnp.io import write_structures

    data = _data()
    write_structures(tmp_path / "d.extxyz", data.structures, format="extxyz")
    model = _models()["A"]
    path = save_potential(model, tmp_path / "m.json")
    js = tmp_path / "p.json"
    assert main(["predict", str(path), str(tmp_path / "d.extxyz"), "--figures",
                 str(tmp_path / "figs"), "--json", str(js), "--quiet"]) == 0
    metrics = json.loads(js.read_text())["metrics"]
    pred = predict_structures(model, data.structures)
    per_atom = pred["energy"] / pred["n_atoms"]
    ref = pred["energy_ref"] / pred["n_atoms"]
    assert metrics["energy_pearson_r"] == pytest.approx(pearson_r(per_atom, ref))
    assert metrics["force_pearson_r"] == pytest.approx(
        pearson_r(pred["forces"].ravel(), pred["forces_ref"].ravel()))
    assert {p.name for p in (tmp_path / "figs").iterdir()} == {
        "energy_parity.png", "energy_error_hist.png", "force_parity.png",
        "force_error_hist.png"}
    assert "energy_pearson_r" in capsys.readouterr().out
