"""Training-data selection keys (issue 13): ``data.where``, the MD snapshot interval
(thesis §3.4.3) and the augmented fraction (thesis fig. 4.10), checked against naive
selections of hand-made snapshots."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms

from hdnnp.data import Dataset
from hdnnp.errors import HdnnpError
from hdnnp.training.config import load_config
from hdnnp.training.datasets import prepare_splits


def _snapshots(n_per_t=12, temperatures=(300.0, 1000.0), scaled=10):
    """MD snapshots (md_step 100, 200, ... shuffled) at two temperatures, and ``scaled``
    augmented copies of the 300 K ones; plus one exact duplicate of an MD snapshot marked
    as set B's (as bundled B repeats set A's MD geometry)."""
    rng = np.random.default_rng(0)
    frames = []
    for t in temperatures:
        for step in rng.permutation(n_per_t):
            a = Atoms("H2", positions=[[0, 0, 0], [0, 0, 0.7 + 0.001 * step + t * 1e-4]],
                      cell=[5, 5, 5], pbc=True)
            a.info.update({"md_step": int(100 * (step + 1)), "temperature_K": t,
                           "sampler": "morse", "seed": 1, "augmentation": "none",
                           "dataset": "A"})
            a.calc = None
            frames.append(a)
    for k in range(scaled):
        a = frames[k].copy()
        a.positions *= 1.0 + 0.01 * (k + 1)
        a.info.update({"augmentation": "scale", "dataset": "B"})
        frames.append(a)
    twin = frames[0].copy()
    twin.info.update({"dataset": "B"})
    frames.append(twin)
    for a in frames:
        a.info["energy"] = -1.0
    return frames


def _dataset(frames) -> Dataset:
    return Dataset(frames, {}, require_energy=False, validate=False)


def test_snapshot_interval_keeps_every_kth_per_trajectory_in_md_order():
    ds = _dataset(_snapshots()).where(["augmentation=none", "dataset=A"])
    for interval, per in ((1, None), (2, None), (3, 2), (4, 3)):
        got = ds.snapshots(interval, per)
        by_t: dict[float, list[int]] = {}
        for a in got:
            by_t.setdefault(float(a.info["temperature_K"]), []).append(int(a.info["md_step"]))
        for t, steps in by_t.items():
            expected = list(range(100, 1300, 100 * interval))[:per]
            assert sorted(steps) == expected, (interval, per, t)
        assert len(by_t) == 2


def test_snapshot_interval_needs_md_steps():
    frames = _snapshots()
    del frames[3].info["md_step"]
    with pytest.raises(HdnnpError, match="no md_step"):
        _dataset(frames).snapshots(2)


def test_augmented_mix_counts_duplicates_once_and_is_seeded():
    ds = _dataset(_snapshots())
    for fraction, n in ((0.0, 20), (0.25, 20), (0.5, 20), (1.0, 10)):
        mix = ds.augmented_mix(fraction, n, seed=3)
        kinds = [a.info["augmentation"] for a in mix]
        assert len(mix) == n and kinds.count("scale") == round(fraction * n)
        geometries = {a.positions.tobytes() for a in mix}
        assert len(geometries) == n  # the B twin of an A snapshot never comes twice
        again = ds.augmented_mix(fraction, n, seed=3)
        assert [a.info["md_step"] for a in again] == [a.info["md_step"] for a in mix]
    # 24 MD snapshots + 1 twin: only 24 distinct MD geometries
    with pytest.raises(HdnnpError, match="needs 25 MD structures; the data have 24"):
        ds.augmented_mix(0.0, 25)
    with pytest.raises(HdnnpError, match="needs 11 augmented"):
        ds.augmented_mix(1.0, 11)


def _config(tmp_path, data_lines: str):
    from hdnnp.io import write_structures

    write_structures(tmp_path / "d.extxyz", _snapshots())
    path = tmp_path / "c.yaml"
    path.write_text(f"data:\n  train: [{tmp_path / 'd.extxyz'}]\n{data_lines}"
                    "  validation_fraction: 0.0\n  test_fraction: 0.0\n")
    return load_config(path)


def test_selection_keys_in_a_run(tmp_path):
    splits, info = prepare_splits(_config(
        tmp_path, "  where: [dataset=A]\n  snapshot_interval: 2\n"
                  "  snapshots_per_trajectory: 5\n"))
    assert info["after_where"] == 24 and info["after_snapshots"] == 10
    assert sorted({int(a.info["md_step"]) for a in splits["train"]}) == [100, 300, 500, 700, 900]
    splits, info = prepare_splits(_config(
        tmp_path, "  augmented_fraction: 0.5\n  n_structures: 16\n"))
    assert [a.info["augmentation"] for a in splits["train"]].count("scale") == 8


@pytest.mark.parametrize("lines, message", [
    ("  augmented_fraction: 0.5\n", "augmented_fraction: needs data.n_structures"),
    ("  where: [temperature_K]\n", "where: a condition expects KEY=VALUE"),
    ("  augmented_fraction: 1.5\n  n_structures: 4\n", "augmented_fraction"),
])
def test_selection_key_errors_name_the_key(tmp_path, lines, message):
    with pytest.raises(HdnnpError, match=message) as err:
        _config(tmp_path, lines)
    assert "\n" not in str(err.value)
