"""Data sets of exact two-electron ground states: generation (resumable, parallel) and
loading (atomic units: Hartree, bohr).

A data set is one HDF5 file (gzip-compressed, shuffled, chunked along systems):

==========================  ==============  ==========================================
key                         shape           meaning
==========================  ==============  ==========================================
``x``                       (N,)            grid points (bohr)
``coefficients``            (S, 2H)         a_1..a_H, b_1..b_H of each potential
``potential``               (S, N)          V(x) (Hartree)
``density``                 (S, N)          n(x) (bohr⁻¹), ∫n dx = 2
``rdm``                     (S, N, N)       spin-summed γ(x, x') (bohr⁻¹), trace 2
``occupations``             (S, N)          natural occupations per spin-orbital, ∈ [0, 1]
``energy/<name>``           (S,)            total, kinetic, external, interaction (Ha)
==========================  ==============  ==========================================

and the attribute ``provenance`` (JSON: format and version, settings — grid, stencil,
potential family, interaction strength, seed, number of systems, chunk size, solver
tolerance —, package versions, timings).

Generation works in chunks of systems.  Each finished chunk is written atomically
(:mod:`hdnnp.fileio`) as ``<chunk>.npz`` into the directory ``<output>.parts/``; a rerun
of the same command with the same settings computes only the missing chunks.  When all
are there, the HDF5 file is assembled into a temporary file, renamed over ``<output>``
atomically, and the parts are removed.  Since system ``i`` depends only on (seed, i)
(:func:`hdnnp.rdm.potentials.system_coefficients`), the arrays are identical whatever
the number of workers or interruptions.
"""

from __future__ import annotations

import json
import os
import platform
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hdnnp._version import __version__
from hdnnp.errors import HdnnpError
from hdnnp.fileio import atomic_path
from hdnnp.rdm.potentials import PotentialFamily, system_coefficients
from hdnnp.rdm.solver import Grid, solve_ground_state

__all__ = ["FORMAT", "GenerationSettings", "RdmDataset", "generate_dataset", "load_dataset"]

FORMAT = "hdnnp-rdm-dataset"
FORMAT_VERSION = 1
ENERGY_NAMES = ("total", "kinetic", "external", "interaction")


@dataclass(frozen=True)
class GenerationSettings:
    """Everything that determines the arrays of a data set."""

    n_systems: int = 50_000
    seed: int = 0
    points: int = 62
    half_width: float = 15.0
    stencil: int = 7
    interaction: float = 1.0
    chunk_size: int = 500
    tol: float = 0.0
    family: PotentialFamily = field(default_factory=PotentialFamily)

    def __post_init__(self):
        if self.n_systems < 1:
            raise HdnnpError(f"the number of systems must be >= 1, got {self.n_systems}")
        if self.chunk_size < 1:
            raise HdnnpError(f"the chunk size must be >= 1, got {self.chunk_size}")
        if self.seed < 0:
            raise HdnnpError(f"the seed must be >= 0, got {self.seed}")
        Grid(self.points, self.half_width, self.stencil)  # validates

    @property
    def grid(self) -> Grid:
        return Grid(self.points, self.half_width, self.stencil)

    @property
    def n_chunks(self) -> int:
        return -(-self.n_systems // self.chunk_size)

    def chunk_range(self, k: int) -> range:
        return range(k * self.chunk_size, min((k + 1) * self.chunk_size, self.n_systems))

    def to_dict(self) -> dict:
        d = {k: getattr(self, k) for k in ("n_systems", "seed", "points", "half_width",
                                           "stencil", "interaction", "chunk_size", "tol")}
        d["family"] = self.family.to_dict()
        return d


def compute_chunk(settings: GenerationSettings, k: int) -> dict[str, np.ndarray]:
    """The arrays of chunk ``k`` (systems ``settings.chunk_range(k)``)."""
    grid, fam = settings.grid, settings.family
    rows = {name: [] for name in ("coefficients", "potential", "density", "rdm",
                                  "occupations", *(f"energy/{e}" for e in ENERGY_NAMES))}
    for i in settings.chunk_range(k):
        a, b = system_coefficients(settings.seed, i, fam)
        v = fam.evaluate(grid.x, a, b)
        gs = solve_ground_state(v, grid, settings.interaction, settings.tol)
        rows["coefficients"].append(np.concatenate([a, b]))
        rows["potential"].append(v)
        rows["density"].append(gs.density)
        rows["rdm"].append(gs.rdm)
        rows["occupations"].append(gs.natural_orbitals()[0])
        for name, value in gs.energies().items():
            rows[f"energy/{name}"].append(value)
    return {key: np.asarray(val, dtype=float) for key, val in rows.items()}


def _part_path(parts: Path, k: int) -> Path:
    return parts / f"chunk-{k:06d}.npz"


def _write_chunk(settings: GenerationSettings, k: int, parts: str) -> tuple[int, float]:
    """Compute chunk ``k`` and write it atomically; returns (k, CPU seconds)."""
    start = time.process_time()
    arrays = compute_chunk(settings, k)
    with atomic_path(_part_path(Path(parts), k)) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **{key.replace("/", "__"): v for key, v in arrays.items()})
    return k, time.process_time() - start


