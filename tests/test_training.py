"""Training: force Jacobians, reproducibility, checkpoints/resume, early stopping on the
validation set, interruption, chains of stages, and that ``hdnnp predict`` reproduces the
run's test metrics."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.calculators.singlepoint import SinglePointCalculator

from hdnnp.cli import main
from hdnnp.data import Dataset
from hdnnp.descriptors import Chebyshev
from hdnnp.errors import HdnnpError
from hdnnp.io import write_structures
from hdnnp.model import NeuralNetworkPotential
from hdnnp.neighbours import build_batch
from hdnnp.potential import load_potential
from hdnnp.training import FeatureSet, TrainConfig, Trainer, train
from hdnnp.training.losses import batch_predictions


def emt_structures(n=24, seed=0):
    """Rattled and strained Cu/Al fcc cells labelled with ASE's EMT potential."""
    rng = np.random.default_rng(seed)
    out = []
    for k in range(n):
        atoms = bulk("Cu", "fcc", a=3.6, cubic=True).repeat((2, 1, 1))
        symbols = np.where(rng.random(len(atoms)) < 0.3, "Al", "Cu")
        atoms.set_chemical_symbols(symbols)
        atoms.set_cell(atoms.cell.array * (1 + rng.uniform(-0.04, 0.04)), scale_atoms=True)
        atoms.rattle(0.08, seed=int(rng.integers(1 << 30)))
        atoms.calc = EMT()
        e, f = atoms.get_potential_energy(), atoms.get_forces()
        atoms.calc = SinglePointCalculator(atoms, energy=e, forces=f)
        atoms.info["source"] = f"emt-{k}"
        out.append(atoms)
    return out


@pytest.fixture(scope="module")
def emt_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "emt.extxyz"
    write_structures(path, emt_structures())
    return path


def config(path, out, **training):
    # a constant rate (no cosine schedule): extending a run by more epochs then continues
    # exactly as one uninterrupted run of all the epochs
    t = {"optimizer": "adam", "epochs": 6, "batch_size": 4, "learning_rate": 0.01,
         "learning_rate_final": None, "force_weight": 0.05, "seed": 3, "threads": 2}
    t.update(training)
    return TrainConfig.from_dict({
        "data": {"train": [str(path)], "validation_fraction": 0.25, "test_fraction": 0.25,
                 "seed": 2},
        "descriptor": {"kind": "chebyshev", "radial_rc": 5.0, "radial_order": 6,
                       "angular_rc": 4.0, "angular_order": 3},
        "network": {"hidden": [8, 8], "activation": "tanh"},
        "training": t, "output": str(out), "figures": False})


def read_log(run):
    return [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]


def test_stored_jacobian_forces_equal_autograd_forces():
    structs = emt_structures(5, seed=4)
    d = Chebyshev(["Al", "Cu"], 5.0, 6, 4.0, 3)
    model = NeuralNetworkPotential(d, hidden=(6,), activation="twist")
    gen = torch.Generator().manual_seed(0)
    for net in model.networks.values():
        net.reset_parameters(gen)
    fs = FeatureSet(d, Dataset(structs), jacobian_dtype=torch.float64)
    energy, forces = batch_predictions(model, fs.batch([1, 3, 4]), True, create_graph=False)
    ref = model(build_batch([structs[k] for k in (1, 3, 4)], model.elements, model.cutoff))
    np.testing.assert_allclose(energy.detach().numpy(), ref["energy"].detach().numpy(),
                               rtol=1e-13)
    np.testing.assert_allclose(forces.detach().numpy(), ref["forces"].detach().numpy(),
                               atol=1e-11)


