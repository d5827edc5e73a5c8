"""Fuzz tests (issue 10, item 6): property-based (Hypothesis) tests of the structure
readers, the neighbour list and the calculator, and a short run of the long fuzz harness
(``tests/fuzz/harness.py``, see ``tests/fuzz/README.md``) over all six readers/paths.

The property everywhere: bad input gives a one-line :class:`~hdnnp.errors.HdnnpError`
naming its source, and whatever is accepted holds only finite numbers and goes through
the neighbour list (and the calculator) to finite results, never another exception, a
signal or a hang.  The configuration schema and the potential loader have their own
property tests (``test_config_schema.py``, ``test_potential_hardening.py``); the smoke
run covers them here through the harness.

Bounded in time: every Hypothesis test is derandomised with a fixed ``max_examples``;
the whole file runs in well under a minute on two cores.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import json
import math
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from ase import Atoms
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st

from hdnnp.errors import HdnnpError
from hdnnp.io import parse_xsf, read_structures
from hdnnp.n2p2.data import read_input_data
from hdnnp.neighbours import neighbour_pairs

HARNESS_PATH = Path(__file__).resolve().parent / "fuzz" / "harness.py"


def _load_harness():
    spec = importlib.util.spec_from_file_location("hdnnp_fuzz_harness", HARNESS_PATH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


harness = _load_harness()

#: examples per property: fixed, derandomised and not shrunk in CI (a failure there shows
#: its example as drawn, at once: shrinking a hang costs minutes); ``HDNNP_FUZZ_EXAMPLES=
#: 5000`` runs more, with fresh random draws and shrinking, by hand
EXAMPLES = int(os.environ.get("HDNNP_FUZZ_EXAMPLES", "0")) or None
FUZZ = settings(max_examples=EXAMPLES or 120, deadline=None, derandomize=EXAMPLES is None,
                database=None,
                phases=tuple(Phase) if EXAMPLES else (Phase.explicit, Phase.generate),
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.filter_too_much])
CALCULATOR = settings(FUZZ, max_examples=EXAMPLES or 50)

NASTY = [math.nan, math.inf, -math.inf, 1e300, -1e300, 0.0, -0.0, 1e-300, 1e5, -1e5,
         99999.99, 100000.01, 1e6, 1e-8]
nasty_float = st.one_of(st.floats(-10.0, 10.0), st.sampled_from(NASTY),
                        st.floats(allow_nan=True, allow_infinity=True))
small_float = st.one_of(st.floats(-3.0, 3.0), st.sampled_from(NASTY))


@st.composite
def cells(draw):
    """Sane boxes, zero/collinear/coplanar/tiny/huge/extremely elongated ones, and
    arbitrary 3×3 matrices of nasty numbers."""
    kind = draw(st.integers(0, 3))
    if kind == 0:
        a = draw(st.floats(2.0, 15.0))
        return (np.eye(3) * a + np.array(draw(st.lists(st.floats(-0.5, 0.5), min_size=9,
                                                        max_size=9))).reshape(3, 3)).tolist()
    if kind == 1:
        v = draw(st.lists(st.floats(-5, 5), min_size=3, max_size=3))
        return draw(st.sampled_from([
            [[0.0] * 3] * 3, [v, v, [1.0, 2.0, 3.0]], [v, [2 * x for x in v], [0.0, 0.0, 1.0]],
            [[5.0, 0, 0], [0, 5.0, 0], [5.0, 5.0, 1e-12]], [[1e-7, 0, 0], [0, 5.0, 0],
                                                           [0, 0, 5.0]]]))
    if kind == 2:
        return draw(st.sampled_from([
            [[1e5, 0, 0], [0, 1e5, 0], [0, 0, 1e5]], [[99999.0, 0, 0], [0, 0.2, 0], [0, 0, 0.2]],
            [[0.11, 0, 0], [0, 0.11, 0], [0, 0, 0.11]], [[1e300, 0, 0], [0, 1, 0], [0, 0, 1]],
            [[3.0, 0, 0], [0, 3.0, 0], [0, 0, 1e5]], [[0.5, 0, 0], [0, 0.5, 0], [0, 0, 0.5]]]))
    return draw(st.lists(st.lists(nasty_float, min_size=3, max_size=3), min_size=3,
                         max_size=3))


@st.composite
def geometries(draw, max_atoms: int = 20):
    """(symbols, positions, cell, pbc): 0..max_atoms atoms in a box, some of them far
    away, non-finite or duplicated."""
    n = draw(st.integers(0, max_atoms))
    box = draw(st.sampled_from([8.0, 8.0, 8.0, 0.5, 30.0, 1e4]))
    pos = [draw(st.lists(st.floats(0.0, box), min_size=3, max_size=3)) for _ in range(n)]
    for k in range(n):
        r = draw(st.integers(0, 19))
        if r == 0:
            pos[k][draw(st.integers(0, 2))] = draw(st.sampled_from(NASTY))
        elif r == 1 and k:
            pos[k] = list(pos[draw(st.integers(0, k - 1))])  # a duplicate
        elif r == 2:
            pos[k][draw(st.integers(0, 2))] += draw(st.sampled_from([1e4, -1e4, 9.9e4, 1e6]))
    pbc = draw(st.one_of(st.tuples(st.booleans(), st.booleans(), st.booleans()),
                         st.booleans().map(lambda b: (b, b, b))))
    symbols = draw(st.lists(st.sampled_from(["O", "Ti"]), min_size=n, max_size=n))
    return symbols, pos, draw(cells()), pbc


cutoffs = st.floats(0.5, 12.0)


class _Hang(BaseException):
    """Raised by the alarm of :func:`_guarded` (a BaseException: no reader's ``except
    Exception`` can turn it into a clean error)."""


@contextlib.contextmanager
def _guarded(seconds: float = 5.0, extra_gib: float = 4.0):
    """Run an example with a deadline and at most ``extra_gib`` more address space, so
    that a hang or a giant allocation fails the test (with the example) instead of
    stalling the test run or getting it killed by the kernel's OOM killer."""
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    try:
        with open("/proc/self/statm") as fh:
            used = int(fh.read().split()[0]) * resource.getpagesize()
    except OSError:
        used = None
    if used is not None:
        limit = used + int(extra_gib * 2**30)
        if hard != resource.RLIM_INFINITY:
            limit = min(limit, hard)
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))

    def alarm(signum, frame):
        raise _Hang

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    except _Hang:
        raise AssertionError(f"no answer within {seconds:g} s (a hang)") from None
    except MemoryError as exc:
        raise AssertionError(f"MemoryError: more than {extra_gib:g} GiB needed") from exc
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def guarded(test):
    """The property test with every example run under :func:`_guarded`."""

    @functools.wraps(test)
    def run(*args, **kwargs):
        with _guarded():
            return test(*args, **kwargs)

    return run


