"""Labelling database integrity on PostgreSQL (issue 10, item 4): the same unique job key
as on SQLite, two concurrent writers, duplicates refused.

A throw-away PostgreSQL server is started in a temporary directory (``initdb`` +
``pg_ctl``, Unix socket only; as user ``nobody`` when the tests run as root, which
PostgreSQL refuses).  Skipped with the reason when the server programs or the Python
packages (``pip install 'hdnnp[postgresql]'``) are missing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from urllib.parse import quote

import pytest

from hdnnp.errors import HdnnpError
from hdnnp.reference_data.labelling import connect, label, load_labelled
from test_labelling_integrity import EMT, _copper

PORT = 54000 + os.getpid() % 1000


def _server_programs():
    for name in ("initdb", "pg_ctl"):
        if shutil.which(name) is None:
            for cand in sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}")):
                return cand.parent
            return None
    return Path(shutil.which("initdb")).parent


@pytest.fixture(scope="module")
def postgres_url():
    pytest.importorskip("psycopg2", reason="PostgreSQL tests need pip install 'hdnnp[postgresql]'")
    pytest.importorskip("ase_db_backends",
                        reason="PostgreSQL tests need pip install 'hdnnp[postgresql]'")
    bindir = _server_programs()
    if bindir is None:
        pytest.skip("no PostgreSQL server programs (initdb, pg_ctl) on this machine")
    # not under pytest's tmp_path: its parents are private to root, and a Unix socket path
    # must stay short
    root = Path(tempfile.mkdtemp(prefix="hdnnp-pg-"))
    as_user = []
    if os.geteuid() == 0:
        if shutil.which("runuser") is None:
            pytest.skip("running as root without runuser: PostgreSQL refuses to run as root")
        os.chmod(root, 0o777)
        as_user = ["runuser", "-u", "nobody", "--"]
    data = root / "data"
    run = subprocess.run([*as_user, str(bindir / "initdb"), "-D", str(data), "-A", "trust",
                          "-U", "hdnnp"], capture_output=True, text=True, timeout=120)
    if run.returncode:
        pytest.skip(f"initdb failed: {run.stderr.strip().splitlines()[-1:]}")
    run = subprocess.run([*as_user, str(bindir / "pg_ctl"), "-D", str(data), "-l",
                          str(root / "log"), "-w", "-o",
                          f"-k {root} -p {PORT} -c listen_addresses=''", "start"],
                         capture_output=True, text=True, timeout=120)
    if run.returncode:
        pytest.skip(f"PostgreSQL did not start: {run.stderr.strip()[-300:]}")
    try:
        yield root, f"postgresql://hdnnp@{quote(str(root), safe='')}:{PORT}/postgres"
    finally:
        subprocess.run([*as_user, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate",
                        "stop"], capture_output=True, timeout=120)
        shutil.rmtree(root, ignore_errors=True)


def _fresh(root: Path, url: str, name: str) -> str:
    import psycopg2

    con = psycopg2.connect(host=str(root), port=PORT, user="hdnnp", dbname="postgres")
    con.autocommit = True
    con.cursor().execute(f"CREATE DATABASE {name}")
    con.close()
    return url.rsplit("/", 1)[0] + f"/{name}"


def test_postgresql_refuses_a_second_row_with_the_same_key(postgres_url):
    import psycopg2

    root, url = postgres_url
    db_url = _fresh(root, url, "single")
    label(_copper(4), db_url, EMT, progress=False, in_process=True)
    db = connect(db_url)
    row = next(db.select(index=1))
    with pytest.raises(psycopg2.IntegrityError):
        db.write(row.toatoms(), key_value_pairs=dict(row.key_value_pairs))
    again = label(_copper(4), db_url, EMT, progress=False, in_process=True)
    assert again.already_done == 4 and again.labelled == 0
    assert len(load_labelled(db_url)) == 4


def test_postgresql_two_writers_store_each_structure_once(postgres_url, tmp_path):
    root, url = postgres_url
    db_url = _fresh(root, url, "shared")
    go = tmp_path / "go"
    script = textwrap.dedent(f"""
        import os, sys, time
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        import hdnnp.reference_data.labelling as lab
        from hdnnp.reference_data.labelling import label
        from hdnnp.reference_data.calculators import single_point
        from test_labelling_integrity import EMT, _copper

        def slow_single_point(atoms, settings):
            time.sleep(0.02)
            return single_point(atoms, settings)

        lab.single_point = slow_single_point
        structs = _copper(60)
        open({str(tmp_path)!r} + f"/ready-{{os.getpid()}}", "w").close()
        while not os.path.exists({str(go)!r}):
            time.sleep(0.005)
        s = label(structs, {db_url!r}, EMT, progress=False, in_process=True)
        print(s.labelled, s.by_other_writer)
    """)
    procs = [subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    deadline = time.monotonic() + 120
    while len(list(tmp_path.glob("ready-*"))) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    go.touch()
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (_, err) in zip(procs, outs):
        assert p.returncode == 0, err[-2000:]
    keys = [row.key for row in connect(db_url).select()]
    assert len(keys) == 60 and len(set(keys)) == 60, "a structure was stored twice"
    assert sum(int(out.split()[0]) for out, _ in outs) == 60
    assert len(load_labelled(db_url)) == 60


def test_postgresql_without_the_packages_names_the_extra(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_backends(name, *args, **kwargs):
        if name == "ase_db_backends":
            raise ImportError("no", name=name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_backends)
    with pytest.raises(HdnnpError, match=r"ase-db-backends.*hdnnp\[postgresql\]"):
        connect("postgresql://user@localhost:5432/x")