def _check_parts_settings(parts: Path, settings: GenerationSettings) -> None:
    """The parts directory belongs to these settings (else one-line error)."""
    from hdnnp.fileio import atomic_write_text

    marker = parts / "settings.json"
    wanted = settings.to_dict()
    if marker.is_file():
        try:
            have = json.loads(marker.read_text())
        except (OSError, ValueError) as exc:
            raise HdnnpError(f"{marker}: unreadable ({exc}); remove {parts} to start "
                             "afresh") from None
        if have != json.loads(json.dumps(wanted)):
            diff = sorted(k for k in wanted if have.get(k) != json.loads(json.dumps(wanted[k])))
            raise HdnnpError(f"{parts}: an unfinished data set with other settings "
                             f"({', '.join(diff)}); rerun with those or remove the directory")
    else:
        parts.mkdir(parents=True, exist_ok=True)
        atomic_write_text(marker, json.dumps(wanted, indent=1))


def _versions() -> dict:
    import h5py
    import scipy

    return {"hdnnp": __version__, "numpy": np.__version__, "scipy": scipy.__version__,
            "h5py": h5py.__version__, "python": platform.python_version()}


def generate_dataset(output: str | Path, settings: GenerationSettings, workers: int = 1,
                     progress: bool = True, stop_after_chunks: int | None = None) -> dict:
    """Generate (or complete) the data set ``output`` (HDF5); returns its provenance.

    ``workers`` processes compute chunks in parallel (``concurrent.futures``); with 1 the
    work stays in this process.  ``stop_after_chunks``: compute at most that many missing
    chunks, then return without assembling (an "interruption" for tests and for splitting
    a long job); the provenance then has ``complete: False``.
    """
    from tqdm.auto import tqdm

    output = Path(output)
    if workers < 1:
        raise HdnnpError(f"--workers must be >= 1, got {workers}")
    if output.exists():
        prov = load_dataset(output, arrays=False).provenance
        if prov.get("settings") == json.loads(json.dumps(settings.to_dict())):
            return prov
        raise HdnnpError(f"{output} exists with other settings; choose another output")
    parts = output.with_name(output.name + ".parts")
    _check_parts_settings(parts, settings)
    todo = [k for k in range(settings.n_chunks) if not _part_path(parts, k).is_file()]
    if stop_after_chunks is not None:
        todo = todo[:stop_after_chunks]
    timings_file = parts / "timings.json"
    timings = json.loads(timings_file.read_text()) if timings_file.is_file() else {}
    wall = time.perf_counter()
    bar = tqdm(total=sum(len(settings.chunk_range(k)) for k in todo), unit="system",
               desc="rdm generate", disable=not progress)
    from hdnnp.fileio import atomic_write_text

    def done(k: int, seconds: float) -> None:
        timings[str(k)] = seconds
        atomic_write_text(timings_file, json.dumps(timings))
        bar.update(len(settings.chunk_range(k)))

    try:
        if workers == 1:
            for k in todo:
                done(*_write_chunk(settings, k, str(parts)))
        elif todo:
            with ProcessPoolExecutor(max_workers=workers) as pool:
                futures = [pool.submit(_write_chunk, settings, k, str(parts)) for k in todo]
                for fut in as_completed(futures):
                    done(*fut.result())
    finally:
        bar.close()
    wall = time.perf_counter() - wall
    missing = [k for k in range(settings.n_chunks) if not _part_path(parts, k).is_file()]
    prov = {"format": FORMAT, "version": FORMAT_VERSION,
            "settings": json.loads(json.dumps(settings.to_dict())),
            "versions": _versions(), "workers": workers,
            "timings": {"chunk_cpu_s_total": float(sum(timings.values())),
                        "this_run_wall_s": wall, "chunks": len(timings)},
            "complete": not missing}
    if missing:
        return prov
    _assemble(output, parts, settings, prov)
    for k in range(settings.n_chunks):
        _part_path(parts, k).unlink()
    for extra in ("settings.json", "timings.json"):
        (parts / extra).unlink(missing_ok=True)
    try:
        parts.rmdir()
    except OSError:
        pass  # something else was put there: leave it
    return prov