def _r(x) -> str:
    return repr(float(x))


def _check_error(exc: HdnnpError, *names: str) -> None:
    msg = str(exc)
    assert msg.strip() and "\n" not in msg.strip(), f"error message is not one line: {msg!r}"
    assert any(n in msg for n in names), f"error names none of {names}: {msg!r}"


def _check_structure(atoms: Atoms) -> None:
    """An accepted structure: finite numbers, labels of the right shape."""
    assert np.isfinite(atoms.get_positions()).all()
    assert np.isfinite(atoms.cell.array).all()
    results = getattr(atoms.calc, "results", None) or {}
    for key in ("energy", "forces", "free_energy"):
        if results.get(key) is not None:
            assert np.isfinite(np.asarray(results[key], dtype=float)).all(), key
    if results.get("forces") is not None:
        assert np.shape(results["forces"]) == (len(atoms), 3)


def _shifts(atoms: Atoms, cutoff: float, limit: int = 20000) -> np.ndarray | None:
    """Every integer cell shift (rows; zero along non-periodic directions) that can bring
    two atoms of ``atoms`` within ``cutoff``, or None when there are more than ``limit``.

    For a shift S of the periodic rows h_p, S_k = (S·h_p)·p_k with p_k the columns of the
    pseudo-inverse of h_p, and |S·h_p| < cutoff + the atoms' extent."""
    pos = atoms.get_positions()
    pbc = np.asarray(atoms.pbc, dtype=bool)
    reach = np.zeros(3, dtype=int)
    if pbc.any():
        extent = float(np.linalg.norm(np.ptp(pos, axis=0))) if len(pos) else 0.0
        dual = np.linalg.pinv(atoms.cell.array[pbc])  # [3, n_periodic]
        bound = (cutoff + extent) * np.linalg.norm(dual, axis=0)
        if not np.isfinite(bound).all() or np.prod(2 * bound + 3) > limit:
            return None
        reach[pbc] = np.ceil(bound).astype(int) + 1
    grids = np.meshgrid(*[np.arange(-r, r + 1) for r in reach], indexing="ij")
    return np.stack([g.reshape(-1) for g in grids], axis=1)


