"""Labelling databases: one row per structure even with concurrent writers (issue 10, item 4),
reference energies kept by ``data export``/``select``, ``--method dftb`` without
Slater–Koster files refused before any work."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from ase.calculators.singlepoint import SinglePointCalculator
from ase.db import connect

from hdnnp.cli import main
from hdnnp.data import load_dataset
from hdnnp.errors import HdnnpError
from hdnnp.reference_data.calculators import ReferenceSettings, check_calculator_files
from hdnnp.reference_data.labelling import duplicate_keys, label, load_labelled

EMT = ReferenceSettings(method="emt")  # the cheapest method ASE has: microseconds each


def _copper(n: int, seed: int = 0) -> list[Atoms]:
    rng = np.random.default_rng(seed)
    base = bulk("Cu", "fcc", a=3.6, cubic=True)
    out = []
    for k in range(n):
        a = base.copy()
        a.positions += rng.normal(0.0, 0.05, a.positions.shape)
        a.info["source"] = f"copper {k}"
        out.append(a)
    return out


def _keys(path) -> list[str]:
    return [row.key for row in connect(str(path)).select()]


def test_two_processes_label_each_structure_once(tmp_path):
    from hdnnp.io import write_structures

    structs = _copper(120)
    inp = tmp_path / "in.extxyz"
    write_structures(inp, structs)
    db = tmp_path / "shared.db"
    go = tmp_path / "go"
    script = textwrap.dedent(f"""
        import os, sys, time
        import hdnnp.reference_data.labelling as lab
        from hdnnp.io import read_structures
        from hdnnp.reference_data.labelling import label
        from hdnnp.reference_data.calculators import ReferenceSettings, single_point

        def slow_single_point(atoms, settings):  # a real method takes a while
            time.sleep(0.02)
            return single_point(atoms, settings)

        lab.single_point = slow_single_point
        structs = read_structures({str(inp)!r})
        for a in structs:
            a.calc = None
        open({str(tmp_path)!r} + f"/ready-{{os.getpid()}}", "w").close()
        while not os.path.exists({str(go)!r}):  # start both at the same moment
            time.sleep(0.005)
        s = label(structs, {str(db)!r}, ReferenceSettings(method="emt"), progress=False,
                  in_process=True)
        print(s.labelled, s.by_other_writer, s.ok_total)
    """)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    procs = [subprocess.Popen([sys.executable, "-c", script], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    deadline = time.monotonic() + 120  # both imported and waiting: start them together
    while len(list(tmp_path.glob("ready-*"))) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    go.touch()
    outs = [p.communicate(timeout=180) for p in procs]
    for p, (_, err) in zip(procs, outs):
        assert p.returncode == 0, err
    keys = _keys(db)
    assert len(keys) == 120 and len(set(keys)) == 120, "a structure was stored twice"
    labelled = [int(out.split()[0]) for out, _ in outs]
    assert sum(labelled) == 120  # the two writers shared the work, none of it twice
    # each structure was computed by at least one writer and stored by exactly one: what
    # one writer skipped or had refused, the other stored
    others = [int(out.split()[1]) for out, _ in outs]
    assert sum(labelled) + sum(others) >= 120
    for out, _ in outs:
        assert int(out.split()[2]) <= 120
    ds = load_labelled(db)
    assert len(ds) == 120 and sorted(ds.names) == sorted(set(ds.names))


def test_database_refuses_a_second_row_with_the_same_key(tmp_path):
    db = tmp_path / "labels.db"
    label(_copper(3), db, EMT, progress=False, in_process=True)
    conn = connect(str(db))
    row = next(conn.select(index=1))
    with pytest.raises(sqlite3.IntegrityError):
        conn.write(row.toatoms(), key_value_pairs=dict(row.key_value_pairs))
    assert len(_keys(db)) == 3  # the refused write left nothing behind


def _inject_duplicate(db) -> tuple[str, list[int]]:
    """A duplicated row as an older hdnnp (no unique index) or a hand edit leaves it."""
    con = sqlite3.connect(db)
    con.execute("DROP INDEX hdnnp_unique_job_key")
    con.commit()
    con.close()
    conn = connect(str(db))
    row = next(conn.select(index=1))
    new_id = conn.write(row.toatoms(), key_value_pairs=dict(row.key_value_pairs))
    return row.key, [row.id, new_id]


def test_duplicate_rows_are_refused_by_load_dataset_and_label(tmp_path, capsys):
    db = tmp_path / "labels.db"
    structs = _copper(3)
    label(structs, db, EMT, progress=False, in_process=True)
    key, ids = _inject_duplicate(db)
    assert duplicate_keys(connect(str(db))) == {key: ids}
    with pytest.raises(HdnnpError, match=f"{key} is stored in rows {ids[0]}, {ids[1]}"):
        load_dataset(str(db))
    with pytest.raises(HdnnpError, match=key):
        label(structs, db, EMT, progress=False, in_process=True)
    rc = main(["data", "summary", str(db)])
    err = capsys.readouterr().err
    assert rc == 2 and key in err and len(err.strip().splitlines()) == 1


def test_cli_label_cooperates_with_a_finished_writer(tmp_path, capsys):
    from hdnnp.io import write_structures

    inp = tmp_path / "in.extxyz"
    write_structures(inp, _copper(4))
    db = tmp_path / "labels.db"
    for _ in range(2):
        rc = main(["label", str(inp), "-o", str(db), "--method", "emt", "--quiet"])
        assert rc == 0
    assert len(_keys(db)) == 4 and "4 already present" in capsys.readouterr().out


def test_label_exit_status_is_1_when_structures_failed(tmp_path, monkeypatch, capsys):
    import hdnnp.reference_data.labelling as lab
    from hdnnp.io import write_structures
    from hdnnp.reference_data.calculators import SCFError

    inp = tmp_path / "in.extxyz"
    write_structures(inp, _copper(3))
    original_label, original_single_point = lab.label, lab.single_point

    calls = []

    def failing_single_point(atoms, settings):
        calls.append(1)
        if len(calls) == 2:
            raise SCFError("SCF did not converge")
        return original_single_point(atoms, settings)

    monkeypatch.setattr(lab, "label", lambda *a, **k: original_label(*a, **k, in_process=True))
    monkeypatch.setattr(lab, "single_point", failing_single_point)
    db = tmp_path / "labels.db"
    rc = main(["label", str(inp), "-o", str(db), "--method", "emt", "--quiet"])
    captured = capsys.readouterr()
    assert rc == 1 and "1 structure(s) failed" in captured.err and "--retry-failed" in \
        captured.err
    monkeypatch.setattr(lab, "single_point", original_single_point)
    rc = main(["label", str(inp), "-o", str(db), "--method", "emt", "--quiet",
               "--retry-failed"])
    assert rc == 0 and len(_keys(db)) == 3


# ------------------------------------------------------------ dftb parameter files
def test_dftb_without_slater_koster_files_is_one_line_before_any_job(tmp_path, monkeypatch,
                                                                    capsys):
    from hdnnp.io import write_structures

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DFTB_PREFIX", raising=False)
    inp = tmp_path / "in.extxyz"
    write_structures(inp, [Atoms("CH4", positions=np.vstack([np.zeros(3), np.eye(3) * 1.1,
                                                          [[-0.6, -0.6, -0.6]]]), cell=[8] * 3,
                                 pbc=True)])
    rc = main(["label", str(inp), "-o", str(tmp_path / "l.db"), "--method", "dftb",
               "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2 and len(err.strip().splitlines()) == 1
    for name in ("C-C.skf", "C-H.skf", "H-C.skf", "H-H.skf", "DFTB_PREFIX"):
        assert name in err
    assert not (tmp_path / "l.db").exists() or not _keys(tmp_path / "l.db")


def test_dftb_files_found_in_slako_dir(tmp_path):
    for pair in ("C-C", "C-H", "H-C", "H-H"):
        (tmp_path / f"{pair}.skf").write_text("")
    check_calculator_files(ReferenceSettings(method="dftb", calculator_kwargs={
        "slako_dir": str(tmp_path)}), ["C", "H"])
    (tmp_path / "H-C.skf").unlink()
    with pytest.raises(HdnnpError, match=r"H-C\.skf"):
        check_calculator_files(ReferenceSettings(method="dftb", calculator_kwargs={
            "slako_dir": str(tmp_path)}), ["C", "H"])


# ------------------------------------------------------------ reference energies kept
@pytest.fixture
def labelled_db(tmp_path):
    db = tmp_path / "labels.db"
    label(_copper(6), db, EMT, progress=False, in_process=True)
    return db


@pytest.mark.parametrize("suffix", [".extxyz", ".db"])
def test_export_and_select_keep_reference_energies(labelled_db, tmp_path, suffix):
    ref = load_labelled(labelled_db).reference_energies
    assert set(ref) == {"Cu"} and np.isfinite(ref["Cu"])
    out = tmp_path / f"exported{suffix}"
    assert main(["data", "export", str(labelled_db), "-o", str(out)]) == 0
    sel = tmp_path / f"selected{suffix}"
    assert main(["data", "select", str(out), "--n", "3", "-o", str(sel)]) == 0
    from hdnnp.cli.cmd_data import read_inputs

    for path in (out, sel):
        ds = read_inputs([str(path)])
        assert ds.reference_energies == ref
        # the data layer reads them, so ``hdnnp train exported.extxyz`` gets them too
        assert load_dataset(str(path)).reference_energies == ref
        assert not any(k.startswith("reference_energy_") for a in ds for k in a.info)
    # cohesive energies are those of the labelling database
    full = load_labelled(labelled_db)
    np.testing.assert_allclose(np.sort(read_inputs([str(out)]).cohesive_energies()),
                               np.sort(full.cohesive_energies()))


def test_conflicting_reference_energies_in_one_file_are_refused(tmp_path):
    from hdnnp.data import reference_energies_from_info

    a, b = _copper(2)
    for atoms, e in ((a, -1.0), (b, -2.0)):
        atoms.calc = SinglePointCalculator(atoms, energy=0.0)
        atoms.info["reference_energy_Cu"] = e
    with pytest.raises(HdnnpError, match="copper 1"):
        reference_energies_from_info([a, b])
