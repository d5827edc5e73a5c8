"""Committee potentials: mean and spread of the members, file round trip, calculator
results, and committee training (sequential and in parallel processes, resume)."""

from __future__ import annotations

import json

import ase.io
import numpy as np
import pytest
import torch

from hdnnp import Calculator
from hdnnp.cli import main
from hdnnp.descriptors import Chebyshev
from hdnnp.errors import HdnnpError
from hdnnp.model import NeuralNetworkPotential
from hdnnp.neighbours import build_batch
from hdnnp.potential import load_potential, save_potential
from hdnnp.training import train
from test_training import config, emt_file  # noqa: F401  (fixture)

from conftest import rutile, tio2_cluster
from test_model import make_model

DESCRIPTOR = dict(elements=["O", "Ti"], radial_rc=5.0, radial_order=6, angular_rc=4.0,
                  angular_order=3)


def members(n=3):
    return [make_model(Chebyshev(**DESCRIPTOR), seed=s) for s in range(n)]


def predict(model, atoms, **kw):
    out = model(build_batch([atoms], model.elements, model.cutoff), forces=True, **kw)
    return {k: v.detach() for k, v in out.items()}


@pytest.mark.parametrize("structure", [rutile, tio2_cluster])
def test_committee_is_the_members_mean_and_spread(structure):
    atoms = structure()
    ms = members()
    committee = NeuralNetworkPotential.committee(ms)
    assert committee.committee_size == 3
    single = [predict(m, atoms) for m in ms]
    e_k = np.array([float(o["energy"][0]) for o in single])
    f_k = np.stack([o["forces"].detach().numpy() for o in single])
    out = predict(committee, atoms, member_forces=True)
    assert float(out["energy"][0]) == pytest.approx(e_k.mean(), rel=1e-13)
    np.testing.assert_allclose(out["forces"].detach().numpy(), f_k.mean(0), atol=1e-12)
    np.testing.assert_allclose(out["energy_members"][:, 0].numpy(), e_k, rtol=1e-13)
    assert float(out["energy_std"][0]) == pytest.approx(np.std(e_k, ddof=1), rel=1e-9)
    np.testing.assert_allclose(out["forces_members"].detach().numpy(), f_k, atol=1e-12)
    ea = np.stack([o["energies"].detach().numpy() for o in single])
    np.testing.assert_allclose(out["energies_std"].numpy(), np.std(ea, axis=0, ddof=1),
                               atol=1e-12)
    # a member taken back out predicts exactly as before
    back = predict(committee.member(1), atoms)
    assert float(back["energy"][0]) == float(single[1]["energy"][0])


def test_committee_file_round_trip_and_versions(tmp_path):
    atoms = rutile()
    committee = NeuralNetworkPotential.committee(members(2))
    save_potential(committee, tmp_path / "c.json")
    save_potential(members(1)[0], tmp_path / "s.json")
    assert json.loads((tmp_path / "c.json").read_text())["version"] == 2
    assert json.loads((tmp_path / "s.json").read_text())["version"] == 1
    loaded = load_potential(tmp_path / "c.json")
    assert loaded.committee_size == 2
    a, b = predict(committee, atoms), predict(loaded, atoms)
    assert float(a["energy"][0]) == float(b["energy"][0])
    assert torch.equal(a["forces"], b["forces"])


def test_committee_needs_matching_members():
    other = make_model(Chebyshev(**{**DESCRIPTOR, "radial_order": 5}))
    with pytest.raises(HdnnpError, match="share one descriptor"):
        NeuralNetworkPotential.committee([members(1)[0], other])
    with pytest.raises(HdnnpError, match="member 3 does not exist"):
        NeuralNetworkPotential.committee(members(2)).member(2)


def test_calculator_reports_committee_spread_and_force_deviation():
    atoms = rutile()
    ms = members()
    atoms.calc = Calculator(NeuralNetworkPotential.committee(ms), committee_forces=True,
                            extrapolation="ignore")
    atoms.get_potential_energy()
    res = atoms.calc.results
    f_k = np.stack([predict(m, atoms)["forces"].detach().numpy() for m in ms])
    dev = np.sqrt(((f_k - f_k.mean(0)) ** 2).sum(-1).mean(0))
    np.testing.assert_allclose(res["forces_deviation"], dev, atol=1e-12)
    assert res["max_force_deviation"] == pytest.approx(dev.max())
    assert res["energy_std"] > 0 and res["energies_std"].shape == (len(atoms),)


def test_committee_cannot_be_one_n2p2_potential_but_a_member_can(tmp_path, capsys):
    from hdnnp.descriptors.n2p2 import N2P2SymmetryFunctions
    from test_n2p2_export import N2P2_FUNCTIONS, random_model
    from test_training import emt_structures

    d = N2P2SymmetryFunctions(["Al", "Cu"], N2P2_FUNCTIONS, cutoff_type=2)
    ms = [random_model(d, seed=s) for s in range(2)]
    save_potential(NeuralNetworkPotential.committee(ms), tmp_path / "c.json")
    rc = main(["export", str(tmp_path / "c.json"), str(tmp_path / "nnp")])
    err = capsys.readouterr().err
    assert rc == 2 and "committee of 2 members" in err and err.count("\n") == 1
    assert main(["export", str(tmp_path / "c.json"), str(tmp_path / "nnp"), "--member",
                 "2"]) == 0
    exported = load_potential(tmp_path / "nnp")
    atoms = emt_structures(1)[0]
    e = float(predict(exported, atoms)["energy"][0])
    assert e == pytest.approx(float(predict(ms[1], atoms)["energy"][0]), rel=1e-12)