def test_training_run_files_and_learning(emt_file, tmp_path):
    run = tmp_path / "run"
    metrics = Trainer(config(emt_file, run, epochs=12), progress=False, log=None).run()
    for name in ("config.json", "log.jsonl", "checkpoint.pt", "model.json", "predictions.npz",
                 "metrics.json", "split.json", "validation.extxyz", "test.extxyz"):
        assert (run / name).exists(), name
    log = read_log(run)
    assert [r["epoch"] for r in log] == list(range(1, 13))
    assert all("test" not in r for r in log)  # the test set is predicted once, at the end
    first, last = log[0]["validation"], log[-1]["validation"]
    assert last["force_rmse_eV_per_A"] < first["force_rmse_eV_per_A"]
    assert last["energy_rmse_meV_per_atom"] < first["energy_rmse_meV_per_atom"]
    assert set(first) >= {"energy_mae_meV_per_atom", "energy_rmse_meV_per_atom",
                          "force_mae_eV_per_A", "force_rmse_eV_per_A"}
    assert (metrics["n_train"], metrics["n_validation"], metrics["n_test"]) == (12, 6, 6)
    # one metric convention: the log's validation errors of the best epoch are those of
    # the final evaluation of the validation set (same model, same formula, same units)
    best = [r for r in log if r["best"]][-1]
    assert best["epoch"] == metrics["best_epoch"]
    assert best["validation"]["energy_rmse_meV_per_atom"] == pytest.approx(
        metrics["validation_energy_rmse_meV_per_atom"], rel=1e-6)
    assert best["validation"]["force_rmse_eV_per_A"] == pytest.approx(
        metrics["validation_force_rmse_eV_per_A"], rel=1e-5)
    model = load_potential(run / "model.json")
    training = model.metadata["training"]
    assert training["n_train"] == 12 and training["best_epoch"] == metrics["best_epoch"]
    assert training["config"]["network"]["hidden"] == [8, 8]
    assert training["optimizer_chain"] == ["adam:12"]
    split = json.loads((run / "split.json").read_text())
    names = [set(split[s]) for s in ("train", "validation", "test")]
    assert [len(n) for n in names] == [12, 6, 6] and not (names[0] & names[1]) \
        and not (names[0] & names[2]) and not (names[1] & names[2])


def test_same_seed_same_result_and_resume_equals_uninterrupted(emt_file, tmp_path):
    full = tmp_path / "full"
    Trainer(config(emt_file, full, epochs=6), progress=False, log=None).run()
    again = tmp_path / "again"
    Trainer(config(emt_file, again, epochs=6), progress=False, log=None).run()
    assert [r["loss"] for r in read_log(full)] == [r["loss"] for r in read_log(again)]
    part = tmp_path / "part"
    Trainer(config(emt_file, part, epochs=3), progress=False, log=None).run()
    train({"output": str(part)}, resume=True, progress=False, log=None, epochs=6)
    assert [r["loss"] for r in read_log(part)] == [r["loss"] for r in read_log(full)]


def test_refuses_to_overwrite_a_run(emt_file, tmp_path, capsys):
    run = tmp_path / "run"
    Trainer(config(emt_file, run, epochs=1), progress=False, log=None).run()
    rc = main(["train", str(emt_file), "-o", str(run), "--epochs", "1", "--quiet"])
    assert rc == 2 and "--resume" in capsys.readouterr().err


def test_early_stopping(emt_file, tmp_path):
    run = tmp_path / "run"
    metrics = Trainer(config(emt_file, run, epochs=50, learning_rate=0.0,
                             early_stopping_patience=3), progress=False, log=None).run()
    assert metrics["stop_reason"] == "early stopping"
    assert len(read_log(run)) == 4 and metrics["best_epoch"] == 1


def test_interrupt_keeps_best_model(emt_file, tmp_path, monkeypatch):
    run = tmp_path / "run"
    trainer = Trainer(config(emt_file, run, epochs=20), progress=False, log=None)
    original = Trainer._epoch

    def epoch(self, opt, stage, step):
        if step == 4:
            raise KeyboardInterrupt
        return original(self, opt, stage, step)

    monkeypatch.setattr(Trainer, "_epoch", epoch)
    metrics = trainer.run()
    assert metrics["stop_reason"] == "interrupted" and metrics["epochs_run"] == 3
    log = read_log(run)
    assert [r["epoch"] for r in log] == [1, 2, 3]
    assert metrics["best_epoch"] == max(r["epoch"] for r in log if r["best"])
    load_potential(run / "model.json")


