"""``hdnnp rdm generate``: seeded, resumable, parallel data sets; one-line errors."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

from hdnnp.cli import main
from hdnnp.errors import HdnnpError
from hdnnp.rdm.generate import GenerationSettings, generate_dataset, load_dataset
from hdnnp.rdm.potentials import PotentialFamily, system_coefficients
from hdnnp.rdm.solver import Grid, solve_ground_state

KEYS = ("x", "coefficients", "potential", "density", "rdm", "occupations", "energy/total",
        "energy/kinetic", "energy/external", "energy/interaction")


def _settings(**kw):
    base = {"n_systems": 13, "chunk_size": 4, "seed": 5, "points": 20, "half_width": 8.0}
    return GenerationSettings(**(base | kw))


def _arrays(path):
    with h5py.File(path, "r") as f:
        return {k: f[k][()] for k in KEYS}


def _same(a, b):
    return all(np.array_equal(a[k], b[k]) for k in KEYS)


def test_interrupted_run_completes_to_the_same_file_as_one_run(tmp_path):
    s = _settings()
    one = tmp_path / "one.h5"
    prov = generate_dataset(one, s, progress=False)
    assert prov["complete"] and one.is_file()
    assert not (tmp_path / "one.h5.parts").exists()
    two = tmp_path / "two.h5"
    part = generate_dataset(two, s, progress=False, stop_after_chunks=2)
    assert not part["complete"] and not two.exists()
    chunks = sorted(p.name for p in (tmp_path / "two.h5.parts").glob("chunk-*.npz"))
    assert chunks == ["chunk-000000.npz", "chunk-000001.npz"]
    before = (tmp_path / "two.h5.parts" / "chunk-000000.npz").stat().st_mtime_ns
    generate_dataset(two, s, progress=False, stop_after_chunks=1)   # one more chunk
    assert (tmp_path / "two.h5.parts" / "chunk-000000.npz").stat().st_mtime_ns == before
    generate_dataset(two, s, progress=False)
    assert _same(_arrays(one), _arrays(two))
    # two workers, another chunk size: the same systems
    three = tmp_path / "three.h5"
    generate_dataset(three, _settings(chunk_size=3), workers=2, progress=False)
    assert _same(_arrays(one), _arrays(three))


def test_seeded_systems_and_provenance(tmp_path):
    s = _settings(n_systems=4, chunk_size=4)
    path = tmp_path / "d.h5"
    generate_dataset(path, s, progress=False)
    ds = load_dataset(path)
    prov = ds.provenance
    assert prov["settings"]["seed"] == 5 and prov["settings"]["stencil"] == 7
    assert {"numpy", "scipy", "h5py", "hdnnp"} <= set(prov["versions"])
    assert prov["timings"]["chunk_cpu_s_total"] > 0
    # system 2 is reproduced from (seed, 2) alone
    fam, grid = PotentialFamily(), Grid(20, 8.0, 7)
    a, b = system_coefficients(5, 2, fam)
    gs = solve_ground_state(fam.evaluate(grid.x, a, b), grid)
    assert np.array_equal(ds.potential[2], fam.evaluate(grid.x, a, b))
    assert np.max(np.abs(ds.rdm[2] - gs.rdm)) < 1e-12
    assert ds.energies["total"][2] == pytest.approx(gs.energy, abs=1e-12)
    other = tmp_path / "e.h5"
    generate_dataset(other, _settings(n_systems=4, chunk_size=4, seed=6), progress=False)
    assert not np.allclose(load_dataset(other).potential, ds.potential)
    # coefficients drawn from U[-10, 10]
    with h5py.File(path) as f:
        c = f["coefficients"][()]
    assert c.shape == (4, 6) and np.all(np.abs(c) <= 10)


def test_bad_files_are_one_line_errors_naming_file_and_key(tmp_path):
    junk = tmp_path / "junk.h5"
    junk.write_text("not hdf5")
    with pytest.raises(HdnnpError, match=r"junk\.h5: not an HDF5"):
        load_dataset(junk)
    with pytest.raises(HdnnpError, match="no such data set"):
        load_dataset(tmp_path / "missing.h5")
    path = tmp_path / "d.h5"
    generate_dataset(path, _settings(n_systems=3, chunk_size=3), progress=False)
    with h5py.File(path, "a") as f:
        del f["rdm"]
    with pytest.raises(HdnnpError, match=r"d.h5: key 'rdm' is missing"):
        load_dataset(path)
    with h5py.File(path, "a") as f:
        f["density"][0, 0] = np.nan
    with pytest.raises(HdnnpError, match=r"key 'density' has non-finite"):
        load_dataset(path)
    with h5py.File(path, "a") as f:
        f.attrs["provenance"] = json.dumps({"format": "something else"})
    with pytest.raises(HdnnpError, match="not an hdnnp 1-RDM data set"):
        load_dataset(path)
    # an unfinished data set with other settings is not mixed with these
    out = tmp_path / "p.h5"
    generate_dataset(out, _settings(), progress=False, stop_after_chunks=1)
    with pytest.raises(HdnnpError, match=r"other settings.*seed"):
        generate_dataset(out, _settings(seed=9), progress=False)


def test_damaged_files_never_crash_the_loader(tmp_path):
    path = tmp_path / "d.h5"
    generate_dataset(path, _settings(n_systems=3, chunk_size=3), progress=False)
    data = path.read_bytes()
    rng = np.random.default_rng(0)
    bad = tmp_path / "bad.h5"
    outcomes = set()
    for trial in range(40):
        b = bytearray(data)
        if trial % 4 == 0:
            b = b[: rng.integers(0, len(b))]
        else:
            for pos in rng.integers(0, len(b), size=8):
                b[pos] = rng.integers(0, 256)
        bad.write_bytes(bytes(b))
        try:
            load_dataset(bad)
            outcomes.add("read")
        except HdnnpError as exc:
            assert "bad.h5" in str(exc) and "\n" not in str(exc)
            outcomes.add("error")
    assert "error" in outcomes


def test_generate_command_and_its_errors(tmp_path, capsys):
    out = tmp_path / "c.h5"
    assert main(["rdm", "generate", "-o", str(out), "--systems", "3", "--points", "16",
                 "--half-width", "6", "--stencil", "5", "--quiet"]) == 0
    ds = load_dataset(out)
    assert ds.rdm.shape == (3, 16, 16) and ds.stencil == 5
    capsys.readouterr()
    assert main(["rdm", "generate", "-o", str(tmp_path / "x.h5"), "--workers", "two"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("hdnnp: error:") and "\n" not in err and "--workers" in err
    assert main(["rdm", "pca", str(tmp_path / "nothing.h5"), "-o", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "nothing.h5" in err and "\n" not in err
