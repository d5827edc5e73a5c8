"""write_report on synthetic training-run directories with hand-computed metrics."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from hdnnp.analysis.report import METRICS_KEYS, format_metrics_table, write_report
from hdnnp.analysis.rundir import best_epoch, read_predictions, read_training_log
from hdnnp.errors import HdnnpError, InputFileError

# per-atom energy errors of the train set (meV/atom) and their metrics
TRAIN_ERR_MEV = np.array([1.0, -2.0, 3.0, 0.0, 4.0])
TRAIN_N = np.array([2, 3, 4, 5, 6])


def make_run(tmp_path, forces=True, test=True, log=True, numbers=False):
    rng = np.random.default_rng(1)
    run = tmp_path / "run"
    run.mkdir()
    e_ref = rng.normal(-50.0, 5.0, 5) * TRAIN_N
    arrays = {"train_energy_ref": e_ref,
              "train_energy_pred": e_ref + TRAIN_ERR_MEV * 1e-3 * TRAIN_N,
              "train_n_atoms": TRAIN_N,
              "train_names": np.array([f"s{k}" for k in range(5)])}
    f_ref = rng.normal(size=(int(TRAIN_N.sum()), 3))
    f_pred = f_ref + 0.01
    f_pred[0, 0] -= 0.02  # one component with error -0.01: |error| still 0.01 everywhere
    arrays["train_forces_ref"] = f_ref if forces else np.zeros((0, 3))
    arrays["train_forces_pred"] = f_pred if forces else np.zeros((0, 3))
    if test:
        arrays.update({"test_energy_ref": np.array([-100.0, -160.0]),
                       "test_energy_pred": np.array([-100.02, -159.96]),
                       "test_n_atoms": np.array([2, 4]),
                       "test_forces_ref": np.zeros((0, 3)), "test_forces_pred": np.zeros((0, 3)),
                       "test_names": np.array(["t0", "t1"])})
    if numbers:
        arrays["train_numbers"] = np.concatenate(
            [[1] * (n - 1) + [8] for n in TRAIN_N]).astype(np.int64)
    np.savez(run / "predictions.npz", **arrays)
    if log:
        lines = []
        for epoch in (1, 2, 3):
            rec = {"epoch": epoch, "wall_s": 1.0 * epoch, "loss": 1.0 / epoch, "lr": None,
                   "train": {"energy_mae_meV_per_atom": 10.0 / epoch,
                             "energy_rmse_meV_per_atom": 12.0 / epoch,
                             "force_mae_meV_per_A": 100.0 / epoch if forces else None,
                             "force_rmse_meV_per_A": 120.0 / epoch if forces else None},
                   "best": epoch == 2}
            if test:
                rec["test"] = {"energy_mae_meV_per_atom": 11.0 / epoch,
                               "energy_rmse_meV_per_atom": [20.0, 13.0, 14.0][epoch - 1]}
            lines.append(json.dumps(rec))
        (run / "log.jsonl").write_text("\n".join(lines) + "\n")
    return run


def test_report_files_and_metrics(tmp_path):
    run = make_run(tmp_path)
    m = write_report(run)
    report = run / "report"
    for name in ("metrics.json", "loss.png", "energy_parity.png", "force_parity.png",
                 "energy_error_hist.png", "force_error_hist.png"):
        assert (report / name).is_file(), name
    assert json.loads((report / "metrics.json").read_text()) == m
    assert list(m)[:16] == list(METRICS_KEYS)[:16]
    assert m["n_train"] == 5 and m["n_test"] == 2
    assert m["n_train_atoms"] == 20 and m["n_test_atoms"] == 6
    assert m["train_energy_mae_meV_per_atom"] == pytest.approx(2.0, abs=1e-9)
    assert m["train_energy_rmse_meV_per_atom"] == pytest.approx(math.sqrt(6.0), abs=1e-9)
    assert m["train_energy_max_abs_meV_per_atom"] == pytest.approx(4.0, abs=1e-9)
    assert m["train_energy_pearson_r"] == pytest.approx(1.0, abs=1e-6)
    assert m["train_force_mae_eV_per_A"] == pytest.approx(0.01)
    assert m["train_force_rmse_eV_per_A"] == pytest.approx(0.01)
    assert 0.999 < m["train_force_pearson_r"] <= 1.0
    # test: per-atom errors -10 and +10 meV/atom
    assert m["test_energy_mae_meV_per_atom"] == pytest.approx(10.0, abs=1e-9)
    assert m["test_energy_rmse_meV_per_atom"] == pytest.approx(10.0, abs=1e-9)
    assert m["test_force_mae_eV_per_A"] is None and m["test_force_pearson_r"] is None
    assert m["best_epoch"] == 2
    table = format_metrics_table(m)
    assert "energy RMSE (meV/atom)" in table and "best epoch: 2" in table


def test_report_without_forces_test_set_or_log(tmp_path):
    run = make_run(tmp_path, forces=False, test=False, log=False)
    out = tmp_path / "elsewhere"
    m = write_report(run, out)
    names = sorted(p.name for p in out.iterdir())
    assert names == ["energy_error_hist.png", "energy_parity.png", "metrics.json"]
    assert m["n_test"] == 0 and m["test_energy_mae_meV_per_atom"] is None
    assert m["train_force_rmse_eV_per_A"] is None
    assert m["train_energy_mae_meV_per_atom"] == pytest.approx(2.0, abs=1e-9)
    assert m["best_epoch"] is None


def test_report_uses_cohesive_energies_with_numbers_and_model(tmp_path):
    from hdnnp.descriptors import Chebyshev
    from hdnnp.model import NeuralNetworkPotential
    from hdnnp.potential import save_potential

    run = make_run(tmp_path, numbers=True)
    ref = {"H": -13.0, "O": -430.0}
    save_potential(NeuralNetworkPotential(Chebyshev(["H", "O"], 3.0, 2, 2.5, 1), hidden=(2,),
                                          reference_energies=ref), run / "model.json")
    m = write_report(run)
    sp = read_predictions(run)["train"]
    shift = np.array([(n - 1) * ref["H"] + ref["O"] for n in TRAIN_N])
    coh_ref = (sp.energy_ref - shift) / TRAIN_N
    coh_pred = (sp.energy_pred - shift) / TRAIN_N
    expected = np.corrcoef(coh_ref, coh_pred)[0, 1]
    assert m["train_energy_pearson_r"] == pytest.approx(expected, rel=1e-10)
    total_based = np.corrcoef(sp.energy_ref / TRAIN_N, sp.energy_pred / TRAIN_N)[0, 1]
    assert abs(expected - total_based) > 1e-8  # the test can tell the two apart
    # MAE does not depend on the shift
    assert m["train_energy_mae_meV_per_atom"] == pytest.approx(2.0, abs=1e-9)


def test_report_errors(tmp_path):
    with pytest.raises(HdnnpError, match="no such training-run directory"):
        write_report(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(HdnnpError, match="predictions"):
        write_report(tmp_path / "empty")
    bad = tmp_path / "bad"
    bad.mkdir()
    np.savez(bad / "predictions.npz", train_energy_ref=np.ones(3), train_energy_pred=np.ones(2),
             train_n_atoms=np.ones(3, int))
    with pytest.raises(InputFileError, match="3 reference energies"):
        write_report(bad)


def test_training_log_reading(tmp_path):
    run = make_run(tmp_path)
    log = read_training_log(run)
    assert [r["epoch"] for r in log] == [1, 2, 3]
    assert best_epoch(log)["epoch"] == 2
    for r in log:
        r.pop("best")
    assert best_epoch(log)["epoch"] == 2  # lowest test RMSE
    # a half-written last line is skipped with a warning; a bad middle line is an error
    path = run / "log.jsonl"
    path.write_text(path.read_text() + '{"epoch": 4, "tra')
    with pytest.warns(UserWarning, match="incomplete last line"):
        assert len(read_training_log(path)) == 3
    lines = path.read_text().splitlines()
    path.write_text("\n".join([lines[0], "garbage", lines[1]]) + "\n")
    with pytest.raises(InputFileError, match="line 2"):
        read_training_log(path)
    with pytest.raises(HdnnpError, match="no such training log"):
        read_training_log(tmp_path / "nothing")


def test_report_with_empty_test_arrays(tmp_path):
    run = make_run(tmp_path, test=False, log=False)
    z = dict(np.load(run / "predictions.npz"))
    z.update({"test_energy_ref": np.zeros(0), "test_energy_pred": np.zeros(0),
              "test_n_atoms": np.zeros(0, int), "test_forces_ref": np.zeros((0, 3)),
              "test_forces_pred": np.zeros((0, 3)), "test_names": np.zeros(0, dtype=str)})
    np.savez(run / "predictions.npz", **z)
    m = write_report(run)
    assert m["n_test"] == 0 and m["test_energy_rmse_meV_per_atom"] is None
    assert m["train_force_mae_eV_per_A"] == pytest.approx(0.01)