@pytest.mark.parametrize("optimizer", ["lbfgs", "sgd"])
def test_other_optimizers_reduce_the_loss(emt_file, tmp_path, optimizer):
    run = tmp_path / optimizer
    lr = 0.002 if optimizer == "sgd" else 1.0
    Trainer(config(emt_file, run, epochs=8, optimizer=optimizer, learning_rate=lr,
                   batch_size=2), progress=False, log=None).run()
    log = read_log(run)
    assert log[-1]["loss"] < log[0]["loss"]


def test_energy_only_and_force_fraction(emt_file, tmp_path):
    run = tmp_path / "eonly"
    Trainer(config(emt_file, run, epochs=2, force_weight=0.0), progress=False, log=None).run()
    assert "force_rmse_eV_per_A" not in read_log(run)[0]["train"]
    run = tmp_path / "half"
    tr = Trainer(config(emt_file, run, epochs=1, force_fraction=0.5), progress=False, log=None)
    tr.run()
    assert tr.train_fs.n_force_structures == 6
    assert tr.train_fs.memory_bytes() < FeatureSet(
        tr.model.descriptor, tr.splits["train"]).memory_bytes()


def test_predict_reproduces_test_metrics(emt_file, tmp_path, capsys):
    run = tmp_path / "run"
    metrics = Trainer(config(emt_file, run, epochs=4), progress=False, log=None).run()
    out = tmp_path / "pred.json"
    rc = main(["predict", str(run / "model.json"), str(run / "test.extxyz"), "--json",
               str(out), "--quiet"])
    assert rc == 0
    pm = json.loads(out.read_text())["metrics"]
    assert pm["energy_rmse_meV_per_atom"] == pytest.approx(
        metrics["test_energy_rmse_meV_per_atom"], rel=1e-9)
    assert pm["force_rmse_eV_per_A"] == pytest.approx(metrics["test_force_rmse_eV_per_A"],
                                                      rel=1e-9)
    assert "extrapolation" in capsys.readouterr().out


def test_cli_train_flags_and_config_errors(emt_file, tmp_path, capsys):
    run = tmp_path / "cli"
    rc = main(["train", str(emt_file), "--descriptor", "chebyshev", "--radial", "4.5", "5",
               "--angular", "3.5", "2", "--hidden", "5", "--epochs", "2", "--batch-size", "6",
               "--force-weight", "0.01", "--momentum", "0.7", "-o", str(run), "--quiet"])
    assert rc == 0
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["descriptor"]["radial_order"] == 5 and cfg["network"]["hidden"] == [5]
    assert cfg["training"]["momentum"] == 0.7
    for stage, message in (("adam", "expected OPTIMIZER:EPOCHS"),
                           ("adam:2:learning_rate", "cannot read setting"),
                           ("adma:2", "training.stages[0].optimizer"),
                           ("adam:2:learning_rat=1", "did you mean 'learning_rate'")):
        rc = main(["train", str(emt_file), "--stage", stage, "-o", str(tmp_path / "s")])
        err = capsys.readouterr().err
        assert rc == 2 and message in err and err.count("\n") == 1, err
    bad = tmp_path / "bad.yaml"
    bad.write_text("data:\n  train: [x]\ntraining:\n  epoch: 3\n")
    rc = main(["train", "--config", str(bad)])
    err = capsys.readouterr().err
    assert rc == 2 and "training.epoch: unknown key (did you mean 'epochs'?)" in err \
        and err.count("\n") == 1
    bad.write_text("data: [\n")
    rc = main(["train", "--config", str(bad)])
    assert rc == 2 and "bad.yaml" in capsys.readouterr().err


def test_adam_then_lbfgs_refinement_and_resume_across_phases(emt_file, tmp_path):
    full = tmp_path / "full"
    Trainer(config(emt_file, full, epochs=3, refine_epochs=3), progress=False, log=None).run()
    log = read_log(full)
    assert len(log) == 6 and log[3]["lr"] is None and log[2]["lr"] is not None
    best_main = min(r["loss"] for r in log[:3])
    assert log[-1]["loss"] < best_main  # L-BFGS improves on the best Adam model
    assert [r["stage"] for r in log] == [1, 1, 1, 2, 2, 2]
    part = tmp_path / "part"
    Trainer(config(emt_file, part, epochs=3, refine_epochs=1), progress=False, log=None).run()
    train({"output": str(part)}, resume=True, progress=False, log=None, epochs=3)
    assert [r["loss"] for r in read_log(part)] == [r["loss"] for r in log]