@pytest.mark.parametrize("jobs", [1, 2])
def test_committee_training_and_resume(emt_file, tmp_path, jobs, capsys):  # noqa: F811
    run = tmp_path / "run"
    cfg = config(emt_file, run, epochs=3, committee=2, jobs=jobs)
    metrics = train(cfg, progress=False, log=None)
    model = load_potential(run / "model.json")
    assert model.committee_size == 2 and metrics["committee"] == 2
    seeds = [m["seed"] for m in metrics["members"]]
    assert seeds == [3, 4]
    for k in (1, 2):
        single = load_potential(run / f"member-{k}" / "model.json")
        assert single.committee_size == 1
        ref = json.loads((run / f"member-{k}" / "metrics.json").read_text())
        assert ref["test_energy_rmse_meV_per_atom"] == pytest.approx(
            metrics["members"][k - 1]["test_energy_rmse_meV_per_atom"])
    # members differ (different seeds) and the committee predicts their mean
    test = ase.io.read(run / "test.extxyz", ":")
    e = [float(predict(m, test[0])["energy"][0]) for m in
         (load_potential(run / "member-1" / "model.json"),
          load_potential(run / "member-2" / "model.json"), model)]
    assert e[0] != e[1] and e[2] == pytest.approx(0.5 * (e[0] + e[1]), rel=1e-12)
    # hdnnp predict on the committee reproduces the committee's test metrics
    out = tmp_path / "pred.json"
    assert main(["predict", str(run / "model.json"), str(run / "test.extxyz"), "--json",
                 str(out), "--quiet"]) == 0
    pm = json.loads(out.read_text())
    assert pm["metrics"]["energy_rmse_meV_per_atom"] == pytest.approx(
        metrics["test_energy_rmse_meV_per_atom"], rel=1e-9)
    assert len(pm["energy_std_eV"]) == len(test)
    assert "committee of 2" in capsys.readouterr().out
    # a second start refuses; --resume finds both members trained and rebuilds the same file
    with pytest.raises(HdnnpError, match="already holds a committee run"):
        train(config(emt_file, run, epochs=3, committee=2, jobs=jobs), progress=False,
                log=None)
    again = train(config(emt_file, run, committee=2), resume=True, progress=False,
                    log=None)
    assert again["test_energy_rmse_meV_per_atom"] == metrics["test_energy_rmse_meV_per_atom"]
    if jobs == 1:  # --epochs extends every member, and the committee is made again
        longer = train({"output": str(run)}, resume=True, progress=False, log=None, epochs=5)
        for k in (1, 2):
            epochs = [json.loads(line)["epoch"] for line in
                      (run / f"member-{k}" / "log.jsonl").read_text().splitlines()]
            assert epochs == [1, 2, 3, 4, 5]
        assert longer["epochs_run"] == 5 and longer["committee"] == 2


def test_committee_resumes_an_unfinished_member(emt_file, tmp_path):  # noqa: F811
    run = tmp_path / "run"
    train(config(emt_file, run, epochs=3, committee=2), progress=False, log=None)
    # member 2 as if killed before its final evaluation: checkpoint kept, no metrics
    full = json.loads((run / "member-2" / "metrics.json").read_text())
    (run / "member-2" / "metrics.json").unlink()
    ref = train(config(emt_file, tmp_path / "ref", epochs=3, seed=4), progress=False,
                  log=None)
    assert ref["test_energy_rmse_meV_per_atom"] == pytest.approx(
        full["test_energy_rmse_meV_per_atom"], rel=1e-12)
    lines = []
    train(config(emt_file, run, committee=2), resume=True, progress=False,
            log=lambda *a: lines.append(" ".join(map(str, a))))
    assert any("1 member(s) already trained, training 1" in s for s in lines)
    again = json.loads((run / "member-2" / "metrics.json").read_text())
    assert again["test_energy_rmse_meV_per_atom"] == pytest.approx(
        full["test_energy_rmse_meV_per_atom"], rel=1e-12)


def test_cli_trains_and_describes_a_committee(emt_file, tmp_path, capsys):  # noqa: F811
    run = tmp_path / "cli"
    assert main(["train", str(emt_file), "--descriptor", "chebyshev", "--radial", "4.5", "4",
                 "--angular", "3.5", "2", "--hidden", "5", "--epochs", "2", "--committee",
                 "2", "--jobs", "1", "-o", str(run), "--quiet"]) == 0
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["training"]["committee"] == 2
    assert json.loads((run / "member-2" / "config.json").read_text())["training"]["seed"] == 2
    capsys.readouterr()
    assert main(["info", str(run / "model.json")]) == 0
    assert "committee of 2 members" in capsys.readouterr().out
    assert main(["train", str(emt_file), "--committee", "0", "-o", str(tmp_path / "x")]) == 2
    assert "at least 1" in capsys.readouterr().err
