"""Atomic file writing: a file is either completely written or left untouched.

Every file hdnnp writes (potentials, checkpoints, logs rewritten as a whole, data
sets) goes through these helpers: data is written to a temporary file in the target
directory, flushed to disk and renamed over the target (``os.replace`` is atomic on
POSIX), so an interrupted run never leaves a half-written model.

Stale temporary files: a save killed by SIGKILL (or a power cut) cannot remove its
temporary file.  Temporary files are named ``.<target>.<host>-<pid>.<random>.tmp``
(``<host>``: 8 hex digits of a hash of the host name), and every new write of the same
target first removes the temporary files of that target whose writer is gone — same
host and the process ``<pid>`` no longer exists, or it started after the file was last
written (the PID was reused).  Files of live writers, of other hosts (on a shared file
system we cannot tell whether their writer lives) and anything not of our naming
pattern are left alone; temporary files of older hdnnp versions
(``.<target>.<8 random characters>.tmp``) are removed when they are older than this
process.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import socket
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

#: When this process started (seconds since the epoch), approximately: module import.
PROCESS_START = time.time()
_HOST = hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]


def _temp_prefix(path: Path) -> str:
    return f".{path.name}.{_HOST}-{os.getpid()}."


def _process_started(pid: int) -> float | None:
    """Start time (epoch seconds) of process ``pid``; None if it does not exist.

    Linux: field 22 of ``/proc/<pid>/stat`` (clock ticks after boot) plus the boot time
    ``btime`` of ``/proc/stat``.  Elsewhere a live process counts as started at time 0
    (its files are kept).
    """
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):
        return None
    except PermissionError:
        pass  # it exists, owned by someone else
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rpartition(")")[2].split()
        with open("/proc/stat") as fh:
            btime = next(float(ln.split()[1]) for ln in fh if ln.startswith("btime"))
        return btime + int(fields[19]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return 0.0


def remove_stale_temporaries(path: str | Path) -> list[Path]:
    """Remove the temporary files of ``path`` left by dead writers; returns them.

    Only names of :func:`atomic_path`'s pattern for this very target are considered
    (see the module docstring for which ones count as stale).
    """
    path = Path(path)
    name = re.escape(path.name)
    ours = re.compile(rf"\.{name}\.(?:([0-9a-f]{{8}})-(\d{{1,10}})\.)?[a-z0-9_]{{8}}\.tmp\Z")
    removed = []
    try:
        entries = list(os.scandir(path.parent))
    except OSError:
        return removed
    for entry in entries:
        m = ours.match(entry.name)
        if m is None or not entry.is_file(follow_symlinks=False):
            continue
        try:
            mtime = entry.stat(follow_symlinks=False).st_mtime
        except OSError:
            continue
        host, pid = m.group(1), m.group(2)
        if host is not None:
            if host != _HOST or int(pid) == os.getpid():
                continue
            started = _process_started(int(pid))
            stale = started is None or started > mtime
        else:  # an older hdnnp's name without the writer: stale if older than us
            stale = mtime < PROCESS_START
        if stale:
            with contextlib.suppress(OSError):
                os.unlink(entry.path)
                removed.append(Path(entry.path))
    return removed


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it replaces ``path``.

    Temporary files of earlier writes of ``path`` whose writer died are removed first
    (:func:`remove_stale_temporaries`).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    fd, tmp = tempfile.mkstemp(prefix=_temp_prefix(path), suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as fh:
            os.fsync(fh.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp_path, 0o666 & ~umask)
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))
