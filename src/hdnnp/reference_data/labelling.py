"""Resumable labelling of structures with the reference method into an ASE database.

A labelling job computes energy (eV) and forces (eV/Å) for every input structure and
writes each result to an ASE database as soon as it is available — SQLite by default
(a ``.db`` path), ASE's PostgreSQL backend for a ``postgresql://user:pw@host/db`` URL
when several machines write to one store.  Work is never lost:

* Every input structure has a *job key* ``<index>-<hash>`` (its position in the input
  and a SHA-256 of numbers, positions, cell and pbc).  A row is written in one
  database transaction, so after a crash (even SIGKILL) a structure is either fully
  recorded or absent; re-running the same command labels exactly the missing ones.
* The job key is unique *in the database*, not only in this process: a partial unique
  index ``hdnnp_unique_job_key`` on ASE's ``text_key_values(value) WHERE key = 'key'``
  (created by :func:`label`, same SQL on SQLite and PostgreSQL; see
  :func:`ensure_unique_job_keys`) makes the database itself refuse a second row with
  the same key, inside the transaction that writes the row, so the row is either
  stored once or not at all.  Two ``hdnnp label`` processes (or machines) on one
  database therefore *cooperate*: each skips structures already in the database
  before it starts them, and when both finish the same structure at once the second
  write is refused by the index and dropped (counted as "labelled by another
  writer").  Every structure ends up exactly once.
* Reading refuses a database that holds a job key twice (written by an older hdnnp
  without the index, or by hand): :func:`load_labelled` names the key and its rows.
* A structure whose SCF fails is recorded as ``status="failed"`` with its error and
  is not retried (``retry_failed=True`` retries it); the summary counts failures.
* Labels do not depend on the order of work or the number of workers: each
  structure gets a fresh calculator (no wavefunction reuse), so a resumed or parallel
  run gives the same values as an uninterrupted serial one.

Workers: ``workers=N`` runs N single-threaded processes (``OMP_NUM_THREADS=1``; two
one-thread processes beat one two-thread process for tblite).  ``scheduler=ADDRESS``
farms the single points to a dask.distributed scheduler (``pip install
'hdnnp[cluster]'``); results still stream back to the one writer.

Provenance: each row keeps the structure's own ``info`` (material, temperature_K,
md_step, md_time_fs, scale_factor, sampler, augmentation …) as key–value pairs, plus
``method``, ``status``, ``key``, ``index``, ``label_wall_s``, and in ``data`` the
reference settings, program versions and host.  The database's metadata holds the
job: settings, versions, isolated-atom reference energies (thesis eq. 4.3) and the
input's description.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from ase import Atoms

from hdnnp.dataset import Dataset
from hdnnp.errors import HdnnpError, MissingDependencyError
from hdnnp.reference_data.calculators import (
    ReferenceSettings,
    SCFError,
    check_calculator_files,
    check_elements,
    isolated_atom_energies,
    program_versions,
    single_point,
)

_WORD_OK = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")


def structure_hash(atoms: Atoms) -> str:
    """SHA-256 (hex) of atomic numbers, positions, cell and pbc (exact float bytes)."""
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(atoms.numbers, dtype=np.int64).tobytes())
    h.update(np.ascontiguousarray(atoms.positions, dtype=np.float64).tobytes())
    h.update(np.ascontiguousarray(atoms.cell.array, dtype=np.float64).tobytes())
    h.update(np.asarray(atoms.pbc, dtype=bool).tobytes())
    return h.hexdigest()


def job_key(index: int, atoms: Atoms) -> str:
    return f"{index:08d}-{structure_hash(atoms)[:16]}"


@dataclass
class LabelSummary:
    """What a labelling run did."""

    database: str
    total: int
    already_done: int
    labelled: int
    failed_now: int
    ok_total: int
    failed_total: int
    wall_s: float
    by_other_writer: int = 0

    def __str__(self) -> str:
        other = (f", {self.by_other_writer} by another writer" if self.by_other_writer
                 else "")
        return (f"{self.database}: {self.total} structures; {self.already_done} already "
                f"present, {self.labelled} labelled now ({self.failed_now} failed){other}; "
                f"database holds {self.ok_total} labelled and {self.failed_total} failed; "
                f"{self.wall_s:.1f} s")


# ------------------------------------------------------------------ database access
#: SQL of the database-level uniqueness of job keys.  ASE stores string key–value pairs
#: in the table ``text_key_values(key TEXT, value TEXT, id INTEGER)`` on both its SQLite
#: and its PostgreSQL backend (``ase-db-backends``); a *partial* unique index over the
#: rows of the key ``key`` makes a second row with the same job key fail with an
#: IntegrityError (SQLite) / UniqueViolation (PostgreSQL, an IntegrityError subclass)
#: inside the transaction of ``db.write``, which ASE then rolls back, so neither the
#: ``systems`` row nor any of its key-value rows is kept.  ``CREATE UNIQUE INDEX IF NOT
#: EXISTS ... WHERE`` is valid on SQLite ≥ 3.8 and PostgreSQL ≥ 9.5, and creating it
#: on a table that already holds duplicates fails (it is then reported, not ignored).
UNIQUE_KEY_INDEX_SQL = ("CREATE UNIQUE INDEX IF NOT EXISTS hdnnp_unique_job_key "
                        "ON text_key_values (value) WHERE key = 'key'")


#: key of the PostgreSQL advisory lock held while a writer sets the database up
_SETUP_LOCK = 0x68646E6E70  # "hdnnp"


def _is_postgresql(database: str | Path) -> bool:
    return str(database).startswith(("postgresql://", "postgres://"))


def connect(database: str | Path):
    """ASE database connection: SQLite path or PostgreSQL URL."""
    from ase.db import connect as ase_connect

    name = str(database)
    if name.startswith(("postgresql://", "postgres://")):
        try:  # ASE's PostgreSQL backend lives in ase-db-backends and uses psycopg2
            import ase_db_backends  # noqa: F401
            import psycopg2  # noqa: F401
        except ImportError as exc:
            package = {"ase_db_backends": "ase-db-backends"}.get(exc.name, "psycopg2-binary")
            raise MissingDependencyError(package,
                                         "a PostgreSQL labelling database",
                                         extra="postgresql") from None
        return ase_connect(name, type="postgresql")
    path = Path(name)
    if path.exists() and path.is_file():
        with open(path, "rb") as fh:
            head = fh.read(16)
        if head and not head.startswith(b"SQLite format 3"):
            raise HdnnpError(f"{path}: not an SQLite database")
    if path.exists() and path.is_dir():
        raise HdnnpError(f"{path}: is a directory, expected a database file")
    path.parent.mkdir(parents=True, exist_ok=True)
    return ase_connect(str(path), type="db")


def _is_unique_violation(exc: BaseException) -> bool:
    """Whether ``exc`` is the database refusing a duplicate (DB-API IntegrityError)."""
    import sqlite3

    if isinstance(exc, sqlite3.IntegrityError):
        return True
    try:
        import psycopg2
    except ImportError:
        return False
    return isinstance(exc, psycopg2.IntegrityError)


def duplicate_keys(db) -> dict[str, list[int]]:
    """Job keys stored in more than one row: key → row ids."""
    rows: dict[str, list[int]] = {}
    for row in db.select(columns=["id", "key_value_pairs"], include_data=False):
        key = row.get("key")
        if key is not None:
            rows.setdefault(str(key), []).append(int(row.id))
    return {k: ids for k, ids in rows.items() if len(ids) > 1}


def _refuse_duplicates(database, db) -> None:
    dup = duplicate_keys(db)
    if dup:
        key = sorted(dup)[0]
        more = f" ({len(dup) - 1} more key(s) duplicated)" if len(dup) > 1 else ""
        raise HdnnpError(f"{database}: structure key {key} is stored in rows "
                         f"{', '.join(map(str, dup[key]))}; a labelling database must hold "
                         f"each structure once{more} (delete the extra rows with "
                         f"'ase db {database} id=ID --delete')")


def ensure_unique_job_keys(database: str | Path, db) -> None:
    """Create the database's unique index on job keys (:data:`UNIQUE_KEY_INDEX_SQL`).

    The database's tables are first created under a lock (SQLite: ``BEGIN EXCLUSIVE``;
    PostgreSQL: a session advisory lock), so that two processes starting on a new
    database at the same moment do not both try to create ASE's tables.  Raises
    :class:`HdnnpError` naming a duplicated key if the database already holds one.
    """
    try:
        if _is_postgresql(database):
            with db:  # one session; ASE creates its tables (and commits) on first use
                cur = db.connection.cursor()
                # two writers starting on a new database would both create ASE's tables
                # (a unique violation in pg_type): a session lock serialises the set-up
                cur.execute(f"SELECT pg_advisory_lock({_SETUP_LOCK})")
                try:
                    db.count()
                    cur.execute(UNIQUE_KEY_INDEX_SQL)
                    db.connection.commit()
                finally:
                    cur.execute(f"SELECT pg_advisory_unlock({_SETUP_LOCK})")
        else:
            with db:  # one connection, committed on exit
                db.connection.execute("BEGIN EXCLUSIVE")
                db.count()  # creates ASE's tables if the file is new
                db.connection.execute(UNIQUE_KEY_INDEX_SQL)
    except Exception as exc:
        if _is_unique_violation(exc):
            _refuse_duplicates(database, db)
        raise


def _split_info(info: dict) -> tuple[dict, dict]:
    """Scalar, db-safe ``info`` entries as key–value pairs; the rest for ``data``."""
    from ase.db.core import check, reserved_keys

    kvp, rest = {}, {}
    for k, v in info.items():
        if isinstance(v, np.generic):
            v = v.item()
        if (isinstance(k, str) and k and set(k) <= _WORD_OK and not k[0].isdigit()
                and k not in reserved_keys and isinstance(v, bool | int | float | str)):
            try:
                import warnings

                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    check({k: v})
                kvp[k] = v
                continue
            except ValueError:
                pass
        try:
            json.dumps(v)
            rest[str(k)] = v
        except TypeError:
            rest[str(k)] = repr(v)
    return kvp, rest


def _label_one(key: str, index: int, atoms: Atoms, settings_dict: dict) -> dict:
    """Single point of one structure (runs in a worker).  Never raises for SCF failures."""
    settings = ReferenceSettings.from_dict(settings_dict)
    t0 = time.perf_counter()
    try:
        res = single_point(atoms, settings)
        return {"key": key, "index": index, "status": "ok", "energy": res["energy"],
                "forces": res["forces"], "wall_s": time.perf_counter() - t0,
                "host": socket.gethostname()}
    except SCFError as exc:
        return {"key": key, "index": index, "status": "failed", "error": str(exc)[:1000],
                "wall_s": time.perf_counter() - t0, "host": socket.gethostname()}


def _worker_init() -> None:
    os.environ["OMP_NUM_THREADS"] = "1"
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    os.environ.setdefault("MKL_NUM_THREADS", "1")


def _write_result(db, atoms: Atoms, result: dict, settings: ReferenceSettings,
                  versions: dict) -> bool:
    """Write one result; False if another writer has stored this structure already."""
    from ase.calculators.singlepoint import SinglePointCalculator

    out = atoms.copy()
    out.calc = None
    kvp, rest = _split_info(atoms.info)
    kvp.update({"key": result["key"], "index": int(result["index"]),
                "status": result["status"], "method": settings.method,
                "label_wall_s": float(result["wall_s"])})
    data = {"info": rest, "reference_settings": settings.to_dict(), "versions": versions,
            "host": result.get("host", ""), "labelled_at": time.strftime(
                "%Y-%m-%dT%H:%M:%S%z")}
    if result["status"] == "ok":
        out.calc = SinglePointCalculator(out, energy=result["energy"],
                                         forces=result["forces"])
    else:
        kvp["error"] = result["error"]
    try:
        db.write(out, key_value_pairs=kvp, data=data)
    except Exception as exc:
        if _is_unique_violation(exc):
            return False  # the unique index refused it: another process stored it first
        raise
    return True


def _existing(db) -> dict[str, tuple[int, str]]:
    """job key → (row id, status) of rows already in the database."""
    out = {}
    for row in db.select(columns=["id", "key_value_pairs"], include_data=False):
        key = row.get("key")
        if key is not None:
            out[str(key)] = (row.id, str(row.get("status", "ok")))
    return out


def _job_metadata(settings: ReferenceSettings, ref_energies: dict, versions: dict,
                  source: str | None, n: int) -> dict:
    return {"hdnnp_label_job": {"reference_settings": settings.to_dict(),
                                "reference_energies": ref_energies, "versions": versions,
                                "source": source, "n_structures": n,
                                "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}}


def label(structures: Sequence[Atoms], database: str | Path,
          settings: ReferenceSettings | None = None, workers: int = 1,
          scheduler: str | None = None, retry_failed: bool = False, progress: bool = True,
          source: str | None = None, in_process: bool = False) -> LabelSummary:
    """Label ``structures`` into ``database``; resume if it already holds part of the job.

    Single points run in ``workers`` spawned processes with one OpenMP thread each, also
    for ``workers=1``: one thread per process is fastest for tblite on a shared machine
    (two OpenMP threads on a busy 2-core machine run 4× slower than one), and a crash
    inside the reference code cannot take the writer down.  ``in_process=True`` runs
    them in this process instead (debugging).  Scripts that call this with worker
    processes need the usual ``if __name__ == "__main__":`` guard of Python's
    ``spawn`` start method.

    Raises :class:`HdnnpError` (before any work) if an element is not covered by the
    method, or if the database was started with different reference settings.
    """
    settings = settings or ReferenceSettings()
    t0 = time.perf_counter()
    structures = list(structures)
    if workers < 1:
        raise HdnnpError("workers must be ≥ 1")
    check_elements({s for a in structures for s in a.get_chemical_symbols()}, settings)
    check_calculator_files(settings, {s for a in structures for s in a.get_chemical_symbols()})
    keys = [job_key(i, a) for i, a in enumerate(structures)]
    versions = program_versions(settings)
    db = connect(database)
    ensure_unique_job_keys(database, db)
    meta = db.metadata.get("hdnnp_label_job") if hasattr(db, "metadata") else None
    elements = sorted({s for a in structures for s in a.get_chemical_symbols()})
    if meta:
        old = ReferenceSettings.from_dict(meta["reference_settings"]).to_dict()
        if old != settings.to_dict():
            raise HdnnpError(f"{database}: started with settings {old}, not "
                             f"{settings.to_dict()}; use another database")
        ref = dict(meta.get("reference_energies", {}))
        missing_el = [e for e in elements if e not in ref]
        if missing_el:
            ref.update(isolated_atom_energies(missing_el, settings))
            meta["reference_energies"] = ref
            db.metadata = {**db.metadata, "hdnnp_label_job": meta}
    else:
        ref = isolated_atom_energies(elements, settings)
        db.metadata = {**(db.metadata or {}),
                       **_job_metadata(settings, ref, versions, source, len(structures))}
    existing = _existing(db)
    unknown = set(existing) - set(keys)
    if unknown:
        raise HdnnpError(f"{database}: holds {len(unknown)} structure(s) that are not in this "
                         f"input (e.g. key {sorted(unknown)[0]}); label into a new database")
    if retry_failed:
        failed_ids = [rid for k, (rid, st) in existing.items() if st == "failed"]
        if failed_ids:
            db.delete(failed_ids)
            existing = {k: v for k, v in existing.items() if v[1] != "failed"}
    todo = [i for i, k in enumerate(keys) if k not in existing]
    already = len(structures) - len(todo)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(structures), initial=already, unit="structure",
                   desc=f"labelling ({settings.method})")
    sdict = settings.to_dict()
    failed_now = 0
    by_other = 0

    def handle(result: dict) -> None:
        nonlocal failed_now, by_other
        i = int(result["index"])
        if not _write_result(db, structures[i], result, settings, versions):
            by_other += 1
        elif result["status"] != "ok":
            failed_now += 1
        if bar is not None:
            bar.update(1)
            bar.set_postfix(failed=failed_now)

    def stored_by_other(i: int) -> bool:
        """Whether another writer has stored structure ``i`` meanwhile (then skip it)."""
        nonlocal by_other
        if db.count(key=keys[i]) == 0:
            return False
        by_other += 1
        if bar is not None:
            bar.update(1)
        return True

    try:
        if scheduler is not None:
            _run_dask(scheduler, todo, keys, structures, sdict, handle)
        elif in_process:
            for i in todo:
                if not stored_by_other(i):
                    handle(_label_one(keys[i], i, structures[i], sdict))
        else:
            _run_pool(workers, todo, keys, structures, sdict, handle, stored_by_other)
    finally:
        if bar is not None:
            bar.close()
    ok_total = db.count(status="ok")
    failed_total = db.count(status="failed")
    return LabelSummary(str(database), len(structures), already, len(todo) - by_other,
                        failed_now, ok_total, failed_total, time.perf_counter() - t0,
                        by_other)


def _run_pool(workers: int, todo, keys, structures, sdict, handle,
              skip=lambda i: False) -> None:
    import multiprocessing as mp
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    ctx = mp.get_context("spawn")
    pending = set()
    it = iter(todo)
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx,
                             initializer=_worker_init) as pool:
        def submit_next() -> bool:
            try:
                i = next(it)
                while skip(i):
                    i = next(it)
            except StopIteration:
                return False
            pending.add(pool.submit(_label_one, keys[i], i, structures[i], sdict))
            return True

        for _ in range(2 * workers):
            if not submit_next():
                break
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for fut in done:
                pending.discard(fut)
                handle(fut.result())
                submit_next()


def _run_dask(scheduler, todo, keys, structures, sdict, handle) -> None:
    try:
        from distributed import Client, as_completed
    except ImportError:
        raise MissingDependencyError("distributed", "labelling on a dask cluster",
                                     extra="cluster") from None
    client = scheduler if isinstance(scheduler, Client) else Client(scheduler)
    try:
        futures = [client.submit(_label_one, keys[i], i, structures[i], sdict, pure=False)
                   for i in todo]
        for fut in as_completed(futures):
            handle(fut.result())
    finally:
        if client is not scheduler:
            client.close()


# ------------------------------------------------------------------ reading results
def job_metadata(database: str | Path) -> dict:
    """The labelling job's metadata (settings, reference energies, versions)."""
    db = connect(database)
    return dict(db.metadata.get("hdnnp_label_job", {}))


