"""``hdnnp report`` and ``hdnnp scan``: outputs, --help, one-line errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.singlepoint import SinglePointCalculator

from hdnnp.cli import main


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("hdnnp: error:"), err
    assert "\n" not in err and "Traceback" not in err
    return err


@pytest.mark.parametrize("command", ["report", "scan"])
def test_help_has_examples(command, capsys):
    with pytest.raises(SystemExit) as exc:
        main([command, "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "examples:" in out and f"hdnnp {command} " in out


def test_report_missing_run_dir(tmp_path, capsys):
    assert main(["report", str(tmp_path / "missing")]) == 2
    assert "no such training-run directory" in one_line_error(capsys)


def test_report_run_dir_without_predictions(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 2
    assert "predictions.npz" in one_line_error(capsys)


def test_report_prints_table_and_json(tmp_path, capsys):
    from test_analysis_report import make_run

    run = make_run(tmp_path)
    assert main(["report", str(run)]) == 0
    out = capsys.readouterr().out
    assert "energy MAE (meV/atom)" in out and "metrics.json" in out
    assert (run / "report" / "energy_parity.png").is_file()
    assert main(["report", str(run), "--json", "-o", str(tmp_path / "r2")]) == 0
    m = json.loads(capsys.readouterr().out)
    assert m["train_energy_mae_meV_per_atom"] == pytest.approx(2.0, abs=1e-9)
    assert (tmp_path / "r2" / "metrics.json").is_file()


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    import torch

    from hdnnp.descriptors import Chebyshev
    from hdnnp.model import NeuralNetworkPotential
    from hdnnp.potential import save_potential

    torch.manual_seed(0)
    model = NeuralNetworkPotential(Chebyshev(["Cu"], 4.0, 3, 3.0, 1), hidden=(3,),
                                   reference_energies={"Cu": -2.0})
    return save_potential(model, tmp_path_factory.mktemp("model") / "model.json")


@pytest.fixture(scope="module")
def structure_file(tmp_path_factory):
    from hdnnp.io import write_structures

    frames = []
    for a, e in ((3.6, -7.0), (3.7, -6.0)):
        atoms = bulk("Cu", "fcc", a=a)
        atoms.calc = SinglePointCalculator(atoms, energy=e, forces=np.zeros((1, 3)))
        frames.append(atoms)
    path = tmp_path_factory.mktemp("structures") / "cu.xyz"
    write_structures(path, frames, format="extxyz")
    return path


def test_scan_writes_figure_and_json(tmp_path, model_file, structure_file, capsys):
    fig, js = tmp_path / "scan.png", tmp_path / "scan.json"
    code = main(["scan", str(model_file), str(structure_file), "--factors", "-0.1:0.1:5",
                 "--data", str(structure_file), "-o", str(fig), "--json", str(js)])
    assert code == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert "minimum (HDNNP)" in out
    assert fig.read_bytes()[:4] == b"\x89PNG"
    doc = json.loads(js.read_text())
    assert doc["factors"] == pytest.approx([-0.1, -0.05, 0.0, 0.05, 0.1])
    assert len(doc["energy_per_atom"]) == 5 and doc["energy_kind"] == "cohesive"
    # training lines from --data with the model's E_ref(Cu) = -2 eV: -5 and -4 eV/atom
    assert doc["training_max"] == pytest.approx(-4.0)
    assert doc["training_mean"] == pytest.approx(-4.5)
    assert doc["reference_energy_per_atom"] is None


def test_scan_with_ase_reference(tmp_path, model_file, structure_file, capsys):
    pytest.importorskip("hdnnp.reference_data.calculators")
    js = tmp_path / "scan.json"
    code = main(["scan", str(model_file), str(structure_file), "--factors=-0.02,0,0.02",
                 "--reference", "emt", "-o", "none", "--json", str(js)])
    assert code == 0, capsys.readouterr().err
    doc = json.loads(js.read_text())
    assert all(v is not None for v in doc["reference_energy_per_atom"])
    assert not (tmp_path / "scan.png").exists()


@pytest.mark.parametrize("args, message", [
    (["--factors", "1:2"], "bad scaling factors"),
    (["--index", "5"], "no structure 5"),
    (["--reference", "no-such-method"], "no-such-method"),
])
def test_scan_errors(args, message, tmp_path, model_file, structure_file, capsys):
    if "--reference" in args:
        pytest.importorskip("hdnnp.reference_data.calculators")
    code = main(["scan", str(model_file), str(structure_file), "-o",
                 str(tmp_path / "s.png"), *args])
    assert code == 2
    assert message in one_line_error(capsys)
    assert not (tmp_path / "s.png").exists()


def test_scan_missing_files(tmp_path, model_file, structure_file, capsys):
    assert main(["scan", str(tmp_path / "nope.json"), str(structure_file)]) == 2
    one_line_error(capsys)
    assert main(["scan", str(model_file), str(tmp_path / "nope.xyz")]) == 2
    assert "nope.xyz" in one_line_error(capsys)


def test_scan_several_models_dimer_axis_and_slope_panel(tmp_path, capsys):
    """Two labelled models on one figure; a dimer's axis is its bond length; the JSON
    holds each model's curve, which for the same model file are equal."""
    import torch
    from ase import Atoms

    from hdnnp.descriptors import Chebyshev
    from hdnnp.model import NeuralNetworkPotential
    from hdnnp.potential import save_potential

    torch.manual_seed(1)
    model = NeuralNetworkPotential(Chebyshev(["H"], 4.0, 3, 3.0, 1), hidden=(3,),
                                   reference_energies={"H": -12.0})
    path = save_potential(model, tmp_path / "h.json")
    dimer = tmp_path / "h2.xyz"
    from ase.io import write

    write(dimer, Atoms("H2", positions=[[0, 0, 0], [0, 0, 0.8]]))
    js, fig = tmp_path / "scan.json", tmp_path / "scan.png"
    assert main(["scan", f"A={path}", f"B={path}", str(dimer), "--factors=-0.1,0,0.5",
                 "--json", str(js), "-o", str(fig)]) == 0
    doc = json.loads(js.read_text())
    assert doc["bond_length_A"] == pytest.approx([0.72, 0.8, 1.2])
    assert set(doc["models"]) == {"A", "B"}
    assert doc["models"]["A"]["energy_per_atom"] == doc["models"]["B"]["energy_per_atom"]
    from matplotlib.image import imread

    h, w = imread(fig).shape[:2]
    assert w > 1.8 * h  # the slope panel beside the energy panel
    out = capsys.readouterr().out
    assert "d (Å)" in out and "minimum (A)" in out and "minimum (B)" in out


def test_scan_reference_takes_the_settings_of_the_labels(tmp_path, capsys, model_file):
    """--data bundled:graphene-A (labelled at 3000 K electronic temperature) makes the
    GFN1-xTB reference use 3000 K; --reference data needs such a source."""
    from hdnnp.cli.cmd_scan import _reference_calculator
    from hdnnp.data import labelling_settings

    recorded = labelling_settings("bundled:graphene-A")
    assert recorded["electronic_temperature"] == 3000.0
    assert labelling_settings("graphene-A") == recorded
    assert labelling_settings(str(tmp_path)) is None
    calc, label, _ = _reference_calculator("data", ["C"], False, recorded, None)
    assert label == "GFN1-xTB" and calc.parameters["electronic_temperature"] == 3000.0
    assert "3000 K" in capsys.readouterr().out
    calc, _, _ = _reference_calculator("gfn1", ["C"], False, recorded, 500.0)
    assert calc.parameters["electronic_temperature"] == 500.0
    calc, _, _ = _reference_calculator("gfn1", ["C"], False, None, None)
    assert calc.parameters["electronic_temperature"] == 300.0
    with pytest.raises(Exception, match="--reference data needs --data"):
        _reference_calculator("data", ["C"], False, None, None)
