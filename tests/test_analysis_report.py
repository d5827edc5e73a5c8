"""write_report on synthetic training-run directories with hand-computed metrics.

A run directory has up to three splits: train, validation, test (predictions.npz) and a
log with train and validation metrics in meV/atom and eV/Å.  ``old=True`` writes the
format of runs made before the validation split: train/test predictions only and a log
with ``"test"`` and force metrics in meV/Å.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from hdnnp.analysis.report import METRICS_KEYS, compute_metrics, format_metrics_table, write_report
from hdnnp.analysis.rundir import (
    SPLITS,
    best_epoch,
    normalise_record,
    read_predictions,
    read_training_log,
)
from hdnnp.errors import HdnnpError, InputFileError

# per-atom energy errors of the train set (meV/atom) and their metrics
TRAIN_ERR_MEV = np.array([1.0, -2.0, 3.0, 0.0, 4.0])
TRAIN_N = np.array([2, 3, 4, 5, 6])
# the validation set: per-atom energy errors (meV/atom), atom counts
VALID_ERR_MEV = np.array([6.0, -3.0, 1.5])
VALID_N = np.array([3, 2, 5])


def _log_records(forces=True, validation=True, old=False):
    """Three epochs; the flagged best epoch is 2, the lowest selection RMSE too."""
    fkeys = ("force_mae_meV_per_A", "force_rmse_meV_per_A") if old else (
        "force_mae_eV_per_A", "force_rmse_eV_per_A", "force_max_abs_eV_per_A")
    scale = 1000.0 if old else 1.0
    records = []
    for epoch in (1, 2, 3):
        train = {"energy_mae_meV_per_atom": 10.0 / epoch,
                 "energy_rmse_meV_per_atom": 12.0 / epoch}
        for k, key in enumerate(fkeys):
            train[key] = (0.1 + 0.02 * k) * scale / epoch if forces else None
        rec = {"epoch": epoch, "wall_s": 1.0 * epoch, "loss": 1.0 / epoch, "lr": None,
               "train": train, "best": epoch == 2}
        if not old:
            rec.update({"stage": 1 + (epoch > 1), "optimizer": "adam" if epoch == 1 else "lm"})
        if validation:
            sel = {"energy_mae_meV_per_atom": 11.0 / epoch,
                   "energy_rmse_meV_per_atom": [20.0, 13.0, 14.0][epoch - 1]}
            if forces:
                sel[fkeys[1]] = [0.3, 0.2, 0.25][epoch - 1] * scale
            rec["test" if old else "validation"] = sel
        records.append(rec)
    return records


def make_run(tmp_path, forces=True, test=True, log=True, numbers=False, validation=True,
             old=False):
    """A run directory; ``old``: the format before the validation split (no
    validation predictions, the log's selection set is "test", forces in meV/Å)."""
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
    if validation and not old:
        v_ref = rng.normal(-40.0, 3.0, 3) * VALID_N
        vf_ref = rng.normal(size=(int(VALID_N.sum()), 3))
        vf_pred = vf_ref + rng.normal(scale=0.05, size=vf_ref.shape)
        arrays.update({"validation_energy_ref": v_ref,
                       "validation_energy_pred": v_ref + VALID_ERR_MEV * 1e-3 * VALID_N,
                       "validation_n_atoms": VALID_N,
                       "validation_forces_ref": vf_ref if forces else np.zeros((0, 3)),
                       "validation_forces_pred": vf_pred if forces else np.zeros((0, 3)),
                       "validation_names": np.array(["v0", "v1", "v2"])})
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
        records = _log_records(forces, test if old else validation, old)
        (run / "log.jsonl").write_text("\n".join(json.dumps(r) for r in records) + "\n")
    return run


def expected_split_metrics(npz_path, split):
    """MAE, RMSE, max error and Pearson r of a split, straight from the arrays."""
    z = np.load(npz_path)
    n = z[f"{split}_n_atoms"]
    ref, pred = z[f"{split}_energy_ref"] / n, z[f"{split}_energy_pred"] / n
    err = (pred - ref) * 1000.0
    out = {"energy_mae_meV_per_atom": np.abs(err).mean(),
           "energy_rmse_meV_per_atom": np.sqrt((err ** 2).mean()),
           "energy_max_abs_meV_per_atom": np.abs(err).max(),
           "energy_mean_error_meV_per_atom": err.mean(),
           "energy_pearson_r": np.corrcoef(ref, pred)[0, 1]}
    f_ref, f_pred = z[f"{split}_forces_ref"].ravel(), z[f"{split}_forces_pred"].ravel()
    if f_ref.size:
        ferr = f_pred - f_ref
        out.update({"force_mae_eV_per_A": np.abs(ferr).mean(),
                    "force_rmse_eV_per_A": np.sqrt((ferr ** 2).mean()),
                    "force_max_abs_eV_per_A": np.abs(ferr).max(),
                    "force_pearson_r": np.corrcoef(f_ref, f_pred)[0, 1]})
    return out


def test_report_files_and_metrics(tmp_path, monkeypatch):
    from hdnnp.analysis import plots

    drawn = {}  # figure file name: the sets drawn

    def spy(orig):
        def plot(ref, pred, path, **kw):
            drawn[path.name] = list(ref)
            return orig(ref, pred, path, **kw)
        return plot

    for name in ("plot_parity", "plot_error_histogram"):
        monkeypatch.setattr(plots, name, spy(getattr(plots, name)))
    run = make_run(tmp_path)
    m = write_report(run)
    report = run / "report"
    for name in ("metrics.json", "loss.png", "energy_parity.png", "force_parity.png",
                 "energy_error_hist.png", "force_error_hist.png"):
        assert (report / name).is_file(), name
    assert json.loads((report / "metrics.json").read_text()) == m
    assert list(m) == list(METRICS_KEYS)
    # every split in every figure of energies; forces of the splits that have them
    assert drawn["energy_parity.png"] == drawn["energy_error_hist.png"] == list(SPLITS)
    assert drawn["force_parity.png"] == drawn["force_error_hist.png"] == ["train",
                                                                          "validation"]
    assert m["n_train"] == 5 and m["n_validation"] == 3 and m["n_test"] == 2
    assert m["n_train_atoms"] == 20 and m["n_validation_atoms"] == 10
    assert m["n_test_atoms"] == 6
    assert m["train_energy_mae_meV_per_atom"] == pytest.approx(2.0, abs=1e-9)
    assert m["train_energy_rmse_meV_per_atom"] == pytest.approx(math.sqrt(6.0), abs=1e-9)
    assert m["train_energy_max_abs_meV_per_atom"] == pytest.approx(4.0, abs=1e-9)
    assert m["train_energy_pearson_r"] == pytest.approx(1.0, abs=1e-6)
    assert m["train_force_mae_eV_per_A"] == pytest.approx(0.01)
    assert m["train_force_rmse_eV_per_A"] == pytest.approx(0.01)
    assert 0.999 < m["train_force_pearson_r"] <= 1.0
    # validation: per-atom errors 6, -3, 1.5 meV/atom; forces with random errors
    assert m["validation_energy_mae_meV_per_atom"] == pytest.approx(3.5, abs=1e-9)
    assert m["validation_energy_rmse_meV_per_atom"] == pytest.approx(
        math.sqrt((36.0 + 9.0 + 2.25) / 3.0), abs=1e-9)
    assert m["validation_energy_max_abs_meV_per_atom"] == pytest.approx(6.0, abs=1e-9)
    assert m["validation_energy_mean_error_meV_per_atom"] == pytest.approx(1.5, abs=1e-9)
    for split in ("train", "validation", "test"):
        for key, value in expected_split_metrics(run / "predictions.npz", split).items():
            assert m[f"{split}_{key}"] == pytest.approx(value, rel=1e-9, abs=1e-12), \
                (split, key)
    assert m["validation_force_rmse_eV_per_A"] > 0.04  # not the train value 0.01
    # test: per-atom errors -10 and +10 meV/atom, no forces
    assert m["test_energy_mae_meV_per_atom"] == pytest.approx(10.0, abs=1e-9)
    assert m["test_energy_rmse_meV_per_atom"] == pytest.approx(10.0, abs=1e-9)
    assert m["test_force_mae_eV_per_A"] is None and m["test_force_pearson_r"] is None
    assert m["best_epoch"] == 2
    table = format_metrics_table(m)
    assert "energy RMSE (meV/atom)" in table and "best epoch: 2" in table


def _table(text):
    """Header words and ``{row name: cells}`` of a metrics table."""
    lines = text.splitlines()
    header = lines[0].split()
    rows = {}
    for line in lines[1:]:
        if line.startswith("best epoch"):
            continue
        cells = line.split()
        rows[" ".join(cells[: -len(header)])] = cells[-len(header):]
    return header, rows


def test_metrics_table_has_a_column_per_split(tmp_path):
    m = write_report(make_run(tmp_path), figures=False)
    header, rows = _table(format_metrics_table(m))
    assert header == ["train", "validation", "test"]
    assert rows["structures"] == ["5", "3", "2"]
    assert rows["atoms"] == ["20", "10", "6"]
    assert rows["energy MAE (meV/atom)"] == ["2", "3.5", "10"]
    assert rows["energy max error (meV/atom)"] == ["4", "6", "10"]
    assert rows["force MAE (eV/Å)"][:2] == ["0.01", f"{m['validation_force_mae_eV_per_A']:.4g}"]
    assert rows["force MAE (eV/Å)"][2] == "–"  # the test set has no forces
    # a run without a validation set: no validation column
    m2 = dict(m, n_validation=0, n_validation_atoms=0,
              **{k: None for k in m if k.startswith("validation_")})
    header, rows = _table(format_metrics_table(m2))
    assert header == ["train", "test"] and rows["structures"] == ["5", "2"]
    # an old metrics.json without the validation keys at all
    old = {k: v for k, v in m.items() if "validation" not in k}
    assert _table(format_metrics_table(old))[0] == ["train", "test"]
    # only validation metrics, no counts: the column is there
    header, rows = _table(format_metrics_table({"validation_energy_mae_meV_per_atom": 1.25}))
    assert header == ["validation"] and rows["energy MAE (meV/atom)"] == ["1.25"]
    assert _table(format_metrics_table({}))[0] == ["train"]


def test_report_without_forces_test_set_or_log(tmp_path):
    run = make_run(tmp_path, forces=False, test=False, log=False, validation=False)
    out = tmp_path / "elsewhere"
    m = write_report(run, out)
    names = sorted(p.name for p in out.iterdir())
    assert names == ["energy_error_hist.png", "energy_parity.png", "metrics.json"]
    assert m["n_test"] == 0 and m["test_energy_mae_meV_per_atom"] is None
    assert m["n_validation"] == 0 and m["validation_energy_mae_meV_per_atom"] is None
    assert m["train_force_rmse_eV_per_A"] is None
    assert m["train_energy_mae_meV_per_atom"] == pytest.approx(2.0, abs=1e-9)
    assert m["best_epoch"] is None
    assert _table(format_metrics_table(m))[0] == ["train"]


def test_report_of_an_old_run_directory(tmp_path):
    """train/test predictions and a log with "test" and meV/Å forces (before the
    validation split)."""
    run = make_run(tmp_path, old=True)
    assert list(read_predictions(run)) == ["train", "test"]
    m = write_report(run)
    assert (run / "report" / "loss.png").is_file()
    assert m["n_validation"] == 0 and m["validation_energy_rmse_meV_per_atom"] is None
    assert m["test_energy_mae_meV_per_atom"] == pytest.approx(10.0, abs=1e-9)
    assert m["best_epoch"] == 2
    assert _table(format_metrics_table(m))[0] == ["train", "test"]


def test_old_log_reads_back_in_eV_per_A(tmp_path):
    run = make_run(tmp_path, old=True)
    raw = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert raw[0]["train"]["force_rmse_meV_per_A"] == pytest.approx(120.0)
    for log in (read_training_log(run), read_training_log(raw)):
        for epoch, rec in zip((1, 2, 3), log):
            train = rec["train"]
            assert not [k for k in train if k.endswith("meV_per_A")]
            assert train["force_mae_eV_per_A"] == pytest.approx(0.1 / epoch)
            assert train["force_rmse_eV_per_A"] == pytest.approx(0.12 / epoch)
            # the old selection set stays under "test", its forces converted too
            assert "validation" not in rec
            assert rec["test"]["force_rmse_eV_per_A"] == pytest.approx(
                [0.3, 0.2, 0.25][epoch - 1])
            assert rec["test"]["energy_rmse_meV_per_atom"] == [20.0, 13.0, 14.0][epoch - 1]
            assert rec["train"]["energy_mae_meV_per_atom"] == pytest.approx(10.0 / epoch)
    assert "force_rmse_meV_per_A" in raw[0]["train"]  # parsed records are not changed
    # the new format reads back unchanged
    new = _log_records()
    assert read_training_log(new) == new
    # null stays null; an eV/Å key already there wins over the old one
    rec = normalise_record({"epoch": 1, "train": {"force_rmse_meV_per_A": None,
                                                  "force_mae_meV_per_A": 50.0,
                                                  "force_mae_eV_per_A": 0.02},
                            "loss": 3.0})
    assert rec == {"epoch": 1, "train": {"force_rmse_eV_per_A": None,
                                         "force_mae_eV_per_A": 0.02}, "loss": 3.0}


def test_best_epoch_prefers_validation():
    def rec(epoch, train, validation=None, test=None):
        r = {"epoch": epoch, "train": {"energy_rmse_meV_per_atom": train}}
        if validation is not None:
            r["validation"] = {"energy_rmse_meV_per_atom": validation}
        if test is not None:
            r["test"] = {"energy_rmse_meV_per_atom": test}
        return r

    # lowest train at epoch 2, lowest test at epoch 1, lowest validation at epoch 3
    log = [rec(1, 5.0, 9.0, 1.0), rec(2, 1.0, 8.0, 2.0), rec(3, 3.0, 7.0, 3.0)]
    assert best_epoch(log)["epoch"] == 3
    assert best_epoch([{k: v for k, v in r.items() if k != "validation"}
                       for r in log])["epoch"] == 1  # an old log: test chose
    assert best_epoch([{"epoch": r["epoch"], "train": r["train"]}
                       for r in log])["epoch"] == 2
    # the trainer's flag wins; the last flagged record
    log[0]["best"] = log[1]["best"] = True
    assert best_epoch(log)["epoch"] == 2
    assert best_epoch([]) is None
    assert best_epoch([{"epoch": 4}, {"epoch": 5}])["epoch"] == 5


def test_compute_metrics_of_three_splits_without_a_run_directory(tmp_path):
    run = make_run(tmp_path)
    preds = read_predictions(run)
    assert list(preds) == ["train", "validation", "test"]
    m = compute_metrics(preds, log=read_training_log(run))
    assert set(m) == set(METRICS_KEYS)
    for split in SPLITS:
        assert f"n_{split}" in METRICS_KEYS and f"{split}_energy_rmse_meV_per_atom" in m
    assert m["validation_energy_mae_meV_per_atom"] == pytest.approx(3.5, abs=1e-9)
    only_valid = compute_metrics({"validation": preds["validation"]})
    assert only_valid["n_train"] == 0 and only_valid["train_energy_mae_meV_per_atom"] is None
    assert only_valid["validation_energy_mae_meV_per_atom"] == pytest.approx(3.5, abs=1e-9)
    assert only_valid["best_epoch"] is None


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
    assert best_epoch(log)["epoch"] == 2  # lowest validation RMSE
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
    run = make_run(tmp_path, test=False, log=False, validation=False)
    z = dict(np.load(run / "predictions.npz"))
    z.update({"test_energy_ref": np.zeros(0), "test_energy_pred": np.zeros(0),
              "test_n_atoms": np.zeros(0, int), "test_forces_ref": np.zeros((0, 3)),
              "test_forces_pred": np.zeros((0, 3)), "test_names": np.zeros(0, dtype=str)})
    np.savez(run / "predictions.npz", **z)
    m = write_report(run)
    assert m["n_test"] == 0 and m["test_energy_rmse_meV_per_atom"] is None
    assert m["train_force_mae_eV_per_A"] == pytest.approx(0.01)
    assert _table(format_metrics_table(m))[0] == ["train"]