def is_labelling_database(database: str | Path) -> bool:
    """Whether ``database`` is an ASE database written by an hdnnp labelling job."""
    try:
        return bool(job_metadata(database))
    except Exception:  # not a database, or one ASE cannot open
        return False


def load_labelled(database: str | Path, include_failed: bool = False):
    """The labelled structures of a database as a :class:`hdnnp.data.Dataset`.

    Structures are in input order, with energies/forces attached, provenance in
    ``info`` and the job's isolated-atom energies as ``reference_energies``.
    """

    if not _is_postgresql(database) and not Path(database).exists():
        raise HdnnpError(f"{database}: no such database")
    db = connect(database)
    _refuse_duplicates(database, db)
    meta = db.metadata.get("hdnnp_label_job", {})
    rows = list(db.select() if include_failed else db.select(status="ok"))
    rows.sort(key=lambda r: int(r.get("index", r.id)))
    out = []
    for row in rows:
        atoms = row.toatoms()
        atoms.info.update(row.key_value_pairs)
        info = (row.data or {}).get("info", {})
        for k, v in info.items():
            atoms.info.setdefault(k, v)
        atoms.info["source"] = f"{database}:id={row.id}"
        out.append(atoms)
    return Dataset(out, meta.get("reference_energies"), require_energy=not include_failed)


def failures(database: str | Path) -> list[tuple[int, str]]:
    """(input index, error) of every structure whose labelling failed."""
    db = connect(database)
    return sorted((int(r.get("index", -1)), str(r.get("error", ""))) for r in
                  db.select(status="failed"))


def describe_host() -> str:
    return f"{socket.gethostname()} ({platform.platform()})"