def _brute_force_pairs(atoms: Atoms, cutoff: float, shifts: np.ndarray) -> set:
    """(i, j, S) of all pairs closer than ``cutoff``, by enumerating ``shifts``."""
    pos = atoms.get_positions()
    d = pos[None, :, None, :] - pos[:, None, None, :] + (shifts @ atoms.cell.array)[None, None]
    dist = np.linalg.norm(d, axis=-1)  # [i, j, shift]
    i, j, s = np.nonzero(dist < cutoff)
    keep = ~((i == j) & ~shifts[s].any(axis=1))
    return {(int(a), int(b), tuple(int(x) for x in shifts[c]))
            for a, b, c in zip(i[keep], j[keep], s[keep])
            if abs(dist[a, b, c] - cutoff) > 1e-7}


def _check_neighbours(atoms: Atoms, cutoff: float) -> None:
    """The neighbour list of an accepted structure runs and, where the cell shifts are few
    enough to enumerate, equals a brute-force enumeration of the pairs within the cutoff."""
    try:
        i, j, s = neighbour_pairs(atoms, cutoff)
    except HdnnpError as exc:
        _check_error(exc, str(atoms.info.get("source", "structure")))
        return
    n = len(atoms)
    assert len(i) == len(j) == len(s) and np.shape(s) == (len(i), 3)
    assert len(i) == 0 or (0 <= i.min() and max(i.max(), j.max()) < n)
    d = np.linalg.norm(atoms.positions[j] - atoms.positions[i] + s @ atoms.cell.array, axis=1)
    # closer pairs are duplicated atoms (singular descriptors): refused, never listed
    assert (d >= 0.1).all(), f"a pair {d.min():.3g} Å apart was accepted"
    shifts = _shifts(atoms, cutoff) if n else None
    if shifts is not None:
        assert (d < cutoff + 1e-9).all()
        got = {(int(a), int(b), tuple(int(x) for x in c)) for a, b, c, dd in zip(i, j, s, d)
               if abs(dd - cutoff) > 1e-7}
        assert got == _brute_force_pairs(atoms, cutoff, shifts)


# ------------------------------------------------------------------------------- XSF

def _xsf_text(symbols, pos, cell, pbc, forces, energy) -> str:
    out = [] if energy is None else [f"# total energy = {_r(energy)} eV", ""]
    if any(pbc):
        out += [{(True, True, True): "CRYSTAL", (True, True, False): "SLAB",
                 (True, False, False): "POLYMER"}.get(tuple(pbc), "CRYSTAL"), "PRIMVEC"]
        out += [" ".join(_r(x) for x in v) for v in cell]
        out += ["PRIMCOORD", f"{len(symbols)} 1"]
    else:
        out.append("ATOMS")
    for k, (e, p) in enumerate(zip(symbols, pos)):
        out.append(f"{e} " + " ".join(_r(x) for x in p)
                   + ("" if forces is None else " " + " ".join(_r(x) for x in forces[k])))
    return "\n".join(out) + "\n"


@FUZZ
@given(geometries(), st.booleans(), st.one_of(st.none(), nasty_float), cutoffs, st.data())
@guarded
def test_xsf_of_random_geometry(geometry, with_forces, energy, cutoff, data):
    symbols, pos, cell, pbc = geometry
    forces = [data.draw(st.lists(small_float, min_size=3, max_size=3)) for _ in symbols] \
        if with_forces else None
    text = _xsf_text(symbols, pos, cell, pbc, forces, energy)
    try:
        atoms = parse_xsf(text, "fuzz.xsf")
    except HdnnpError as exc:
        _check_error(exc, "fuzz.xsf")
        return
    _check_structure(atoms)
    _check_neighbours(atoms, cutoff)