def test_init_model_starts_from_a_trained_potential(emt_file, tmp_path):
    first = tmp_path / "first"
    Trainer(config(emt_file, first, epochs=4), progress=False, log=None).run()
    best = [r for r in read_log(first) if r["best"]][-1]
    second = tmp_path / "second"
    Trainer(config(emt_file, second, epochs=1, learning_rate=0.0,
                   init_model=str(first / "model.json")), progress=False, log=None).run()
    start = read_log(second)[0]
    assert start["validation"]["energy_rmse_meV_per_atom"] == pytest.approx(
        best["validation"]["energy_rmse_meV_per_atom"], rel=1e-10)
    other = tmp_path / "other"
    with pytest.raises(HdnnpError, match="cannot be the starting point"):
        Trainer(TrainConfig.from_dict({
            "data": {"train": [str(emt_file)]}, "output": str(other), "figures": False,
            "descriptor": {"kind": "chebyshev", "cutoff": 4.0, "size": 2},
            "training": {"epochs": 1, "init_model": str(first / "model.json")}}),
            progress=False, log=None).run()


def test_resume_extends_a_finished_run_and_refuses_other_flags(tmp_path, capsys):
    """``--resume RUN --epochs N`` used to ignore --epochs silently (issue 11, item 3)."""
    run = tmp_path / "run"
    base = ["train", "bundled:graphene-A", "--n-structures", "30", "--descriptor", "chebyshev",
            "--radial", "4.0", "4", "--angular", "3.0", "2", "--hidden", "4",
            "--epochs", "2", "--threads", "1", "--quiet", "-o", str(run)]
    assert main(base) == 0
    assert main(["train", "--resume", str(run), "--epochs", "5", "--quiet"]) == 0
    epochs = [json.loads(line)["epoch"] for line in (run / "log.jsonl").read_text().split("\n")
              if line.strip()]
    assert epochs == [1, 2, 3, 4, 5]
    assert json.loads((run / "config.json").read_text())["training"]["epochs"] == 5
    assert json.loads((run / "metrics.json").read_text())["epochs_run"] == 5
    capsys.readouterr()
    assert main(["train", "--resume", str(run), "--epochs", "3", "--quiet"]) == 2
    assert "has run 5 epochs already" in capsys.readouterr().err
    # a new stage appended to the finished run: the log continues from epoch 6
    assert main(["train", "--resume", str(run), "--stage", "lbfgs:2", "--quiet"]) == 0
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert [(r["epoch"], r["stage"], r["optimizer"]) for r in log][4:] == [
        (5, 1, "adam"), (6, 2, "lbfgs"), (7, 2, "lbfgs")]
    assert json.loads((run / "metrics.json").read_text())["optimizer_chain"] == [
        "adam:5", "lbfgs:2"]
    assert main(["train", "--resume", str(run), "--learning-rate", "0.1", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "--learning-rate cannot apply" in err and err.count("\n") == 1


# ------------------------------------------------------------------ chains of stages
CHAIN = [{"optimizer": "adam", "epochs": 3, "learning_rate": 0.01},
         {"optimizer": "lm", "epochs": 10, "lm_mu": 0.1}]


def _chain_config_file(path, out, tmp_path):
    cfg = config(path, out, threads=1).to_dict()
    for derived in ("optimizer", "epochs"):
        cfg["training"].pop(derived)
    cfg["training"]["stages"] = CHAIN
    file = tmp_path / f"{out.name}.json"
    file.write_text(json.dumps(cfg))
    return file


def _hdnnp(*args):
    import subprocess
    import sys

    return subprocess.Popen([sys.executable, "-c", "import sys; from hdnnp.cli import main; "
                             "sys.exit(main(sys.argv[1:]))", *args],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _epoch_records(run):
    return [{k: v for k, v in r.items() if k != "wall_s"} for r in read_log(run)]


def test_chain_adam_then_lm_killed_mid_stage_resumes_to_the_same_model(emt_file, tmp_path):
    """Kill -9 in the middle of the LM stage, resume: the same model, bit for bit (one
    thread), and the same log, as a run that was not interrupted (issue 11)."""
    import os
    import signal
    import time

    full = tmp_path / "full"
    proc = _hdnnp("train", "--config", str(_chain_config_file(emt_file, full, tmp_path)),
                  "--quiet")
    assert proc.wait(timeout=600) == 0, proc.stderr.read()
    log = read_log(full)
    assert [(r["stage"], r["optimizer"]) for r in log] == [(1, "adam")] * 3 + [(2, "lm")] * 10
    assert min(r["loss"] for r in log[3:]) < min(r["loss"] for r in log[:3])  # LM helps

    killed = tmp_path / "killed"
    proc = _hdnnp("train", "--config", str(_chain_config_file(emt_file, killed, tmp_path)),
                  "--quiet")
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and proc.poll() is None:
        if (killed / "log.jsonl").exists() and '"stage": 2' in (killed / "log.jsonl").read_text():
            os.kill(proc.pid, signal.SIGKILL)
            break
        time.sleep(0.002)
    assert proc.wait(timeout=60) == -signal.SIGKILL, "the run ended before it could be killed"
    done = read_log(killed)
    assert 4 <= done[-1]["epoch"] < 13 and done[-1]["stage"] == 2  # inside the LM stage
    proc = _hdnnp("train", "--resume", str(killed), "--quiet")
    assert proc.wait(timeout=600) == 0, proc.stderr.read()

    assert _epoch_records(killed) == _epoch_records(full)
    a = load_potential(full / "model.json").state_dict()
    b = load_potential(killed / "model.json").state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    ma = json.loads((full / "metrics.json").read_text())
    mb = json.loads((killed / "metrics.json").read_text())
    assert ma["test_energy_rmse_meV_per_atom"] == mb["test_energy_rmse_meV_per_atom"]
    assert mb["optimizer_chain"] == ["adam:3", "lm:10"]


def test_stage_ends_early_on_the_validation_loss_and_the_next_starts_from_the_best(
        emt_file, tmp_path):
    run = tmp_path / "run"
    cfg = config(emt_file, run).to_dict()
    for derived in ("optimizer", "epochs"):
        cfg["training"].pop(derived)
    cfg["training"]["stages"] = [
        {"optimizer": "adam", "epochs": 4, "learning_rate": 0.01},
        {"optimizer": "sgd", "epochs": 30, "learning_rate": 0.0, "early_stopping_patience": 2},
        {"optimizer": "lbfgs", "epochs": 2}]
    metrics = train(cfg, progress=False, log=None)
    log = read_log(run)
    # lr 0 changes nothing: two epochs without improvement end the stage
    assert [r["stage"] for r in log] == [1, 1, 1, 1, 2, 2, 3, 3]
    assert log[4]["validation"] == log[5]["validation"]
    best_adam = [r for r in log[:4] if r["best"]][-1]  # lowest validation loss
    assert log[4]["validation"] == pytest.approx(best_adam["validation"], rel=1e-12)
    assert not log[4]["best"] and not log[5]["best"]
    assert metrics["optimizer_chain"] == ["adam:4", "sgd:30", "lbfgs:2"]
    assert metrics["epochs_run"] == 8


def test_an_interrupted_set_up_resumes_from_the_beginning(emt_file, tmp_path, monkeypatch):
    run = tmp_path / "run"

    def interrupted(self):
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(Trainer, "_setup", interrupted)
        with pytest.raises(KeyboardInterrupt):
            Trainer(config(emt_file, run, epochs=2), progress=False, log=None).run()
    assert (run / "config.json").exists() and not (run / "checkpoint.pt").exists()
    lines = []
    metrics = train({"output": str(run)}, resume=True, progress=False, log=lines.append)
    assert any("no epoch had finished; starting from the beginning" in s for s in lines)
    assert not any("resuming" in s for s in lines) and metrics["epochs_run"] == 2
