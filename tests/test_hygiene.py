"""Process hygiene (issue 10, item 5): stale temporary files, Ctrl-C, broken pipes, exit
statuses; and the trainer's own guards against bad labels and untrained models."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.calculators.singlepoint import SinglePointCalculator

from hdnnp.cli import main
from hdnnp.data import Dataset
from hdnnp.errors import HdnnpError
from hdnnp.fileio import _HOST, atomic_write_text, remove_stale_temporaries
from hdnnp.training import TrainConfig, Trainer
from hdnnp.training import datasets as datasets_module
from hdnnp.training.datasets import check_finite_labels
from hdnnp.training.trainer import TrainingInterrupted, raise_if_interrupted


def _temporaries(directory, name="model.json"):
    return sorted(p.name for p in directory.iterdir() if p.name.startswith(f".{name}."))


# ------------------------------------------------------------------ stale temporaries
def test_a_killed_save_leaves_no_temporary_after_the_next_write(tmp_path):
    target = tmp_path / "model.json"
    script = ("import sys, time\nfrom hdnnp.fileio import atomic_path\n"
              f"with atomic_path({str(target)!r}) as tmp:\n"
              "    tmp.write_text('half a model')\n"
              "    print('writing', flush=True)\n"
              "    time.sleep(120)\n")
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "writing"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    left = _temporaries(tmp_path)
    assert len(left) == 1 and f"{_HOST}-{proc.pid}." in left[0]  # the writer's PID in the name
    atomic_write_text(target, "{}")
    assert _temporaries(tmp_path) == [] and target.read_text() == "{}"


def test_only_temporaries_of_dead_writers_are_removed(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    live = os.getppid()  # our parent lives as long as we do
    hour_ago = time.time() - 3600
    files = {
        f".model.json.{_HOST}-{dead.pid}.abcd1234.tmp": True,  # writer gone
        # a live PID that started after the file was written: the PID was reused
        f".model.json.{_HOST}-{live}.abcd1234.tmp": True,
        f".model.json.0123abcd-{dead.pid}.abcd1234.tmp": False,  # another host
        ".model.json.k2j4h5g6.tmp": True,  # an older hdnnp's, older than this process
        ".model.json.notours.tmp": False,  # not our pattern
        f".other.json.{_HOST}-{dead.pid}.abcd1234.tmp": False,  # another target
        "model.json.tmp": False,
    }
    for name in files:
        (tmp_path / name).write_text("x")
        os.utime(tmp_path / name, (hour_ago, hour_ago))
    kept = [f".model.json.{_HOST}-{live}.zzzz9999.tmp",  # written now by a live writer
            f".model.json.{_HOST}-{os.getpid()}.zzzz9999.tmp"]  # our own: always kept
    for name in kept:
        (tmp_path / name).write_text("x")
    removed = {p.name for p in remove_stale_temporaries(tmp_path / "model.json")}
    assert removed == {n for n, stale in files.items() if stale}
    assert all((tmp_path / name).exists() for name in kept)
    for name, stale in files.items():
        assert (tmp_path / name).exists() != stale, name


# ------------------------------------------------------------------ broken pipe, status
def test_broken_pipe_exits_quietly():
    code = "import sys; from hdnnp.cli import main; sys.exit(main())"
    proc = subprocess.Popen([sys.executable, "-c", code, "data", "list"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # the reader has gone, as with `hdnnp info model.json | head`
    err = proc.stderr.read().decode()
    proc.wait(timeout=120)
    assert proc.returncode == 141, err
    assert "Traceback" not in err and "BrokenPipe" not in err and err.strip() == ""


def test_broken_pipe_inside_a_command_is_quiet(monkeypatch):
    from hdnnp.cli import cmd_info

    def run(args):
        raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(cmd_info, "run", run)
    assert main(["info", "model.json"]) == 141


@pytest.mark.parametrize(("returned", "status"), [(None, 0), (0, 0), (3, 3), ("done", 2),
                                                 (True, 2)])
def test_command_return_values_become_exit_statuses(monkeypatch, returned, status):
    from hdnnp.cli import cmd_info

    monkeypatch.setattr(cmd_info, "run", lambda args: returned)
    assert main(["info", "model.json"]) == status


# ------------------------------------------------------------------ training
def _emt_dataset(n=12, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for k in range(n):
        atoms = bulk("Cu", "fcc", a=3.6, cubic=True)
        atoms.rattle(0.05, seed=int(rng.integers(1 << 30)))
        atoms.calc = EMT()
        e, f = atoms.get_potential_energy(), atoms.get_forces()
        atoms.calc = SinglePointCalculator(atoms, energy=e, forces=f)
        atoms.info["source"] = f"emt.extxyz:{k + 1}"
        out.append(atoms)
    return Dataset(out)


def _config(out, **training):
    t = {"optimizer": "adam", "epochs": 4, "batch_size": 4, "learning_rate": 0.01,
         "force_weight": 0.05, "seed": 3, "threads": 1}
    t.update(training)
    return TrainConfig.from_dict({
        "data": {"train": ["unused.extxyz"], "test_fraction": 0.25, "seed": 2},
        "descriptor": {"kind": "chebyshev", "radial_rc": 4.0, "radial_order": 4,
                       "angular_rc": 3.5, "angular_order": 2},
        "network": {"hidden": [4], "activation": "tanh"},
        "training": t, "output": str(out), "figures": False})


@pytest.fixture
def data(monkeypatch):
    """The trainer's data: an in-memory set (the readers' own checks are not tested here)."""
    ds = _emt_dataset()

    monkeypatch.setattr(datasets_module, "load_datasets", lambda *args, **kwargs: ds)
    return ds


@pytest.mark.parametrize("bad", ["force", "energy", "reference"])
def test_non_finite_labels_are_named_before_training(data, tmp_path, bad):
    atoms = data.structures[5]
    if bad == "force":
        atoms.calc.results["forces"][2, 1] = np.inf
    elif bad == "energy":
        atoms.calc.results["energy"] = np.nan
    else:
        data.reference_energies["Cu"] = float("nan")
    run = tmp_path / "run"
    with pytest.raises(HdnnpError) as err:
        Trainer(_config(run), progress=False, log=None).run()
    message = str(err.value)
    assert "learning rate" not in message and len(message.splitlines()) == 1
    if bad == "reference":
        assert "Cu" in message
    else:
        assert "emt.extxyz:6" in message
    assert not (run / "model.json").exists()


def test_check_finite_labels_passes_finite_data():
    check_finite_labels(_emt_dataset(3))


def test_divergence_before_any_improvement_is_an_error_not_an_untrained_model(
        data, tmp_path, monkeypatch):
    monkeypatch.setattr(Trainer, "_epoch", lambda self, opt, stage, step: (float("nan"), {}))
    run = tmp_path / "run"
    with pytest.raises(HdnnpError, match="diverged") as err:
        Trainer(_config(run), progress=False, log=None).run()
    assert "labels are finite" in str(err.value)
    assert not (run / "model.json").exists()


def test_a_run_without_epochs_is_refused(data, tmp_path):
    with pytest.raises(HdnnpError, match="epoch"):
        Trainer(_config(tmp_path / "run", epochs=0), progress=False, log=None).run()
    assert not (tmp_path / "run" / "model.json").exists()


def test_interrupted_training_reports_the_best_model_and_exits_130(data, tmp_path, monkeypatch,
                                                                   capsys):
    from hdnnp.cli import cmd_info

    original = Trainer._epoch

    def epoch(self, opt, stage, step):
        if step == 3:
            raise KeyboardInterrupt
        return original(self, opt, stage, step)

    monkeypatch.setattr(Trainer, "_epoch", epoch)
    run = tmp_path / "run"
    metrics = Trainer(_config(run), progress=False, log=None).run()
    assert metrics["stop_reason"] == "interrupted" and metrics["model"] == str(
        run / "model.json")
    with pytest.raises(TrainingInterrupted) as exc:
        raise_if_interrupted(metrics, run)
    assert isinstance(exc.value, KeyboardInterrupt) and exc.value.model == metrics["model"]

    def command(args):  # what `hdnnp train` does with the run's metrics
        raise_if_interrupted(metrics, run)
        return 0

    monkeypatch.setattr(cmd_info, "run", command)
    rc = main(["info", "x"])
    err = capsys.readouterr().err
    assert rc == 130 and len(err.strip().splitlines()) == 1
    assert str(run / "model.json") in err and "--resume" in err


def test_interrupt_before_the_first_epoch_writes_no_model(data, tmp_path, monkeypatch):
    def epoch(self, opt, stage, step):
        raise KeyboardInterrupt

    monkeypatch.setattr(Trainer, "_epoch", epoch)
    run = tmp_path / "run"
    metrics = Trainer(_config(run), progress=False, log=None).run()
    assert metrics["model"] is None and not (run / "model.json").exists()
    with pytest.raises(TrainingInterrupted, match="no model written"):
        raise_if_interrupted(metrics, run)