def _mutations(seeds: list[bytes]):
    """A seed file with 1–4 mutations drawn by Hypothesis: bytes replaced, inserted or
    deleted; numbers replaced by NaN/inf/1e300/-0/huge/empty; lines duplicated, deleted
    or swapped (the harness's mutators, driven by a drawn seed)."""
    op = st.one_of(
        st.tuples(st.just("replace"), st.integers(0, 10**6), st.binary(min_size=1,
                                                                       max_size=8)),
        st.tuples(st.just("insert"), st.integers(0, 10**6), st.binary(min_size=1, max_size=8)),
        st.tuples(st.just("delete"), st.integers(0, 10**6), st.integers(1, 64)),
        st.tuples(st.just("truncate"), st.integers(0, 10**6)),
        st.tuples(st.just("token"), st.sampled_from(harness.TOKEN_MUTATORS),
                  st.integers(0, 2**32)),
    )

    def apply(args):
        data, ops = args
        for o in ops:
            k = o[1] % (len(data) + 1) if o[0] != "token" else 0
            if o[0] == "replace":
                data = data[:k] + o[2] + data[k + len(o[2]):]
            elif o[0] == "insert":
                data = data[:k] + o[2] + data[k:]
            elif o[0] == "delete":
                data = data[:k] + data[k + o[2]:]
            elif o[0] == "truncate":
                data = data[:k]
            else:
                import random

                data = o[1](random.Random(o[2]), data, b"")
        return data

    return st.tuples(st.sampled_from(seeds), st.lists(op, min_size=1, max_size=4)).map(apply)


XSF_SEEDS = [d for _, d in harness.xsf_seeds(shared=False)]


def _duplicate_line(data: bytes, prefix: bytes, k: int = 1) -> bytes:
    """``data`` with its ``k``-th line starting with ``prefix`` repeated (an atom twice)."""
    lines = data.splitlines(keepends=True)
    at = [i for i, line in enumerate(lines) if line.startswith(prefix)][k]
    return b"".join(lines[:at + 1] + lines[at:])


@FUZZ
@given(_mutations(XSF_SEEDS), cutoffs)
@example(_duplicate_line(dict(harness.xsf_seeds(shared=False))["molecule.xsf"], b"H"), 6.0)
@example(dict(harness.xsf_seeds(shared=False))["slab.xsf"].replace(b"20.0", b"nan"), 6.0)
@guarded
def test_xsf_mutated_files(fuzz_dir, data, cutoff):
    path = fuzz_dir / "mutated.xsf"
    path.write_bytes(data)
    _read_and_check(path, cutoff)


def _read_and_check(path, cutoff, read=read_structures, **read_options) -> list:
    """Read ``path`` with ``read``: a one-line error naming it (→ []), or finite
    structures whose neighbour lists agree with brute force (returned)."""
    try:
        structures = list(read(path, **read_options))
    except HdnnpError as exc:
        _check_error(exc, str(path))
        return []
    for atoms in structures:
        _check_structure(atoms)
        _check_neighbours(atoms, cutoff)
    return structures


@pytest.fixture(scope="module")
def fuzz_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz")


# ------------------------------------------------------------------- n2p2 input.data

def _n2p2_text(symbols, pos, cell, periodic, energy, forces) -> str:
    out = ["begin", "comment fuzz"]
    if periodic:
        out += ["lattice " + " ".join(_r(x) for x in v) for v in cell]
    for k, (e, p) in enumerate(zip(symbols, pos)):
        out.append(f"atom {' '.join(_r(x) for x in p)} {'H' if e == 'Ti' else e} 0.0 0.0 "
                   + " ".join(_r(x) for x in forces[k]))
    if energy is not None:
        out.append(f"energy {_r(energy)}")
    out.append("end")
    return "\n".join(out) + "\n"


@FUZZ
@given(geometries(), st.booleans(), st.one_of(st.none(), nasty_float),
       st.sampled_from([(None, None), ("bohr", "hartree")]), cutoffs, st.data())
@guarded
def test_n2p2_data_of_random_geometry(fuzz_dir, geometry, periodic, energy, units, cutoff,
                                      data):
    symbols, pos, cell, _ = geometry
    forces = [data.draw(st.lists(small_float, min_size=3, max_size=3)) for _ in symbols]
    path = fuzz_dir / "input.data"
    path.write_text(_n2p2_text(symbols, pos, cell, periodic, energy, forces))
    for atoms in _read_and_check(path, cutoff, read_input_data, length_unit=units[0],
                                 energy_unit=units[1]):
        assert np.isfinite(atoms.get_initial_charges()).all()


N2P2_SEEDS = [d for _, d in harness.n2p2_data_seeds(shared=False)]


@FUZZ
@given(_mutations(N2P2_SEEDS), cutoffs)
@example(_duplicate_line(N2P2_SEEDS[0], b"atom"), 6.0)
@guarded
def test_n2p2_data_mutated_files(fuzz_dir, data, cutoff):
    path = fuzz_dir / "mutated.data"
    path.write_bytes(data)
    _read_and_check(path, cutoff, read_input_data, length_unit="bohr", energy_unit="hartree")


