"""Running a study: N training runs at a time, each its own process, resumable.

Layout of a study directory::

    STUDY/study.json            the specification and the expanded runs (written first)
    STUDY/runs/NAME.json        the full configuration of run NAME
    STUDY/runs/NAME/            its run directory (``hdnnp train`` output)
    STUDY/runs/NAME.failed      exit status and last error line of a failed attempt
    STUDY/report.html, summary.json, *.png   the report (:mod:`hdnnp.studies.report`)

Each run is ``hdnnp train --config runs/NAME.json -o runs/NAME --threads T --quiet`` in
its own process (one thread each by default), ``jobs`` at a time, or a task on a dask
cluster when a scheduler address is given (the study directory must then be on a file
system the workers share).  A run is done when its ``metrics.json`` exists; a rerun of
the study skips done runs, resumes interrupted ones from their checkpoint
(``hdnnp train --resume``) and retries failed ones, so killing the study at any point
and starting it again finishes the missing runs only.  The training processes die with
the study process (Linux ``PR_SET_PDEATHSIG``), so a killed study leaves no orphan
writing into a run directory that the next attempt resumes.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

from hdnnp.errors import HdnnpError
from hdnnp.fileio import atomic_write_text
from hdnnp.studies.spec import Run, StudySpec, expand_runs

__all__ = ["StudyRunner", "run_status"]


def run_status(run_dir: Path) -> str:
    """``done`` (metrics written), ``started`` (resumable) or ``new``."""
    if (run_dir / "metrics.json").is_file():
        return "done"
    if (run_dir / "config.json").is_file():
        return "started"
    return "new"


def _die_with_parent() -> None:  # pragma: no cover - runs in the child
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _train_command(config_path: Path, run_dir: Path, threads: int, resume: bool) -> list[str]:
    exe = [sys.executable, "-m", "hdnnp"]
    if resume:
        return [*exe, "train", "--resume", str(run_dir), "--quiet"]
    return [*exe, "train", "--config", str(config_path), "-o", str(run_dir),
            "--threads", str(threads), "--quiet"]


def execute_run(config_path: str, run_dir: str, threads: int) -> tuple[int, str]:
    """Train one run in a child process (fresh or resumed); returns (exit code, last
    error line).  A plain function so that dask can ship it to a worker."""
    run_dir_p = Path(run_dir)
    resume = run_status(run_dir_p) == "started"
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    proc = subprocess.run(_train_command(Path(config_path), run_dir_p, threads, resume),
                          capture_output=True, text=True, env=env,
                          preexec_fn=_die_with_parent if sys.platform == "linux" else None)
    lines = [ln for ln in (proc.stderr or "").strip().splitlines() if ln.strip()]
    return proc.returncode, (lines[-1] if lines else "")


class StudyRunner:
    """Expand, check and run a study in ``directory``."""

    def __init__(self, spec: StudySpec, directory: str | Path, base_dir: Path | None = None):
        self.spec = spec
        self.directory = Path(directory)
        self.runs: list[Run] = expand_runs(spec, base_dir)
        self._check_same_study()

    # ---------------------------------------------------------------- bookkeeping
    def _record(self) -> dict:
        return {"spec": self.spec.model_dump(mode="json"),
                "runs": [{"name": r.name, "setting": r.setting, "values": r.values,
                          "seed": r.seed} for r in self.runs]}

    def _check_same_study(self) -> None:
        path = self.directory / "study.json"
        if not path.is_file():
            return
        try:
            old = json.loads(path.read_text())
        except (OSError, ValueError):
            raise HdnnpError(f"{path}: unreadable study record; remove the directory or "
                             "choose another -o") from None
        if old.get("runs") != self._record()["runs"] or old.get("spec", {}).get("base") \
                != self.spec.model_dump(mode="json")["base"]:
            raise HdnnpError(f"{self.directory} holds a different study (other runs or "
                             "base); choose another -o or remove it")

    def run_dir(self, run: Run) -> Path:
        return self.directory / "runs" / run.name

    def status(self) -> dict[str, str]:
        return {r.name: run_status(self.run_dir(r)) for r in self.runs}

    def _prepare(self) -> None:
        (self.directory / "runs").mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.directory / "study.json", json.dumps(self._record(), indent=1))
        for r in self.runs:
            cfg = dict(r.config, output=str(self.run_dir(r)))
            atomic_write_text(self.directory / "runs" / f"{r.name}.json",
                              json.dumps(cfg, indent=1))

    # ------------------------------------------------------------------- running
    def run(self, jobs: int = 1, threads: int = 1, scheduler: str | None = None,
            progress: bool = True) -> dict[str, str]:
        """Run every run that is not done; returns {name: status or error}."""
        if jobs < 1 or threads < 1:
            raise HdnnpError("jobs and threads must be at least 1")
        self._prepare()
        todo = [r for r in self.runs if run_status(self.run_dir(r)) != "done"]
        results = {r.name: "done" for r in self.runs if r not in todo}
        if not todo:
            return results
        from tqdm import tqdm

        bar = tqdm(total=len(self.runs), initial=len(self.runs) - len(todo), unit="run",
                   desc="study", disable=not progress)
        args = {r.name: (str(self.directory / "runs" / f"{r.name}.json"),
                         str(self.run_dir(r)), threads) for r in todo}
        try:
            if scheduler:
                outcomes = self._run_dask(scheduler, args)
            else:
                outcomes = self._run_local(jobs, args)
            for name, (code, last) in outcomes:
                failed = self.directory / "runs" / f"{name}.failed"
                if code == 0 and run_status(self.directory / "runs" / name) == "done":
                    failed.unlink(missing_ok=True)
                    results[name] = "done"
                else:
                    results[name] = f"failed (exit {code}): {last}"
                    atomic_write_text(failed, json.dumps({"exit": code, "error": last}))
                bar.update(1)
        finally:
            bar.close()
        return results

    @staticmethod
    def _run_local(jobs: int, args: dict):
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            futures = {pool.submit(execute_run, *a): name for name, a in args.items()}
            for fut in as_completed(futures):
                yield futures[fut], fut.result()

    @staticmethod
    def _run_dask(scheduler: str, args: dict):
        try:
            from dask.distributed import Client
            from dask.distributed import as_completed as dask_completed
        except ImportError:
            from hdnnp.errors import MissingDependencyError

            raise MissingDependencyError("distributed", "hdnnp study --scheduler",
                                         extra="cluster") from None
        with Client(scheduler) as client:
            futures = {client.submit(execute_run, *a, pure=False, key=f"study-{name}"): name
                       for name, a in args.items()}
            for fut in dask_completed(list(futures)):
                yield futures[fut], fut.result()
