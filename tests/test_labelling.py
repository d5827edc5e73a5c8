"""Labelling jobs: resumable after SIGKILL, exactly once, failures recorded, provenance."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time

import numpy as np
import pytest
from ase.db import connect

from hdnnp.cli import main
from hdnnp.errors import HdnnpError, MissingDependencyError
from hdnnp.reference_data import augment as aug
from hdnnp.reference_data import structures as st
from hdnnp.reference_data.calculators import ReferenceSettings, isolated_atom_energies
from hdnnp.reference_data.labelling import failures, job_metadata, label, load_labelled


def _structures(n: int, seed: int = 0):
    base = st.hbn((3, 3, 1))
    out = aug.rattles([base], k=n, stdev=0.06, seed=seed)
    for k, a in enumerate(out):
        a.info.update({"temperature_K": 300.0 + 10 * k, "md_step": 1000 * k,
                       "sampler": "extep"})
    return out


def _rows(path):
    con = sqlite3.connect(path, timeout=30)
    try:
        return con.execute("SELECT count(*) FROM systems").fetchone()[0]
    except sqlite3.OperationalError:
        return 0
    finally:
        con.close()


def _by_key(path):
    db = connect(path)
    out = {}
    for row in db.select():
        assert row.key not in out, "structure labelled twice"
        out[row.key] = row
    return out


def test_sigkill_and_resume_labels_each_structure_exactly_once(tmp_path):
    from hdnnp.io import write_structures

    structs = _structures(30)
    inp = tmp_path / "in.extxyz"
    write_structures(inp, structs)
    db = tmp_path / "killed.db"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-c", "import sys; from hdnnp.cli import main; sys.exit(main())",
           "label", str(inp), "-o", str(db), "--quiet"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None and _rows(db) < 3:
        time.sleep(0.02)
    assert proc.poll() is None, "the labelling finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    n_killed = _rows(db)
    assert 3 <= n_killed < 30
    # resume: only the missing structures are labelled
    rc = main(["label", str(inp), "-o", str(db), "--quiet"])
    assert rc == 0
    resumed = _by_key(db)
    assert len(resumed) == 30
    # an uninterrupted run gives the same values
    ref_db = tmp_path / "straight.db"
    from hdnnp.io import read_structures

    summary = label(read_structures(inp), ref_db, progress=False)
    assert summary.labelled == 30 and summary.failed_total == 0
    straight = _by_key(ref_db)
    assert set(straight) == set(resumed)
    for key, row in straight.items():
        other = resumed[key]
        assert other.energy == pytest.approx(row.energy, abs=1e-8)
        assert np.allclose(other.forces, row.forces, atol=1e-8)
        assert other.index == row.index
    # a third run has nothing to do
    again = label(read_structures(inp), db, progress=False)
    assert again.already_done == 30 and again.labelled == 0


def test_failed_scf_is_recorded_and_counted(tmp_path):
    structs = [st.h2(), st.rutile(), st.h2(0.9)]
    structs[1].rattle(0.05, seed=1)
    settings = ReferenceSettings(max_iterations=6)
    db = tmp_path / "f.db"
    s = label(structs, db, settings, progress=False)
    assert (s.labelled, s.failed_now, s.ok_total, s.failed_total) == (3, 1, 2, 1)
    assert "failed" in str(s)
    (idx, err), = failures(db)
    assert idx == 1 and "SCF not converged" in err
    # not retried by default; retried on request (and still failing here)
    s2 = label(structs, db, settings, progress=False)
    assert s2.labelled == 0 and s2.failed_total == 1
    s3 = label(structs, db, settings, progress=False, retry_failed=True)
    assert s3.labelled == 1 and s3.failed_total == 1 and len(_by_key(db)) == 3
    ds = load_labelled(db)
    assert len(ds) == 2


def test_provenance_and_reference_energies(tmp_path):
    structs = _structures(2)
    db = tmp_path / "p.db"
    label(structs, db, progress=False, source="unit test")
    meta = job_metadata(db)
    assert meta["reference_settings"]["method"] == "GFN1-xTB"
    assert meta["versions"]["tblite"] and meta["versions"]["ase"]
    assert meta["reference_energies"] == pytest.approx(isolated_atom_energies(["B", "N"]))
    ds = load_labelled(db)
    assert ds.reference_energies == meta["reference_energies"]
    a = ds[1]
    assert a.info["temperature_K"] == 310.0 and a.info["md_step"] == 1000
    assert a.info["sampler"] == "extep" and a.info["method"] == "GFN1-xTB"
    assert a.info["material"] == "hbn" and a.info["status"] == "ok"
    row = next(connect(db).select(index=1))
    assert row.data["reference_settings"]["electronic_temperature"] == 300.0
    assert "tblite" in row.data["versions"]
    assert a.get_forces().shape == (18, 3)


def test_workers_and_dask_give_the_same_labels(tmp_path):
    structs = _structures(4, seed=5)
    serial = tmp_path / "serial.db"
    label(structs, serial, progress=False)
    par = tmp_path / "par.db"
    label(structs, par, workers=2, progress=False)
    a, b = _by_key(serial), _by_key(par)
    assert set(a) == set(b)
    for k in a:
        assert b[k].energy == pytest.approx(a[k].energy, abs=1e-8)
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster:
        dsk = tmp_path / "dask.db"
        label(structs, dsk, scheduler=cluster.scheduler_address, progress=False)
    c = _by_key(dsk)
    assert set(c) == set(a)
    for k in a:
        assert c[k].energy == pytest.approx(a[k].energy, abs=1e-8)


def test_refuses_mixed_jobs(tmp_path):
    structs = _structures(2)
    db = tmp_path / "m.db"
    label(structs, db, progress=False)
    with pytest.raises(HdnnpError, match="settings"):
        label(structs, db, ReferenceSettings(electronic_temperature=1000), progress=False)
    with pytest.raises(HdnnpError, match="not in this input"):
        label(_structures(2, seed=9), db, progress=False)


def test_postgresql_url_needs_driver(monkeypatch):
    from hdnnp.reference_data import labelling

    monkeypatch.setitem(sys.modules, "psycopg2", None)
    with pytest.raises(MissingDependencyError, match="psycopg2-binary"):
        labelling.connect("postgresql://user:pw@localhost:5432/hdnnp")


def test_cli_errors_are_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.xyz"
    bad.write_text("3\nnot an extxyz comment line\nC 0 0\n")
    assert main(["label", str(bad), "-o", str(tmp_path / "x.db"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("hdnnp: error:") and str(bad) in err and err.count("\n") == 1
    # an element GFN1-xTB does not cover
    from hdnnp.io import write_structures

    u = tmp_path / "u.extxyz"
    write_structures(u, [st.h2().__class__("UO2", positions=[[0, 0, 0], [1.8, 0, 0],
                                                              [-1.8, 0, 0]])])
    assert main(["label", str(u), "-o", str(tmp_path / "u.db"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("hdnnp: error:") and "'U' is not parametrised in GFN1-xTB" in err
    assert err.count("\n") == 1
    # a missing optional dependency (a calculator from a package that is not installed)
    assert main(["label", str(u), "-o", str(tmp_path / "v.db"), "--quiet", "--method",
                 "hdnnp_missing_pkg.calc:Calc"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("hdnnp: error:") and "optional package" in err
    assert err.count("\n") == 1
