"""``hdnnp learn``: scores, selection, settings, and resumability after SIGKILL (issue 12).

A cheap reference (ASE's EMT on a 16-atom copper cell) and a tiny committee keep the whole
loop to seconds.  The resumability test kills the loop (as a subprocess, with SIGKILL) at
stage boundaries, between MD runs, between committee members and in the middle of
labelling, reruns it each time, and checks that labels and iterations equal those of an
uninterrupted run.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.emt import EMT

from hdnnp.active_learning import learn
from hdnnp.active_learning.config import validate_learn_config
from hdnnp.active_learning.select import classify, farthest_point
from hdnnp.errors import HdnnpError

TESTS = Path(__file__).resolve().parent
KILL_COUNTER_ENV = "HDNNP_TEST_KILL_COUNTER"  # file counting calculators made
KILL_AFTER_ENV = "HDNNP_TEST_KILL_AFTER"      # SIGKILL when the count reaches this


class KillingEMT(EMT):
    """EMT that, when the environment asks for it, kills its process with SIGKILL when
    the N-th calculator is made: a crash in the middle of labelling (every structure gets
    a fresh calculator)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        counter = os.environ.get(KILL_COUNTER_ENV)
        if counter:
            p = Path(counter)
            n = int(p.read_text()) + 1 if p.exists() else 1
            p.write_text(str(n))
            if n >= int(os.environ.get(KILL_AFTER_ENV, "0")):
                os.kill(os.getpid(), signal.SIGKILL)


# ------------------------------------------------------------------ selection
def test_classify_trust_window():
    s = np.array([0.01, 0.1, 0.5, 1.0, 1.01, np.inf, np.nan])
    assert list(classify(s, 0.1, 1.0)) == ["accurate", "candidate", "candidate", "candidate",
                                           "failed", "failed", "failed"]


def test_farthest_point_known_answer():
    # points on a line, reference at 0: farthest first is 10, then 5 (mid-gap), then the
    # tie 2 / 8 (both 2 from the nearest chosen point) goes to the lower index
    x = np.array([[0.1], [2.0], [5.0], [8.0], [10.0], [10.05]])
    chosen = farthest_point(x, np.arange(5), 3, reference=np.array([[0.0]]))
    assert chosen == [4, 2, 1]
    # duplicates: 10 is within 0.2 of 10.05 (chosen first) and 0.1 within 0.2 of the
    # reference: neither is ever chosen
    chosen = farthest_point(x, np.arange(6), 10, reference=np.array([[0.0]]),
                            min_distance=0.2)
    assert chosen == [5, 2, 3, 1]
    # without reference the first choice is the highest score
    chosen = farthest_point(x, np.arange(6), 2, first_by=np.array([0, 0, 9, 0, 0, 0]))
    assert chosen == [2, 5]


# ------------------------------------------------------------------ the loop on EMT copper
def _setup(tmp: Path) -> dict:
    from hdnnp.io import write_structures
    from hdnnp.reference_data.augment import rattle, scale
    from hdnnp.reference_data.calculators import ReferenceSettings
    from hdnnp.reference_data.labelling import label

    base = bulk("Cu", "fcc", a=3.61, cubic=True).repeat((2, 2, 1))
    write_structures(tmp / "seed.extxyz", [base])
    structs = [rattle(scale(base, s), 0.08, seed=k)
               for k, s in enumerate([-0.03, 0, 0.03, -0.01, 0.01, 0.02, 0.0, -0.02])]
    emt = ReferenceSettings(method="emt")
    label(structs[:6], tmp / "init.db", emt, in_process=True, progress=False)
    label(structs[6:], tmp / "val.db", emt, in_process=True, progress=False)
    return {
        "seeds": [str(tmp / "seed.extxyz")], "initial": [str(tmp / "init.db")],
        "validation": [str(tmp / "val.db")],
        "explore": {"temperatures": [300], "scalings": [0.0, 0.03], "timestep_fs": 2.0,
                    "equilibration_steps": 3, "interval_steps": 4, "snapshots": 3},
        "select": {"lower": 0.02, "upper": 2.0, "max_per_iteration": 3},
        "label": {"method": "test_active_learning:KillingEMT", "in_process": True},
        "train": {"descriptor": {"kind": "chebyshev", "radial_rc": 4.0, "radial_order": 4,
                                 "angular_rc": 3.5, "angular_order": 2},
                  "network": {"hidden": [4]}, "data": {"validation_fraction": 0.0},
                  "training": {"optimizer": "kalman", "epochs": 2, "committee": 2,
                               "threads": 1}},
        "stop": {"label_budget": 6, "max_iterations": 4},
        "figures": False,
    }