# ---------------------------------------------------------------------------- extxyz

def _extxyz_text(symbols, pos, cell, pbc, energy, forces) -> str:
    lattice = " ".join(_r(x) for v in cell for x in v)
    flags = " ".join("T" if p else "F" for p in pbc)
    head = (f'Lattice="{lattice}" Properties=species:S:1:pos:R:3:forces:R:3 '
            + ("" if energy is None else f"energy={_r(energy)} ") + f'pbc="{flags}"')
    lines = [str(len(symbols)), head]
    for k, (e, p) in enumerate(zip(symbols, pos)):
        lines.append(f"{e} " + " ".join(_r(x) for x in (*p, *forces[k])))
    return "\n".join(lines) + "\n"


@FUZZ
@given(geometries(), st.one_of(st.none(), nasty_float), cutoffs, st.data())
@guarded
def test_extxyz_of_random_geometry(fuzz_dir, geometry, energy, cutoff, data):
    symbols, pos, cell, pbc = geometry
    forces = [data.draw(st.lists(small_float, min_size=3, max_size=3)) for _ in symbols]
    text = _extxyz_text(symbols, pos, cell, pbc, energy, forces)
    if data.draw(st.booleans()):  # and garbled
        import random

        text = harness.mutate(random.Random(data.draw(st.integers(0, 2**32))), text.encode(),
                              [])[0].decode(errors="replace")
    path = fuzz_dir / "fuzz.extxyz"
    path.write_text(text)
    _read_and_check(path, cutoff, format="extxyz")


# ------------------------------------------------------------------------ calculator

@pytest.fixture(scope="module")
def calculator():
    from hdnnp.calculator import Calculator
    from hdnnp.descriptors import Chebyshev
    from hdnnp.model import NeuralNetworkPotential

    model = NeuralNetworkPotential(Chebyshev(["O", "Ti"], 5.0, 4, 4.0, 2), hidden=(5, 4))
    gen = torch.Generator().manual_seed(0)
    for net in model.networks.values():
        net.reset_parameters(gen)
    model.reference_energies[:] = torch.tensor([-432.5, -1604.6], dtype=torch.float64)
    return Calculator(model, device="cpu", extrapolation="ignore")


@CALCULATOR
@given(geometries())
@guarded
def test_calculator_on_random_structures(calculator, geometry):
    symbols, pos, cell, pbc = geometry
    atoms = Atoms(symbols, positions=np.reshape(np.asarray(pos, dtype=float), (-1, 3)),
                  cell=cell, pbc=pbc)
    atoms.info["source"] = "fuzzed structure"
    atoms.calc = calculator
    calculator.reset()
    try:
        energy = atoms.get_potential_energy()
        forces = atoms.get_forces()
    except HdnnpError as exc:
        _check_error(exc, "fuzzed structure")
        return
    assert math.isfinite(energy)
    assert forces.shape == (len(atoms), 3) and np.isfinite(forces).all()
    assert np.isfinite(atoms.get_positions()).all() and np.isfinite(atoms.cell.array).all()


# ------------------------------------------------------------- signals and the harness

