"""The peers' own programs (n2p2, ænet), built once from ``../shared/tools`` for tests.

``peer_bin("aenet")`` / ``peer_bin("n2p2")`` return the folder with the executables
(``generate.x``, ``train.x``, ``predict.x`` / ``nnp-predict``, ``nnp_time``), building them
with the shared ``build.sh`` into a cache (``~/.cache/{aenet,n2p2}-bench``, the scripts'
defaults, or ``$HDNNP_PEER_CACHE/<name>``) the first time.  Builds are serialised by one
file lock for all peers (their package installs must not overlap), so each is built once;
``start_background_builds()`` (called from ``conftest.py``) starts them when the session
begins, so the compile overlaps the rest of the suite.  Where the build is impossible (no
compiler and none installable, or no
``../shared/tools``), the test is skipped with the build's own reason.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
from pathlib import Path

import pytest

SHARED_TOOLS = Path(__file__).resolve().parents[1].parent / "shared" / "tools"
_EXECUTABLE = {"aenet": "predict.x", "n2p2": "nnp-predict"}
_LOCK = Path.home() / ".cache" / "hdnnp-peer-build.lock"
_background: dict[str, subprocess.Popen] = {}


def _cache(name: str) -> Path:
    root = os.environ.get("HDNNP_PEER_CACHE")
    if root:
        return Path(root) / name
    return Path.home() / ".cache" / f"{name}-bench"


def _build_command(name: str) -> list[str]:
    script = SHARED_TOOLS / name / "build.sh"
    _LOCK.parent.mkdir(parents=True, exist_ok=True)
    # one lock for every peer: builds (and the package installs they make) run one at a
    # time, also across pytest processes and benchmarks
    return ["flock", str(_LOCK), "bash", str(script), str(_cache(name))]


def start_background_builds() -> None:
    """Start the builds that are not cached yet, without waiting for them."""
    for name, exe in _EXECUTABLE.items():
        if (_cache(name) / "bin" / exe).exists() or not (SHARED_TOOLS / name / "build.sh").exists():
            continue
        log = _cache(name).with_suffix(".build.log")
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "w") as fh:
            _background[name] = subprocess.Popen(_build_command(name), stdout=fh, stderr=fh)


def peer_bin(name: str) -> Path:
    """Folder of the built programs of peer ``name`` (``"aenet"`` or ``"n2p2"``), or skip."""
    exe = _EXECUTABLE[name]
    binary = _cache(name) / "bin" / exe
    if binary.exists():
        return binary.parent
    if not (SHARED_TOOLS / name / "build.sh").exists():
        pytest.skip(f"{SHARED_TOOLS / name / 'build.sh'} is absent: {name} cannot be built")
    proc = _background.pop(name, None)
    if proc is not None:
        proc.wait()
    if not binary.exists():
        with open(_LOCK, "a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            fcntl.flock(fh, fcntl.LOCK_UN)
        if not binary.exists():
            out = subprocess.run(_build_command(name), capture_output=True, text=True)
            if not binary.exists():
                tail = (out.stderr or out.stdout or "").strip().splitlines()[-3:]
                pytest.skip(f"building {name} from {SHARED_TOOLS / name} failed (no usable "
                            f"compiler?): {' | '.join(tail) or 'exit ' + str(out.returncode)}")
    return binary.parent