def _labels(run: Path) -> list[tuple]:
    from hdnnp.reference_data.labelling import connect

    out = []
    for d in sorted(run.glob("iter-*")):
        db = d / "labels.db"
        if not db.exists():
            continue
        rows = list(connect(db).select())
        keys = [r.key for r in rows]
        assert len(keys) == len(set(keys)), f"{db}: a label twice"
        for r in sorted(rows, key=lambda r: int(r.index)):
            out.append((d.name, r.key, r.status, round(float(r.energy), 10)))
    return out


def _history(run: Path) -> list[dict]:
    s = json.loads((run / "summary.json").read_text())
    return [{k: h[k] for k in ("iteration", "n_train_structures", "n_snapshots", "counts",
                               "selected", "labelled_ok", "labels_used", "stop")}
            for h in s["history"]]


@pytest.fixture(scope="module")
def emt_setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("learn")
    cfg = _setup(tmp)
    sys.path.insert(0, str(TESTS))  # the reference calculator module, for in-process runs
    ref = dict(cfg, output=str(tmp / "reference"))
    summary = learn(validate_learn_config(ref), progress=False, log=None)
    return tmp, cfg, summary


def test_loop_runs_and_reports(emt_setup):
    tmp, _, summary = emt_setup
    run = tmp / "reference"
    assert summary["status"] == "label budget spent"
    assert summary["labels_used"] == 6 and summary["iterations"] == 3
    # train → explore → score → select → label → report in every iteration
    for j in range(3):
        d = run / f"iter-{j:03d}"
        assert json.loads((d / "state.json").read_text())["stages"] == [
            "train", "explore", "score", "select", "label", "report"]
        rep = json.loads((d / "report.json").read_text())
        assert sum(rep["counts"].values()) == rep["n_snapshots"] == 6
        assert rep["validation"]["n_structures"] == 2
        assert rep["n_train_structures"] == 6 + 3 * j
    # warm start: members of iteration 1 start from those of iteration 0
    mc = json.loads((run / "iter-001" / "train" / "member-2" / "config.json").read_text())
    assert mc["training"]["init_model"].endswith("iter-000/train/member-2/model.json")
    # the scores are stored with every snapshot, and `data select --where` ranges work on them
    from hdnnp.cli import main
    from hdnnp.io import read_structures

    snaps = read_structures(run / "iter-000" / "explored.extxyz")
    devs = np.array([a.info["max_force_dev"] for a in snaps])
    assert all({"energy_spread_per_atom", "extrapolation_count"} <= set(a.info) for a in snaps)
    lo, hi = np.quantile(devs, [0.25, 0.75])
    out = tmp / "window.extxyz"
    assert main(["data", "select", str(run / "iter-000" / "explored.extxyz"), "-o", str(out),
                 "--where", f"max_force_dev>={float(lo)!r}",
                 "--where", f"max_force_dev<{float(hi)!r}"]) == 0
    got = np.array([a.info["max_force_dev"] for a in read_structures(out)])
    assert len(got) == int(((devs >= lo) & (devs < hi)).sum()) and len(got) > 0


def test_scores_agree_with_the_calculator(emt_setup):
    import hdnnp
    from hdnnp.active_learning.score import score_structures
    from hdnnp.io import read_structures

    tmp, _, _ = emt_setup
    model = tmp / "reference" / "iter-001" / "train" / "model.json"
    snaps = read_structures(tmp / "reference" / "iter-001" / "explored.extxyz")[:3]
    scores, fps = score_structures(model, snaps)
    calc = hdnnp.Calculator(model, committee_forces=True, extrapolation="ignore")
    for a, s in zip(snaps, scores):
        a = a.copy()
        a.calc = calc
        a.get_forces()
        assert s["max_force_dev"] == pytest.approx(calc.results["max_force_deviation"],
                                                   rel=1e-9)
        assert s["energy_spread_per_atom"] == pytest.approx(
            calc.results["energy_std"] / len(a), rel=1e-9)
        assert s["extrapolation_count"] == calc.results["extrapolation_warnings"]
    assert fps.shape[0] == 3 and np.isfinite(fps).all()


