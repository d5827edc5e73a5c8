"""``hdnnp reproduce``: the whole pipeline on a small draw of graphene A and B."""

from __future__ import annotations

import json

import pytest

from hdnnp.errors import HdnnpError
from hdnnp.reproduce.pipeline import ReproduceSettings, _check_material, reproduce


def test_unknown_material_names_those_with_sets_a_and_b():
    with pytest.raises(HdnnpError, match=r"materials with sets A and B: .*graphene"):
        _check_material("unobtainium")


@pytest.mark.slow
def test_reproduce_graphene_small_writes_every_part_and_resumes(tmp_path):
    # the studies are hdnnp study presets (tests/test_study.py); left out here for time
    settings = ReproduceSettings(epochs=3, study_epochs=1, seeds=1, jobs=2, scan_points=5,
                                 n_structures=40, studies=())
    out = tmp_path / "rep"
    summary = reproduce("graphene", out, settings, progress=False)
    for key in ("model_A_scaled_mae_meV_per_atom", "model_B_scaled_mae_meV_per_atom",
                "model_A_original_mae_meV_per_atom", "model_B_original_force_pearson_r",
                "wall_s"):
        assert summary[key] is not None, key
    # the test sets: originals never in B's training set, scaled never in A's or B's
    cmp = json.loads((out / "compare" / "metrics.json").read_text())
    assert set(cmp) == {"A", "B"} and set(cmp["A"]) == {"original", "scaled"}
    html = (out / "report.html").read_text()
    for part in ("loss_A_vs_B", "energy_parity_A", "force_parity_B", "energy_error_hist",
                 "energy_distribution", "scan", "hdnnp reproduce graphene",
                 "0.77 (fig. 5.13)"):
        assert part in html, part
    assert "was not made" not in html
    assert html.count("data:image/png;base64,") >= 9
    stamp = (out / "compare" / "metrics.json").stat().st_mtime_ns
    again = reproduce("graphene", out, settings, progress=False)  # resumes: nothing redone
    assert (out / "compare" / "metrics.json").stat().st_mtime_ns == stamp
    assert again["model_A_scaled_mae_meV_per_atom"] == summary[
        "model_A_scaled_mae_meV_per_atom"]
