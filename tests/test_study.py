"""``hdnnp study``: specification, expansion, resumable running, report."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator
from ase.io import write

from hdnnp.errors import HdnnpError
from hdnnp.studies.presets import PRESETS, preset_spec
from hdnnp.studies.report import study_rows, write_study_report
from hdnnp.studies.runner import StudyRunner
from hdnnp.studies.spec import StudySpec, expand_runs, parse_value, resolve_key


def _morse_dimers(path: Path, n: int = 24, seed: int = 0) -> Path:
    """H2 dimers labelled with a Morse curve (exact forces): cheap data for real runs."""
    rng = np.random.default_rng(seed)
    images = []
    for d in rng.uniform(0.6, 2.5, n):
        de, a, r0 = 4.5, 1.9, 0.74
        x = np.exp(-a * (d - r0))
        e = de * (1 - x) ** 2 - de
        f = 2 * de * a * x * (1 - x)  # -dE/dd
        atoms = Atoms("H2", positions=[[0, 0, 0], [0, 0, d]])
        atoms.calc = SinglePointCalculator(atoms, energy=e,
                                           forces=[[0, 0, -f], [0, 0, f]])
        images.append(atoms)
    write(path, images, format="extxyz")
    return path


def _base(data: Path, epochs: int = 4) -> dict:
    return {"data": {"train": [str(data)], "validation_fraction": 0.25,
                     "test_fraction": 0.25, "seed": 1},
            "descriptor": {"kind": "behler", "elements": ["H"], "functions": [
                {"type": "G2", "center": "H", "neighbours": ["H"], "eta": 0.3, "rs": 0.0,
                 "rc": 6.5}]},
            "network": {"hidden": [2], "activation": "tanh"},
            "training": {"optimizer": "lbfgs", "epochs": epochs, "force_weight": 0.1},
            "figures": False}


def test_keys_resolve_bare_dotted_and_alias_and_refuse_unknown():
    assert resolve_key("optimizer") == "training.optimizer"
    assert resolve_key("hidden") == "network.hidden"
    assert resolve_key("n_structures") == "data.n_structures"
    assert resolve_key("descriptor.radial_rc") == "descriptor.radial_rc"
    assert resolve_key("cutoff") == "cutoff"
    with pytest.raises(HdnnpError, match="no such configuration key"):
        resolve_key("optimiser")
    with pytest.raises(HdnnpError, match="no such configuration key"):
        resolve_key("training.nonsense")


def test_ambiguous_key_names_both_sections():
    with pytest.raises(HdnnpError, match=r"ambiguous: write one of data\.seed, training\.seed"):
        resolve_key("seed")


def test_values_from_the_command_line():
    assert parse_value("4.5") == 4.5
    assert parse_value("adam") == "adam"
    assert parse_value("10-10") == [10, 10]
    assert parse_value("null") is None


def test_grid_zip_seeds_and_alias_applied(tmp_path):
    data = _morse_dimers(tmp_path / "d.extxyz")
    spec = StudySpec(base=_base(data), vary={"hidden": [[2], [3]], "training.epochs": [2, 3]},
                     seeds=2)
    runs = expand_runs(spec)
    assert len(runs) == 2 * 2 * 2
    assert {r.seed for r in runs} == {1, 2}
    assert all(r.config["training"]["seed"] == r.seed for r in runs)
    zipped = expand_runs(spec.model_copy(update={"combine": "zip"}))
    assert len(zipped) == 2 * 2
    assert [r.config["network"]["hidden"] for r in zipped[::2]] == [[2], [3]]
    assert [r.config["training"]["epochs"] for r in zipped[::2]] == [2, 3]
    # the cutoff alias sets both Chebyshev cutoffs, the angular one never above its base
    cheb = dict(_base(data), descriptor={"kind": "chebyshev", "radial_rc": 6.0,
                                         "radial_order": 4, "angular_rc": 4.0,
                                         "angular_order": 2})
    runs = expand_runs(StudySpec(base=cheb, vary={"cutoff": [3.0, 5.0]}))
    assert [(r.config["descriptor"]["radial_rc"], r.config["descriptor"]["angular_rc"])
            for r in runs] == [(3.0, 3.0), (5.0, 4.0)]


def test_a_bad_value_fails_before_any_run_naming_key_and_value(tmp_path):
    data = _morse_dimers(tmp_path / "d.extxyz")
    spec = StudySpec(base=_base(data), vary={"optimizer": ["lbfgs", "adamm"]})
    with pytest.raises(HdnnpError, match=r"optimizer=adamm.*training\.optimizer"):
        StudyRunner(spec, tmp_path / "study")
    assert not (tmp_path / "study").exists()


def test_every_preset_expands_to_valid_runs(tmp_path):
    for name in PRESETS:
        runs = expand_runs(preset_spec(name, epochs=5, directory=tmp_path))
        assert len(runs) >= 3, name
        assert len({r.name for r in runs}) == len(runs)


def test_study_cli_errors_are_one_line(tmp_path):
    out = subprocess.run([sys.executable, "-m", "hdnnp", "study", "--preset", "nope", "-o",
                          str(tmp_path / "s")], capture_output=True, text=True)
    assert out.returncode == 2
    assert "unknown study preset 'nope'" in out.stderr
    assert "Traceback" not in out.stderr


def _study_command(spec_file: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "hdnnp", "study", str(spec_file), "-o", str(out), "--quiet"]


@pytest.mark.slow
def test_study_is_resumable_after_kill_and_reports_the_validation_choice(tmp_path):
    """Kill the study (SIGKILL) after its first run finished, rerun: the finished run is
    not trained again, the killed one is resumed or redone, each epoch logged once."""
    data = _morse_dimers(tmp_path / "d.extxyz")
    spec_file = tmp_path / "study.json"
    spec_file.write_text(json.dumps({"name": "tiny", "base": _base(data, epochs=30),
                                     "vary": {"hidden": [[1], [4]]}}))
    out = tmp_path / "study"
    proc = subprocess.Popen(_study_command(spec_file, out), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True)
    first = out / "runs" / "hidden-1_seed-1" / "metrics.json"
    deadline = time.time() + 240
    while not first.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.2)
    assert first.exists(), proc.communicate()[1][-2000:]
    os.kill(proc.pid, signal.SIGKILL)  # the child training dies with it (PDEATHSIG)
    proc.wait()
    stamp = first.stat().st_mtime_ns
    time.sleep(0.5)
    second_log = out / "runs" / "hidden-4_seed-1" / "log.jsonl"
    size = second_log.stat().st_size if second_log.exists() else -1
    time.sleep(1.0)  # an orphaned trainer would still be writing
    assert (second_log.stat().st_size if second_log.exists() else -1) == size
    done = subprocess.run(_study_command(spec_file, out), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert first.stat().st_mtime_ns == stamp  # not trained again
    epochs = [json.loads(line)["epoch"] for line in second_log.read_text().splitlines()]
    assert epochs == sorted(set(epochs)) and epochs[-1] == 30
    summary = json.loads((out / "summary.json").read_text())
    rows = summary["rows"]
    key = "validation mean"
    assert summary["chosen"] == min(rows, key=lambda r: r[key])["setting"]
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") >= 2
    # the same study again is refused in the same directory with other runs
    spec_file.write_text(json.dumps({"name": "tiny", "base": _base(data, epochs=30),
                                     "vary": {"hidden": [[1], [5]]}}))
    again = subprocess.run(_study_command(spec_file, out), capture_output=True, text=True)
    assert again.returncode == 2 and "holds a different study" in again.stderr


def test_report_of_an_unfinished_study_lists_runs_without_numbers(tmp_path):
    data = _morse_dimers(tmp_path / "d.extxyz")
    runner = StudyRunner(StudySpec(base=_base(data), vary={"hidden": [[1], [2]]}),
                         tmp_path / "s")
    rows, chosen = study_rows(runner)
    assert chosen is None and [r["runs done"] for r in rows] == ["0/1", "0/1"]
    html = write_study_report(runner)
    assert "no rows" not in html.read_text() and html.exists()