def _run_cli(config: Path, env_extra: dict) -> int:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join(
        [str(TESTS)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    env.update(env_extra)
    code = "import sys; from hdnnp.cli import main; sys.exit(main(sys.argv[1:]))"
    proc = subprocess.run([sys.executable, "-c", code, "learn", str(config), "--quiet",
                           "--threads", "1"], env=env, capture_output=True, text=True,
                          timeout=120)
    if proc.returncode not in (0, -signal.SIGKILL):
        raise AssertionError(proc.stderr[-2000:])
    return proc.returncode


def test_kill_anywhere_and_resume_equals_uninterrupted(emt_setup):
    tmp, cfg, _ = emt_setup
    run = tmp / "killed"
    config = tmp / "killed.json"
    config.write_text(json.dumps(dict(cfg, output=str(run))))
    counter = tmp / "calculators-made"
    kills = [
        {"HDNNP_LEARN_KILL_AT": "iter-000/train/member-1"},       # between members
        {"HDNNP_LEARN_KILL_AT": "iter-000/explore/run-0000"},     # between MD runs
        # mid-labelling: the 3rd calculator made is the 2nd of 3 structures (the 1st is
        # the isolated atom's): one label stored, the rest not
        {KILL_COUNTER_ENV: str(counter), KILL_AFTER_ENV: "3"},
        {"HDNNP_LEARN_KILL_AT": "iter-001/score"},          # output written, not marked
        {"HDNNP_LEARN_KILL_AT": "iter-001/label:marked"},   # just after a stage's mark
    ]
    for k, env in enumerate(kills):
        assert _run_cli(config, env) == -signal.SIGKILL, f"kill {k} did not happen"
        if KILL_COUNTER_ENV in env:
            labels = _labels(run)
            assert len(labels) == 1, labels  # killed in the middle of labelling
    assert _run_cli(config, {}) == 0
    assert _labels(run) == _labels(tmp / "reference")
    assert _history(run) == _history(tmp / "reference")
    # a finished run, rerun, does nothing more
    learn(validate_learn_config(dict(cfg, output=str(run))), progress=False, log=None)
    assert _labels(run) == _labels(tmp / "reference")
    assert _history(run) == _history(tmp / "reference")
    assert not (run / "iter-003").exists()


def test_converged_exploration_stops_without_labels(emt_setup, tmp_path):
    _, cfg, _ = emt_setup
    c = dict(cfg, output=str(tmp_path / "conv"), select={"lower": 50.0, "upper": 100.0},
             label={"method": "emt", "in_process": True},
             explore=dict(cfg["explore"], temperatures=[300], scalings=[0.0]))
    summary = learn(validate_learn_config(c), progress=False, log=None)
    assert summary["status"] == "converged"
    assert summary["iterations"] == 1 and summary["labels_used"] == 0
    assert not (tmp_path / "conv" / "iter-000" / "labels.db").exists()


def test_settings_errors_are_one_line(emt_setup, tmp_path):
    _, cfg, _ = emt_setup
    with pytest.raises(HdnnpError, match=r"select\.lowr"):
        validate_learn_config(dict(cfg, select={"lowr": 0.1}))
    with pytest.raises(HdnnpError, match="committee must be ≥ 2"):
        validate_learn_config(dict(cfg, train={**cfg["train"], "training": {"committee": 1}}))
    with pytest.raises(HdnnpError, match=r"data\.train is set by hdnnp learn"):
        validate_learn_config(dict(cfg, train={**cfg["train"], "data": {"train": ["x"]}}))
    # a rerun with other settings is refused
    run = tmp_path / "changed"
    learn(validate_learn_config(dict(cfg, output=str(run), stop={"max_iterations": 1},
                                     label={"method": "emt", "in_process": True})),
          progress=False, log=None)
    changed = dict(cfg, output=str(run), stop={"max_iterations": 1},
                   label={"method": "emt", "in_process": True},
                   select={**cfg["select"], "lower": 0.5})
    with pytest.raises(HdnnpError, match="other settings"):
        learn(validate_learn_config(changed), progress=False, log=None)


def test_raising_the_limits_continues_a_stopped_run(emt_setup, tmp_path):
    _, cfg, _ = emt_setup
    base = dict(cfg, output=str(tmp_path / "more"), label={"method": "emt", "in_process": True})
    first = learn(validate_learn_config(dict(base, stop={"max_iterations": 1})),
                  progress=False, log=None)
    assert first["status"] == "max iterations" and first["labels_used"] == 0
    again = learn(validate_learn_config(dict(base, stop={"max_iterations": 2,
                                                         "label_budget": 3})),
                  progress=False, log=None)
    assert again["iterations"] == 2 and again["labels_used"] == 3
    assert again["status"] == "label budget spent"
    assert len(_labels(tmp_path / "more")) == 3