def _assemble(output: Path, parts: Path, settings: GenerationSettings, prov: dict) -> None:
    import h5py

    s, n, ch = settings.n_systems, settings.points, settings.chunk_size
    h = settings.family.harmonics
    shapes = {"coefficients": (2 * h,), "potential": (n,), "density": (n,), "rdm": (n, n),
              "occupations": (n,), **{f"energy/{e}": () for e in ENERGY_NAMES}}
    with atomic_path(output) as tmp:
        with h5py.File(tmp, "w", track_order=True) as f:
            f.create_dataset("x", data=settings.grid.x)
            dsets = {key: f.create_dataset(key, shape=(s, *shape), dtype="f8",
                                           chunks=(min(ch, s), *shape), compression="gzip",
                                           compression_opts=4, shuffle=True, fletcher32=True)
                     for key, shape in shapes.items()}
            for k in range(settings.n_chunks):
                r = settings.chunk_range(k)
                with np.load(_part_path(parts, k)) as z:
                    for key, d in dsets.items():
                        d[r.start:r.stop] = z[key.replace("/", "__")]
            f.attrs["provenance"] = json.dumps(prov)


@dataclass
class RdmDataset:
    """A loaded data set (atomic units).  ``rdm`` may be None when ``arrays=False``."""

    path: Path
    provenance: dict
    x: np.ndarray
    potential: np.ndarray | None = None
    density: np.ndarray | None = None
    rdm: np.ndarray | None = None
    occupations: np.ndarray | None = None
    energies: dict | None = None

    @property
    def dx(self) -> float:
        return float(self.x[1] - self.x[0])

    @property
    def stencil(self) -> int:
        return int(self.provenance["settings"]["stencil"])

    def __len__(self) -> int:
        if self.density is not None:
            return len(self.density)
        return int(self.provenance["settings"]["n_systems"])


def load_dataset(path: str | Path, arrays: bool = True, limit: int | None = None) -> RdmDataset:
    """Read a data set written by :func:`generate_dataset` (the first ``limit`` systems).

    Every problem is one :class:`HdnnpError` naming the file and, where it is one, the
    key: missing file, not HDF5, wrong format, missing or mis-shaped array, non-finite
    values, a damaged file that HDF5 cannot read.
    """
    path = Path(path)
    try:
        return _load(path, arrays, limit)
    except HdnnpError:
        raise
    except (OSError, RuntimeError, KeyError, ValueError, TypeError) as exc:
        raise HdnnpError(f"{path}: damaged data set ({type(exc).__name__}: "
                         f"{str(exc).splitlines()[0] if str(exc) else ''})") from None


def _load(path: Path, arrays: bool, limit: int | None) -> RdmDataset:
    import h5py

    if not path.is_file():
        raise HdnnpError(f"{path}: no such data set")
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise HdnnpError(f"{path}: not an HDF5 data set ({exc})") from None
    with f:
        try:
            prov = json.loads(f.attrs["provenance"])
            if not isinstance(prov, dict):
                raise ValueError("not an object")
        except (KeyError, TypeError, ValueError, OSError):
            raise HdnnpError(f"{path}: key 'provenance' is missing or not JSON") from None
        if prov.get("format") != FORMAT:
            raise HdnnpError(f"{path}: not an hdnnp 1-RDM data set (format "
                             f"{prov.get('format')!r})")
        if prov.get("version", 0) > FORMAT_VERSION:
            raise HdnnpError(f"{path}: format version {prov.get('version')} is newer than "
                             f"this hdnnp reads ({FORMAT_VERSION})")
        try:
            n_sys, n = int(prov["settings"]["n_systems"]), int(prov["settings"]["points"])
        except (KeyError, TypeError, ValueError, AttributeError):
            raise HdnnpError(f"{path}: key 'provenance' lacks the settings") from None
        count = n_sys if limit is None else min(int(limit), n_sys)

        def read(key, shape, rows=True):
            if key not in f or not isinstance(f[key], h5py.Dataset):
                raise HdnnpError(f"{path}: key '{key}' is missing")
            d = f[key]
            want = (n_sys, *shape) if rows else shape
            if d.shape != want:
                raise HdnnpError(f"{path}: key '{key}' has shape {d.shape}, expected {want}")
            a = np.asarray(d[:count] if rows else d[()], dtype=float)
            if not np.all(np.isfinite(a)):
                raise HdnnpError(f"{path}: key '{key}' has non-finite values")
            return a

        x = read("x", (n,), rows=False)
        ds = RdmDataset(path, prov, x)
        if arrays:
            ds.potential = read("potential", (n,))
            ds.density = read("density", (n,))
            ds.rdm = read("rdm", (n, n))
            ds.occupations = read("occupations", (n,))
            ds.energies = {e: read(f"energy/{e}", ()) for e in ENERGY_NAMES}
            if limit is not None:
                ds.provenance = dict(prov, loaded_systems=count)
    return ds


def default_workers() -> int:
    """Workers for ``--workers auto``: the CPUs this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)