def _nasty_geometries() -> list[dict]:
    """Cells and positions that killed the process (SIGFPE in the neighbour list) or hung
    it before the structure validation layer, and the harness's random nasty ones."""
    out = []
    two = [[0.0, 0.0, 0.0], [1.5, 0.3, 0.2]]

    def case(pos, cell, pbc, cutoff=6.0):
        out.append({"positions": pos, "cell": cell, "pbc": pbc, "cutoff": cutoff,
                    "symbols": ["O"] * len(pos)})

    for bad in (math.nan, math.inf, -math.inf, 1e300):
        case(two, [[bad, 0, 0], [0, 5, 0], [0, 0, 5]], [True] * 3)
        case(two, [[5, 0, 0], [0, 5, 0], [0, 0, bad]], [True, True, False])
        case([[0, 0, 0], [bad, 0, 0]], [[5, 0, 0], [0, 5, 0], [0, 0, 5]], [False] * 3)
    case([[0, 0, 0], [1.5, 0, 0], [1e6, 0, 0]], [[0] * 3] * 3, [False] * 3)  # far atom
    case([[0, 0, 0], [1.5, 0, 0], [9.9e4, 0, 0]], [[0] * 3] * 3, [False] * 3, 0.5)
    case([[x * 1.0, 0, 0] for x in range(0, 100000, 5000)], [[0] * 3] * 3, [False] * 3, 0.5)
    case(two, [[1e-6, 0, 0], [0, 5, 0], [0, 0, 5]], [True] * 3)  # atom on its own image
    case(two, [[5, 0, 0], [10, 0, 0], [0, 0, 5]], [True] * 3)  # collinear vectors
    case(two, [[0.11, 0, 0], [0, 0.11, 0], [0, 0, 0.11]], [True] * 3, 30.0)
    case(two, [[5, 0, 0], [0, 5, 0], [0, 0, 5]], [True] * 3, 1e4)  # endless cutoff
    case(two, [[5, 0, 0], [0, 5, 0], [0, 0, 5]], [True] * 3, math.nan)
    case(two, [[5, 0, 0], [0, 5, 0], [0, 0, 5]], [True] * 3, 1e-9)  # vesin: "too small"
    case(two, [[99999.0, 0, 0], [0, 0.2, 0], [0, 0, 0.2]], [True, True, False])
    case(two, [[1e5, 0, 0], [0, 1e5, 0], [0, 0, 0.2]], [True, True, True], 0.5)
    # found by the harness (tests/fuzz): elongated periodic cells, tens of seconds or GBs
    four = [[0, 0, 0], [1.5, 0.1, 0.1], [3, 0.1, 0.1], [5, 0.1, 0.1]]
    case(four, [[99999.0, 0, 0], [0, 0.2, 0], [0, 0, 0.2]], [True] * 3, 0.5)
    case([[0, 0, 0], [1.5, 1.5, 2], [0, 1.5, 4], [1.5, 0, 6], [0.7, 0.7, 7.5], [2.2, 2.2, 1],
          [0.3, 2.5, 3], [2.5, 0.3, 5]], [[3, 0, 0], [0, 3, 0], [0, 0, 1e5]],
         [False, True, True], 5.7)
    seeds = harness.Seeds()
    out += [json.loads(harness.generate("neighbours", k, 1, seeds).files["structure.json"])
            for k in range(200 - len(out))]
    return out


def test_nasty_geometries_never_kill_the_process(tmp_path):
    """~200 nasty cells/positions through the neighbour list in a harness worker process:
    a refusal or a result for each, never a death by signal (SIGFPE) or a hang."""
    cases = [(k, harness.Case({"structure.json": json.dumps(g).encode()}))
             for k, g in enumerate(_nasty_geometries())]
    (tmp_path / "seeds").mkdir()
    worker = harness.WorkerProcess(tmp_path / "seeds", 4.0, tmp_path / "worker.log")
    try:
        # ≤ 20 atoms: a second at most; 5 s is a hang
        results = harness.run_cases("neighbours", cases, [worker], timeout=5.0)
    finally:
        worker.close()
    assert len(results) == len(cases)
    bad = {k: r for k, r in results.items() if r["status"] not in ("clean", "accepted")}
    assert not bad, "\n".join(f"case {k} {json.dumps(_nasty_geometries()[k])[:300]}: "
                              f"{r['status']} {r.get('type')} {r.get('message', '')[:200]}"
                              for k, r in sorted(bad.items())[:10])
    assert sum(r["status"] == "clean" for r in results.values()) >= 30


def test_harness_smoke_run_all_targets(tmp_path):
    """The fuzz harness itself, briefly, over all six readers/paths: zero crashes, hangs
    and accepted garbage (the long runs are by hand: tests/fuzz/README.md)."""
    out = tmp_path / "fuzz.json"
    t0 = time.monotonic()
    proc = subprocess.run(
        [sys.executable, str(HARNESS_PATH), "--target", "all", "--per-target", "30",
         "--workers", "2", "--timeout", "10", "--seed", "1", "--quiet", "--out", str(out),
         "--out-dir", str(tmp_path / "cases")], capture_output=True, text=True, timeout=180)
    wall = time.monotonic() - t0
    assert out.exists(), proc.stderr[-3000:]
    summary = json.loads(out.read_text())
    assert set(summary["targets"]) == set(harness.TARGETS) or not harness.WATER.exists()
    failures = []
    for target, s in summary["targets"].items():
        assert s["inputs"] == 30
        assert s["clean"] + s["accepted"] + s["garbage"] + s["crash"] + s["hang"] == 30
        failures += [f"{target}: {g['count']} × {g['key']}: {g['message'][:200]}"
                     for g in s["failures"]]
    assert not failures, "\n".join(failures) + "\n" + proc.stdout
    assert proc.returncode == 0
    assert "| XSF | 30 |" in proc.stdout
    assert wall < 120
