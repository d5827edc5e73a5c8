#!/usr/bin/env python
"""Fuzz harness for hdnnp's readers (issue 10, item 6): long runs by hand.

Feeds mutated inputs to the six readers/paths a user reaches with a file, each input in a
persistent worker process (hdnnp imported once, ``OMP_NUM_THREADS=1``, an address-space
limit), does with the result what a user would do next, and classifies every input:

``clean``
    an :class:`hdnnp.errors.HdnnpError` with a one-line message;
``accepted``
    the reader returned and every number that came out is finite (and, for the training
    configuration, within the documented ranges);
``garbage``
    returned but with NaN/inf (or an out-of-range setting) somewhere, or an error whose
    message is not one line;
``crash``
    any other exception (type, message and traceback tail recorded), or the worker died
    by a signal (SIGFPE, SIGSEGV …);
``hang``
    no answer within ``--timeout`` seconds (the worker is killed and restarted).

Targets (``--target``):

==================  ==================================================================
xsf                 ænet XSF files → ``hdnnp.io.read_structures`` → neighbour list
                    (6 Å) → energy and forces of a small O/Ti model
n2p2-data           n2p2 ``input.data`` (bohr, hartree) → reader → neighbour list →
                    energy and forces of the n2p2 water potential
model-bytes         ``model.json`` (and ``.json.gz``) with corrupted bytes →
                    ``hdnnp.potential.load_potential`` → ``hdnnp.Calculator``
model-edit          ``model.json`` edited as JSON, checksum recomputed → same
n2p2-potential      n2p2 potential directory (input.nn, scaling.data, weights) →
                    ``hdnnp.n2p2.load_n2p2_potential`` → ``hdnnp.Calculator`` on water
config              training configuration YAML → ``hdnnp.training.config.load_config``
neighbours          (not in ``all``) random nasty cells/positions/cutoffs →
                    ``hdnnp.neighbours.neighbour_pairs``
extxyz              (not in ``all``) extended XYZ → ``hdnnp.io.read_structures`` (ASE's
                    reader) → neighbour list → energy and forces of the O/Ti model
aenet-nn            (not in ``all``) ænet ``*.nn`` potential files (Fortran binary and
                    ascii) → ``hdnnp.aenet`` reader → ``hdnnp.Calculator`` on rutile
==================  ==================================================================

Every input is a deterministic function of ``(--seed, target, index)``: a run can be
repeated, and a failure reproduced from its index alone (``--start I --n 1``).
Reproducers (the mutated input bytes plus a ``.txt`` with the exception) are saved under
``--out-dir``, at most ``--max-saved`` per distinct failure.

Examples::

    .venv/bin/python tests/fuzz/harness.py --target xsf --n 10000 --workers 2 \\
        --timeout 10 --seed 1 --out /tmp/fuzz-xsf.json
    .venv/bin/python tests/fuzz/harness.py --target all --n 50000 --workers 4 \\
        --out /tmp/fuzz-all.json --out-dir /tmp/fuzz-cases
    .venv/bin/python tests/fuzz/harness.py --target all --per-target 30 --quiet
    .venv/bin/python tests/fuzz/harness.py --target config --start 1234 --n 1 \\
        --out-dir /tmp/one   # regenerate and re-run input 1234 of the config target
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import gzip
import json
import math
import os
import pickle
import random
import re
import select
import shutil
import signal
import struct
import subprocess
import sys
import tarfile
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve()
REPO = HERE.parents[2]
SHARED = REPO.parent / "shared" / "data"
TIO2_ARCHIVE = SHARED / "aenet-TiO2" / "TiO2-xsf.tar.gz"
WATER = SHARED / "n2p2" / "H2O_RPBE-D3"

TARGETS = ("xsf", "n2p2-data", "model-bytes", "model-edit", "n2p2-potential", "config")
EXTRA_TARGETS = ("neighbours", "extxyz")
#: row names of the issue-10 table
TITLES = {
    "xsf": "XSF",
    "n2p2-data": "n2p2 input.data",
    "model-bytes": "model.json, corrupted bytes",
    "model-edit": "model.json, edited (checksum recomputed)",
    "n2p2-potential": "n2p2 potential directory",
    "config": "training config YAML",
    "neighbours": "neighbour list, nasty geometry",
    "extxyz": "extxyz (via ASE)",
}
#: inputs per target of issue 10's measurement: ``--target all --n N`` splits N like this
PROPORTION = {"xsf": 8507, "n2p2-data": 4448, "model-bytes": 14846, "model-edit": 4846,
              "n2p2-potential": 3572, "config": 14539}
STATUSES = ("clean", "accepted", "garbage", "crash", "hang")
#: the file (relative to the case directory) each target's action reads; "." = the dir
MAIN_FILE = {"xsf": "input.xsf", "n2p2-data": "input.data", "model-bytes": "model.json",
             "model-edit": "model.json", "n2p2-potential": ".", "config": "config.yaml",
             "neighbours": "structure.json", "extxyz": "input.extxyz"}
NEIGHBOUR_CUTOFF = 6.0  # Å, the neighbour list built for every accepted structure


# ----------------------------------------------------------------------------- mutators

#: a 5000-digit integer: beyond Python's int-string conversion limit (4300 digits)
HUGE = b"9" * 5000
HUGE_INT = 10**5000 - 1  # the same as a Python int (built without a string conversion)
SPECIAL_NUMBERS = [
    b"nan", b"NaN", b"-nan", b"inf", b"-inf", b"Infinity", b"1e300", b"-1e300", b"1e-300",
    b"1e309", b"-1e309", b"-0", b"0", b"-0.0", HUGE, b"-" + HUGE, b"-1", b"-3.5", b"",
    b"1e5", b"1e6", b"-1e5", b"123456789012345678901234567890", b"1d300", b".", b"e",
    b"--1", b"1.0.0", b"0x10", b"1e-30", b"4.9e-324", b"1.7976931348623157e308",
]
SPECIAL_INTEGERS = [b"0", b"-1", b"1", b"2", b"3", b"-7", b"100", b"10000", b"100000000",
                    b"2147483648", b"-2147483649", b"9223372036854775808",
                    b"100000000000000000000", HUGE, b"1.5", b"nan", b""]
INTERESTING_BYTES = [b"\x00", b"\xff", b"\n", b"\r", b"\t", b" ", b"#", b"-", b"e", b"9",
                     b".", b"\xc3", b"\xe2\x80\xa8", b"\x1f\x8b", b"[", b"{", b'"', b":"]

_NUMBER = re.compile(rb"(?<![A-Za-z_0-9.])[-+]?(?:\d+\.?\d*|\.\d+)(?:[eEdD][-+]?\d+)?"
                     rb"(?![A-Za-z_0-9.])")
_INTEGER = re.compile(rb"(?<![A-Za-z_0-9.+-])[-+]?\d+(?![A-Za-z_0-9.])")
_WORD = re.compile(rb"[A-Za-z_][A-Za-z_0-9]*")


def _replace_match(rng: random.Random, data: bytes, pattern: re.Pattern, choices) -> bytes:
    matches = list(pattern.finditer(data))
    if not matches:
        return data
    m = rng.choice(matches)
    new = rng.choice(choices)
    if callable(new):
        new = new(m.group(0), rng)
    return data[:m.start()] + new + data[m.end():]


def _int_neighbour(tok: bytes, rng: random.Random) -> bytes:
    """A changed count: off by one or two, doubled, negated, a thousand times larger."""
    if len(tok) > 4000:  # an earlier mutation's huge integer: Python will not parse it
        return tok[: rng.randint(1, 20)]
    n = int(tok)
    return str(n + rng.choice([-2, -1, 1, 2, 10, n, -n, 1000 * n])).encode()


def m_flip(rng, data, other):
    if not data:
        return data
    k = rng.randrange(len(data))
    return data[:k] + bytes([data[k] ^ (1 << rng.randrange(8))]) + data[k + 1:]


def m_byte(rng, data, other):
    if not data:
        return data
    k = rng.randrange(len(data))
    b = rng.choice(INTERESTING_BYTES) if rng.random() < 0.5 else bytes([rng.randrange(256)])
    return data[:k] + b + data[k + 1:]


def m_insert(rng, data, other):
    k = rng.randrange(len(data) + 1)
    if rng.random() < 0.5:
        b = rng.choice(INTERESTING_BYTES + SPECIAL_NUMBERS[:12])
    else:
        b = bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
    return data[:k] + b + data[k:]


def m_delete(rng, data, other):
    if not data:
        return data
    k = rng.randrange(len(data))
    return data[:k] + data[k + rng.randint(1, 64):]


def m_dup_range(rng, data, other):
    if not data:
        return data
    k = rng.randrange(len(data))
    n = rng.randint(1, 256)
    return data[:k + n] + data[k:k + n] + data[k + n:]


def m_truncate(rng, data, other):
    return data[:rng.randrange(len(data) + 1)]


def m_splice(rng, data, other):
    if not other:
        return data
    return data[:rng.randrange(len(data) + 1)] + other[rng.randrange(len(other) + 1):]


def m_number(rng, data, other):
    return _replace_match(rng, data, _NUMBER, SPECIAL_NUMBERS)


def m_integer(rng, data, other):
    return _replace_match(rng, data, _INTEGER, [*SPECIAL_INTEGERS, _int_neighbour,
                                               _int_neighbour])


def m_word(rng, data, other):
    """Replace a word (keyword, element, key) by another word of the file, or garble it."""
    words = list(_WORD.finditer(data))
    if not words:
        return data
    m = rng.choice(words)
    pick = rng.random()
    if pick < 0.5:
        new = rng.choice(words).group(0)
    elif pick < 0.7:
        new = m.group(0).swapcase()
    elif pick < 0.85:
        w = m.group(0)
        k = rng.randrange(len(w))
        new = w[:k] + w[k + 1:]
    else:
        new = rng.choice([b"X", b"Xx", b"nan", b"inf", b"ATOMS", b"PRIMCOORD", b"begin",
                          b"end", b"atom", b"lattice", b"energy", b"zz"])
    return data[:m.start()] + new + data[m.end():]


def _lines(data: bytes) -> list[bytes]:
    return data.splitlines(keepends=True)


def m_line_dup(rng, data, other):
    lines = _lines(data)
    if not lines:
        return data
    k = rng.randrange(len(lines))
    times = 1 if rng.random() < 0.8 else rng.randint(2, 200)
    return b"".join(lines[:k] + [lines[k]] * (times + 1) + lines[k + 1:])


def m_line_del(rng, data, other):
    lines = _lines(data)
    if not lines:
        return data
    k = rng.randrange(len(lines))
    return b"".join(lines[:k] + lines[k + rng.randint(1, 3):])


def m_line_swap(rng, data, other):
    lines = _lines(data)
    if len(lines) < 2:
        return data
    i, j = rng.randrange(len(lines)), rng.randrange(len(lines))
    lines[i], lines[j] = lines[j], lines[i]
    return b"".join(lines)


def m_column(rng, data, other):
    """Drop a column of a line, or add one."""
    lines = _lines(data)
    if not lines:
        return data
    k = rng.randrange(len(lines))
    toks = lines[k].split()
    if toks and rng.random() < 0.5:
        del toks[rng.randrange(len(toks))]
    else:
        toks.insert(rng.randrange(len(toks) + 1), rng.choice([*SPECIAL_NUMBERS[:16], b"x"]))
    lines[k] = b" ".join(toks) + b"\n"
    return b"".join(lines)


BYTE_MUTATORS = [m_flip, m_byte, m_insert, m_delete, m_dup_range, m_truncate, m_splice]
TOKEN_MUTATORS = [m_number, m_number, m_number, m_integer, m_integer, m_word, m_line_dup,
                  m_line_del, m_line_swap, m_column]


def mutate(rng: random.Random, data: bytes, others: list[bytes], token_weight: float = 0.6,
           max_ops: int = 4) -> tuple[bytes, list[str]]:
    """``data`` after 1..max_ops random mutations (geometric count); the names applied."""
    ops = []
    n = 1
    while n < max_ops and rng.random() < 0.4:
        n += 1
    for _ in range(n):
        pool = TOKEN_MUTATORS if rng.random() < token_weight else BYTE_MUTATORS
        op = rng.choice(pool)
        data = op(rng, data, rng.choice(others) if others else b"")
        ops.append(op.__name__[2:])
    return data, ops


@contextlib.contextmanager
def unlimited_int_digits():
    """Allow >4300-digit integers (to *write* them; the worker keeps Python's limit)."""
    old = sys.get_int_max_str_digits()
    sys.set_int_max_str_digits(0)
    try:
        yield
    finally:
        sys.set_int_max_str_digits(old)


# --------------------------------------------------------------------------------- seeds

def _fmt(x: float) -> str:
    return f"{x:.10f}"


def _xsf_text(symbols, positions, cell=None, forces=None, energy=None, kind="CRYSTAL",
              conv=False) -> str:
    out = []
    if energy is not None:
        out += [f"# total energy = {energy!r} eV", ""]
    if cell is None:
        out.append("ATOMS")
    else:
        out.append(kind)
        if conv:
            out.append("CONVVEC")
            out += ["  ".join(_fmt(x) for x in v) for v in cell]
        out.append("PRIMVEC")
        out += ["  ".join(_fmt(x) for x in v) for v in cell]
        if conv:
            out.append("CONVCOORD")
            out.append(f"{len(symbols)} 1")
            out += [f"{s} " + " ".join(_fmt(x) for x in p) for s, p in zip(symbols, positions)]
        out.append("PRIMCOORD")
        out.append(f"{len(symbols)} 1")
    for k, (s, p) in enumerate(zip(symbols, positions)):
        line = f"{s:<3s} " + " ".join(_fmt(x) for x in p)
        if forces is not None:
            line += "  " + " ".join(_fmt(x) for x in forces[k])
        out.append(line)
    return "\n".join(out) + "\n"


#: rutile TiO2 (a = 4.594 Å, c = 2.959 Å, u = 0.305), slightly displaced
RUTILE_CELL = [[4.594, 0.0, 0.0], [0.0, 4.594, 0.0], [0.0, 0.0, 2.959]]
RUTILE_SYMBOLS = ["Ti", "Ti", "O", "O", "O", "O"]
RUTILE_FRAC = [[0.0, 0.0, 0.0], [0.5, 0.5, 0.5], [0.305, 0.305, 0.0], [0.695, 0.695, 0.0],
               [0.805, 0.195, 0.5], [0.195, 0.805, 0.5]]
RUTILE_POS = [[f[0] * 4.594 + 0.02 * k, f[1] * 4.594 - 0.01 * k, f[2] * 2.959 + 0.015]
              for k, f in enumerate(RUTILE_FRAC)]
#: a non-periodic Ti3O6 cluster, atoms ≥ 1.6 Å apart (Å)
CLUSTER_SYMBOLS = ["Ti", "Ti", "Ti", "O", "O", "O", "O", "O", "O"]
CLUSTER_POS = [[0.0, 0.0, 0.0], [3.1, 0.2, 0.1], [1.5, 2.7, 0.3], [1.6, 0.1, 0.9],
               [0.8, 1.5, -0.9], [2.4, 1.5, 1.1], [-1.2, -0.9, 0.8], [4.0, -1.0, -0.6],
               [1.4, 4.1, -0.7]]
#: water molecules (Å): O, H, H each
WATER_SYMBOLS = ["O", "H", "H"] * 3
WATER_POS = [[0.0, 0.0, 0.0], [0.957, 0.0, 0.0], [-0.24, 0.927, 0.0],
             [2.9, 0.1, 0.2], [3.4, 0.9, 0.3], [3.3, -0.6, 0.7],
             [1.2, 2.8, 0.4], [2.0, 2.3, 0.5], [0.6, 2.4, 1.1]]


def xsf_seeds(shared: bool = True) -> list[tuple[str, bytes]]:
    """A few ænet TiO2 structures from the shared archive (``shared``) plus hand-made
    ones."""
    seeds = []
    if shared and TIO2_ARCHIVE.exists():
        wanted_sizes = {777, 2471, 4539}
        with tarfile.open(TIO2_ARCHIVE) as tf:
            for m in tf:
                if m.isfile() and m.name.endswith(".xsf") and m.size in wanted_sizes:
                    wanted_sizes.discard(m.size)
                    seeds.append((Path(m.name).name, tf.extractfile(m).read()))
                    if not wanted_sizes:
                        break
    forces = [[0.01 * k, -0.02 * k, 0.005] for k in range(9)]
    made = {
        "rutile-primcoord.xsf": _xsf_text(RUTILE_SYMBOLS, RUTILE_POS, RUTILE_CELL, forces,
                                          -9876.54321),
        "rutile-convcoord.xsf": _xsf_text(RUTILE_SYMBOLS, RUTILE_POS, RUTILE_CELL, forces,
                                          -9876.5, conv=True),
        "rutile-noforces.xsf": _xsf_text(RUTILE_SYMBOLS, RUTILE_POS, RUTILE_CELL),
        "slab.xsf": _xsf_text(RUTILE_SYMBOLS, RUTILE_POS,
                              [[4.594, 0, 0], [0, 4.594, 0], [0, 0, 20.0]], forces, -1.0,
                              kind="SLAB"),
        "polymer.xsf": _xsf_text(["Ti", "O", "O"], [[0, 0, 0], [1.9, 0, 0], [0, 1.9, 0]],
                                 [[3.0, 0, 0], [0, 10, 0], [0, 0, 10]], None, -2.5,
                                 kind="POLYMER"),
        "cluster.xsf": _xsf_text(CLUSTER_SYMBOLS, CLUSTER_POS, None, forces, -12345.678),
        "molecule.xsf": _xsf_text(["O", "H", "H"], WATER_POS[:3], None, forces[:3], -14.2),
        "molecule-z.xsf": "# total energy = -1.4d1 eV\nMOLECULE\nATOMS\n8 0 0 0\n"
                          "1 0.96 0 0\n1 -0.24 0.93 0\n",
    }
    seeds += [(k, v.encode()) for k, v in made.items()]
    return seeds


def extxyz_seeds() -> list[tuple[str, bytes]]:
    """Hand-made extended XYZ frames (O/Ti, periodic and not) and the first frame of a
    bundled graphene data set."""
    import lzma

    def frame(symbols, pos, cell, pbc, energy):
        lattice = " ".join(repr(float(x)) for v in cell for x in v)
        head = (f'Lattice="{lattice}" Properties=species:S:1:pos:R:3:forces:R:3 '
                f'energy={energy!r} pbc="{" ".join("T" if p else "F" for p in pbc)}"')
        rows = [f"{e} " + " ".join(repr(float(x)) for x in (*p, 0.01 * k, -0.02, 0.0))
                for k, (e, p) in enumerate(zip(symbols, pos))]
        return "\n".join([str(len(symbols)), head, *rows]) + "\n"

    seeds = [("rutile.extxyz", frame(RUTILE_SYMBOLS, RUTILE_POS, RUTILE_CELL, (True,) * 3,
                                     -9876.5).encode()),
             ("cluster+slab.extxyz", (frame(CLUSTER_SYMBOLS, CLUSTER_POS, [[0.0] * 3] * 3,
                                            (False,) * 3, -123.4) +
                                      frame(RUTILE_SYMBOLS, RUTILE_POS, [[4.594, 0, 0],
                                            [0, 4.594, 0], [0, 0, 20.0]], (True, True, False),
                                            -1.5)).encode())]
    bundled = REPO / "src" / "hdnnp" / "data" / "graphene-A.extxyz.xz"
    if bundled.exists():
        lines = lzma.decompress(bundled.read_bytes()).decode().splitlines()
        n = int(lines[0])
        seeds.append(("graphene.extxyz", ("\n".join(lines[:n + 2]) + "\n").encode()))
    return seeds


def n2p2_data_seeds(shared: bool = True) -> list[tuple[str, bytes]]:
    """Frames of the shared water data set (bohr, hartree; ``shared``) plus a hand-made
    file."""
    seeds = []
    path = WATER / "input.data"
    if shared and path.exists():
        blocks = path.read_bytes().split(b"end\n")
        seeds.append(("frame1.data", blocks[0] + b"end\n"))
        seeds.append(("frames2-3.data", blocks[1] + b"end\n" + blocks[2] + b"end\n"))
    bohr = 1.0 / 0.529177210903
    lines = ["begin", "comment one water molecule, non-periodic"]
    for s, p in zip(WATER_SYMBOLS[:3], WATER_POS[:3]):
        lines.append(f"atom {p[0] * bohr!r} {p[1] * bohr!r} {p[2] * bohr!r} {s} 0.0 0.0 "
                     "0.001 -0.002 0.0")
    lines += ["energy -17.25", "charge 0.0", "end"]
    lines += ["begin", "comment three molecules in a periodic box"]
    for v in ([16.0, 0, 0], [0, 16.0, 0], [0.5, 0, 16.0]):
        lines.append("lattice " + " ".join(repr(x) for x in v))
    for s, p in zip(WATER_SYMBOLS, WATER_POS):
        lines.append(f"atom {p[0] * bohr + 2!r} {p[1] * bohr + 2!r} {p[2] * bohr + 2!r} {s} "
                     "0.1 0.0 1.0d-3 0.0 -2.0D-3")
    lines += ["energy -51.75", "charge 0.0", "end"]
    seeds.append(("handmade.data", ("\n".join(lines) + "\n").encode()))
    return seeds


def _write_doc(path: Path, doc: dict) -> bytes:
    from hdnnp.potential import _checksum

    doc["created"] = "2026-01-01T00:00:00+00:00"  # fixed: the seeds are reproducible
    doc["sha256"] = _checksum(doc)
    data = json.dumps(doc, indent=1).encode()
    path.write_bytes(data)
    return data


def build_models(outdir: Path) -> list[tuple[str, bytes]]:
    """Small O/Ti potentials written with hdnnp's own API: Chebyshev, Behler symmetry
    functions, a 2-member committee, and a gzip-compressed copy of the first."""
    import torch

    from hdnnp.descriptors import BehlerParrinello, Chebyshev
    from hdnnp.model import NeuralNetworkPotential
    from hdnnp.potential import potential_to_dict

    outdir.mkdir(parents=True, exist_ok=True)
    elements = ["O", "Ti"]
    behler = [
        {"type": "G2", "center": "Ti", "neighbours": ["O"], "rc": 5.0, "eta": 0.8, "rs": 1.9},
        {"type": "G2", "center": "O", "neighbours": ["Ti"], "rc": 5.0, "eta": 0.3, "rs": 0.0},
        {"type": "G2", "center": "O", "neighbours": ["O"], "rc": 5.5, "eta": 0.5, "rs": 2.5},
        {"type": "G4", "center": "Ti", "neighbours": ["O", "O"], "rc": 5.0, "eta": 0.01,
         "lambda": 1, "zeta": 2},
        {"type": "G5", "center": "O", "neighbours": ["Ti", "O"], "rc": 4.5, "eta": 0.05,
         "lambda": -1, "zeta": 1},
    ]

    def make(descriptor, hidden, seed):
        model = NeuralNetworkPotential(descriptor, hidden=hidden, activation="tanh")
        gen = torch.Generator().manual_seed(seed)
        for net in model.networks.values():
            net.reset_parameters(gen)
            with torch.no_grad():
                net.input_shift.uniform_(-0.5, 0.5, generator=gen)
                net.input_scale.uniform_(0.2, 1.0, generator=gen)
                net.output_scale.fill_(0.7)
                net.output_shift.fill_(-1.3)
        model.reference_energies[:] = torch.tensor([-432.503149303, -1604.604515075],
                                                   dtype=torch.float64)
        return model

    cheb = make(Chebyshev(elements, 5.0, 4, 4.0, 2), (5, 4), 0)
    beh = make(BehlerParrinello(elements, behler), (4,), 1)
    comm = NeuralNetworkPotential.committee([make(Chebyshev(elements, 5.0, 4, 4.0, 2), (5, 4),
                                                  s) for s in (2, 3)])
    seeds = []
    for name, model in (("chebyshev.json", cheb), ("behler.json", beh),
                        ("committee.json", comm)):
        data = _write_doc(outdir / name, potential_to_dict(model, training={"seed": 1}))
        seeds.append((name, data))
    seeds.append(("chebyshev.json.gz", gzip.compress(seeds[0][1], mtime=0)))
    return seeds


def n2p2_potential_seed() -> dict[str, bytes]:
    names = ("input.nn", "scaling.data", "weights.001.data", "weights.008.data")
    if not all((WATER / n).exists() for n in names):
        return {}
    return {n: (WATER / n).read_bytes() for n in names}


CONFIG_SEEDS = {
    "tio2.yaml": """\
data:
  train: [../shared/data/aenet-TiO2/TiO2-xsf.tar.gz]
  reference_energies: {O: -432.503149303, Ti: -1604.604515075}
  max_energy_above_min: 1.0
  n_structures: 1000
  test_fraction: 0.1
  seed: 1
descriptor:
  kind: chebyshev
  radial_rc: 8.0
  radial_order: 16
  angular_rc: 6.5
  angular_order: 4
network:
  hidden: [15, 15]
  activation: tanh
training:
  optimizer: adam
  epochs: 300
  batch_size: 16
  learning_rate: 0.002
  force_weight: 0.1
output: runs/tio2
""",
    "behler-lbfgs.yaml": """\
data:
  train: [a.xsf, b.extxyz]
  test: [c.xsf]
  format: null
  max_energy_per_atom: 2.5
descriptor: {kind: behler, cutoff: 6.0, size: 8}
network:
  hidden: [10, 10, 10]
  activation: [tanh, softplus, mtanh]
training:
  optimizer: lbfgs
  epochs: 50
  lbfgs_history: 20
  lbfgs_iterations_per_epoch: 2
  energy_weight: 1.0
  force_weight: 0.5
  force_fraction: 0.5
  early_stopping_patience: 10
  committee: 2
  jobs: 1
  threads: 1
  max_time_s: 3600.0
  dtype: float64
  jacobian_dtype: float32
  device: cpu
figures: false
output: runs/behler
""",
    "sgd-n2p2.yaml": """\
data:
  train: [water/input.data]
  length_unit: bohr
  energy_unit: hartree
  test_fraction: 0.2
  seed: 7
descriptor: {kind: chebyshev, cutoff: 6.5, size: 6}
network: {hidden: [8], activation: sigmoid}
training:
  optimizer: sgd
  epochs: 20
  batch_size: 4
  learning_rate: 0.01
  learning_rate_final: 1.0e-05
  momentum: 0.5
  weight_decay: 1.0e-06
  refine_epochs: 5
  eval_train_every: 5
  seed: 3
  init_model: null
output: runs/sgd
""",
    "minimal.yaml": "data:\n  train: bundled:graphene-A\n",
}


def config_seeds() -> list[tuple[str, bytes]]:
    seeds = [(k, v.encode()) for k, v in CONFIG_SEEDS.items()]
    example = REPO / "examples" / "graphene-A.yaml"
    if example.exists():
        seeds.insert(0, ("graphene-A.yaml", example.read_bytes()))
    return seeds


@dataclass
class Seeds:
    xsf: list = field(default_factory=list)
    n2p2_data: list = field(default_factory=list)
    extxyz: list = field(default_factory=list)
    models: list = field(default_factory=list)
    model_docs: list = field(default_factory=list)
    n2p2_potential: dict = field(default_factory=dict)
    configs: list = field(default_factory=list)
    directory: Path | None = None  # worker-side copies: models/, n2p2/


def build_seeds(directory: Path, targets) -> Seeds:
    s = Seeds(directory=directory)
    t = set(targets)
    if "xsf" in t:
        s.xsf = xsf_seeds()
    if "n2p2-data" in t:
        s.n2p2_data = n2p2_data_seeds()
    if "extxyz" in t:
        s.extxyz = extxyz_seeds()
    # the xsf target evaluates accepted structures with the O/Ti model
    if t & {"xsf", "extxyz", "model-bytes", "model-edit"}:
        s.models = build_models(directory / "models")
        s.model_docs = [(n, json.loads(d)) for n, d in s.models if n.endswith(".json")]
    if t & {"n2p2-potential", "n2p2-data"}:
        s.n2p2_potential = n2p2_potential_seed()
        if s.n2p2_potential:
            (directory / "n2p2").mkdir(parents=True, exist_ok=True)
            for n, d in s.n2p2_potential.items():
                (directory / "n2p2" / n).write_bytes(d)
    if "config" in t:
        s.configs = config_seeds()
    return s


# ----------------------------------------------------------------------------- generators

@dataclass
class Case:
    files: dict  # relative path -> bytes (a None value: the file is absent)
    note: str = ""


_NASTY_FLOATS = [math.nan, math.inf, -math.inf, 1e300, -1e300, 0.0, -0.0, 1e-300, 1e6,
                 -1e6, 1e5, 99999.99, 100000.01, 1e-8]


def _nasty_float(rng: random.Random, scale: float = 5.0) -> float:
    return rng.choice(_NASTY_FLOATS) if rng.random() < 0.15 else rng.uniform(-scale, scale)


def random_geometry(rng: random.Random, max_atoms: int = 20) -> dict:
    """A random structure: 0..max_atoms atoms, a cell that may be NaN/inf/1e300/zero/
    degenerate/tiny/huge, far-away and duplicated atoms, random periodicity."""
    n = rng.randint(0, max_atoms)
    kind = rng.random()
    if kind < 0.35:  # a sane-ish box
        a = rng.uniform(2.0, 15.0)
        cell = [[a * rng.uniform(0.8, 1.2) if i == j else rng.uniform(-0.5, 0.5)
                 for j in range(3)] for i in range(3)]
    elif kind < 0.5:  # degenerate: zero, collinear, coplanar vectors
        v = [rng.uniform(-5, 5) for _ in range(3)]
        cell = rng.choice([[[0.0] * 3] * 3, [v, v, [1, 2, 3]], [v, [2 * x for x in v], v],
                           [[5, 0, 0], [0, 5, 0], [5, 5, 1e-12]], [[1e-7, 0, 0], [0, 5, 0],
                                                                   [0, 0, 5]]])
    elif kind < 0.65:  # huge / tiny / extreme aspect
        cell = rng.choice([[[1e5, 0, 0], [0, 1e5, 0], [0, 0, 1e5]],
                           [[99999.0, 0, 0], [0, 0.2, 0], [0, 0, 0.2]],
                           [[0.11, 0, 0], [0, 0.11, 0], [0, 0, 0.11]],
                           [[1e300, 0, 0], [0, 1, 0], [0, 0, 1]],
                           [[3, 0, 0], [0, 3, 0], [0, 0, 1e5]],
                           [[0.5, 0, 0], [0, 0.5, 0], [0, 0, 0.5]]])
    else:
        cell = [[_nasty_float(rng, 10.0) for _ in range(3)] for _ in range(3)]
    box = 8.0 if rng.random() < 0.7 else rng.choice([0.5, 30.0, 1e4])
    pos = [[rng.uniform(0, box) for _ in range(3)] for _ in range(n)]
    for p in pos:
        r = rng.random()
        if r < 0.05:
            p[rng.randrange(3)] = rng.choice(_NASTY_FLOATS)
        elif r < 0.1 and pos:
            p[:] = list(rng.choice(pos))  # a duplicate
        elif r < 0.13:
            p[rng.randrange(3)] += rng.choice([1e4, -1e4, 9.9e4, 1e6])
    pbc = [rng.random() < 0.5 for _ in range(3)] if rng.random() < 0.6 else \
        [rng.random() < 0.5] * 3
    cutoff = rng.choice([rng.uniform(0.5, 12.0)] * 6 + [0.0, -1.0, math.nan, math.inf, 1e4,
                                                        30.0, 30.01, 1e-9, 0.5, 12.0])
    return {"positions": pos, "cell": [list(map(float, v)) for v in cell], "pbc": pbc,
            "cutoff": cutoff, "symbols": [rng.choice(["O", "Ti"]) for _ in range(n)]}


def _geometry_xsf(rng: random.Random, g: dict) -> bytes:
    n = len(g["positions"])
    forces = [[_nasty_float(rng, 1.0) for _ in range(3)] for _ in range(n)] \
        if rng.random() < 0.6 else None
    energy = _nasty_float(rng, 1e4) if rng.random() < 0.7 else None
    periodic = any(g["pbc"]) or rng.random() < 0.3

    def num(x):
        return repr(float(x))

    out = []
    if energy is not None:
        out += [f"# total energy = {num(energy)} eV", ""]
    if periodic:
        out.append(rng.choice(["CRYSTAL", "CRYSTAL", "SLAB", "POLYMER"]))
        out.append("PRIMVEC")
        out += [" ".join(num(x) for x in v) for v in g["cell"]]
        out += ["PRIMCOORD", f"{n} 1"]
    else:
        out.append("ATOMS")
    for k, (s, p) in enumerate(zip(g["symbols"], g["positions"])):
        line = f"{s} " + " ".join(num(x) for x in p)
        if forces is not None:
            line += " " + " ".join(num(x) for x in forces[k])
        out.append(line)
    return ("\n".join(out) + "\n").encode()


def _geometry_n2p2(rng: random.Random, g: dict) -> bytes:
    def num(x):
        return repr(float(x))

    out = ["begin"]
    if all(g["pbc"]) or rng.random() < 0.4:
        out += ["lattice " + " ".join(num(x) for x in v) for v in g["cell"]]
    for s, p in zip(g["symbols"], g["positions"]):
        s = "H" if s == "Ti" else s
        f = [_nasty_float(rng, 0.1) for _ in range(3)]
        out.append(f"atom {' '.join(num(x) for x in p)} {s} {num(_nasty_float(rng, 1.0))} 0.0 "
                   f"{' '.join(num(x) for x in f)}")
    if rng.random() < 0.8:
        out.append(f"energy {num(_nasty_float(rng, 100.0))}")
    if rng.random() < 0.5:
        out.append(f"charge {num(_nasty_float(rng, 1.0))}")
    out.append("end")
    return ("\n".join(out) + "\n").encode()


def gen_xsf(rng, seeds: Seeds) -> Case:
    if rng.random() < 0.15:
        return Case({"input.xsf": _geometry_xsf(rng, random_geometry(rng))}, "random geometry")
    name, data = rng.choice(seeds.xsf)
    data, ops = mutate(rng, data, [d for _, d in seeds.xsf])
    return Case({"input.xsf": data}, f"{name}: {', '.join(ops)}")


def gen_n2p2_data(rng, seeds: Seeds) -> Case:
    if rng.random() < 0.15:
        return Case({"input.data": _geometry_n2p2(rng, random_geometry(rng))},
                    "random geometry")
    name, data = rng.choice(seeds.n2p2_data)
    data, ops = mutate(rng, data, [d for _, d in seeds.n2p2_data])
    return Case({"input.data": data}, f"{name}: {', '.join(ops)}")


def _geometry_extxyz(rng: random.Random, g: dict) -> bytes:
    lattice = " ".join(repr(float(x)) for v in g["cell"] for x in v)
    energy = _nasty_float(rng, 1e4)
    head = (f'Lattice="{lattice}" Properties=species:S:1:pos:R:3:forces:R:3 '
            f'energy={energy!r} pbc="{" ".join("T" if p else "F" for p in g["pbc"])}"')
    rows = [f"{e} " + " ".join(repr(float(x)) for x in (*p, *(_nasty_float(rng, 1.0)
                                                             for _ in range(3))))
            for e, p in zip(g["symbols"], g["positions"])]
    return ("\n".join([str(len(rows)), head, *rows]) + "\n").encode()


def gen_extxyz(rng, seeds: Seeds) -> Case:
    if rng.random() < 0.15:
        return Case({"input.extxyz": _geometry_extxyz(rng, random_geometry(rng))},
                    "random geometry")
    name, data = rng.choice(seeds.extxyz)
    data, ops = mutate(rng, data, [d for _, d in seeds.extxyz])
    return Case({"input.extxyz": data}, f"{name}: {', '.join(ops)}")


def gen_model_bytes(rng, seeds: Seeds) -> Case:
    name, data = rng.choice(seeds.models)
    others = [d for n, d in seeds.models if not n.endswith(".gz")]
    if name.endswith(".gz") and rng.random() < 0.5:  # garble the JSON inside valid gzip
        inner, ops = mutate(rng, gzip.decompress(data), others, token_weight=0.3)
        return Case({"model.json": gzip.compress(inner, mtime=0)},
                    f"{name} (inside gzip): {', '.join(ops)}")
    data, ops = mutate(rng, data, others, token_weight=0.3)
    return Case({"model.json": data}, f"{name}: {', '.join(ops)}")


def _paths(node, prefix=()):
    """Every (path, value) of a JSON document, containers included."""
    yield prefix, node
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for k, v in enumerate(node):
            yield from _paths(v, (*prefix, k))


def _get(doc, path):
    for p in path:
        doc = doc[p]
    return doc


_DEEP = "\x00deep\x00"


def _finite_number(x) -> bool:
    """A finite int or float, not a bool (huge ints, which float() cannot hold, count)."""
    if isinstance(x, bool) or not isinstance(x, int | float):
        return False
    return isinstance(x, int) or math.isfinite(x)


def _edit_values(rng: random.Random, old=None):
    """A replacement value for a JSON leaf or node."""
    choices = [math.nan, math.inf, -math.inf, 1e300, -1e300, -0.0, 0, -1, 1, 2.5, 10**9,
               HUGE_INT, -HUGE_INT, "abc", "nan", "inf", "-inf", "", None, True, False, [],
               {}, [1, 2, 3], [[math.nan]], {"a": 1}, "x" * 10000, 1e4, 1e-300, 100000, _DEEP]
    if _finite_number(old):
        choices += [old * 10**rng.randint(1, 8), -old, old + 1, old - 1,
                    old / 10**9 if abs(old) < 1e300 else old // 10**9]
    if isinstance(old, list) and old:
        choices += [old[:-1], [*old, old[-1]], old * 2, old[::-1]]
    if isinstance(old, str):
        choices += [old.upper(), old[:-1], old + "x", [old]]
    return rng.choice(choices)


def edit_json(rng: random.Random, doc: dict, n_edits: int) -> list[str]:
    """Edit ``doc`` in place: replace/delete/rename random leaves, nodes and keys."""
    ops = []
    for _ in range(n_edits):
        paths = [p for p, _ in _paths(doc) if p]
        if not paths:
            break
        # pick a key *pattern* first (indices folded), then an instance: every kind of
        # field is hit, not mostly weights
        patterns: dict[tuple, list] = {}
        for p in paths:
            patterns.setdefault(tuple("*" if isinstance(x, int) else x for x in p), []).append(p)
        path = rng.choice(patterns[rng.choice(sorted(patterns, key=repr))])
        parent = _get(doc, path[:-1])
        key = path[-1]
        op = rng.random()
        label = ".".join(map(str, path))
        if op < 0.6:
            parent[key] = _edit_values(rng, parent[key])
            ops.append(f"set {label}")
        elif op < 0.75:
            del parent[key]
            ops.append(f"delete {label}")
        elif op < 0.9 and isinstance(parent, dict):
            new = rng.choice([key.upper(), key[:-1], key + "_", "x" + key, "sha256",
                              "committee", "weights", "version"])
            parent[new] = parent.pop(key)
            ops.append(f"rename {label} -> {new}")
        elif isinstance(parent, dict):
            parent[rng.choice(["junk", "committee", "extra", "sha256x"])] = \
                _edit_values(rng, None)
            ops.append(f"add key next to {label}")
        else:
            parent.insert(rng.randrange(len(parent) + 1), _edit_values(rng, parent[key]))
            ops.append(f"insert into {label}")
    return ops


def _checksum(doc: dict) -> str:
    """hdnnp's checksum of a potential document (``hdnnp.potential._checksum``)."""
    try:
        from hdnnp.potential import _checksum as package_checksum
    except ImportError:  # the package renamed it: the algorithm it had
        import hashlib

        body = {k: v for k, v in doc.items() if k != "sha256"}
        return hashlib.sha256(json.dumps(body, sort_keys=True,
                                         separators=(",", ":")).encode()).hexdigest()
    return package_checksum(doc)


def gen_model_edit(rng, seeds: Seeds) -> Case:
    name, original = rng.choice(seeds.model_docs)
    doc = copy.deepcopy(original)
    n = 1
    while n < 4 and rng.random() < 0.35:
        n += 1
    with unlimited_int_digits():
        ops = edit_json(rng, doc, n)
        if "sha256" in doc:  # renamed or deleted: stays so (the loader must notice)
            doc["sha256"] = _checksum(doc)
        text = json.dumps(doc, indent=1)
    depth = rng.choice([1000, 100000])
    text = text.replace(json.dumps(_DEEP), "[" * depth + "]" * depth)
    return Case({"model.json": text.encode()}, f"{name}: {'; '.join(ops)}")


_INPUT_NN_EDITS = [
    (rb"global_nodes_short[^\n#]*", [b"global_nodes_short 100000000 25",
                                      b"global_nodes_short 0 25", b"global_nodes_short -5 25",
                                      b"global_nodes_short 25", b"global_nodes_short 25 25 25",
                                      b"global_nodes_short " + HUGE + b" 25"]),
    (rb"global_hidden_layers_short[^\n#]*", [b"global_hidden_layers_short 0",
                                              b"global_hidden_layers_short -1",
                                              b"global_hidden_layers_short 1000",
                                              b"global_hidden_layers_short 1"]),
    (rb"global_activation_short[^\n#]*", [b"global_activation_short t t", b"global_activation_"
                                          b"short q q q", b"global_activation_short t t l l"]),
    (rb"cutoff_type[^\n#]*", [b"cutoff_type 99", b"cutoff_type -1", b"cutoff_type 6 nan",
                              b"cutoff_type 2 5.0", b"cutoff_type"]),
    (rb"number_of_elements[^\n#]*", [b"number_of_elements 3", b"number_of_elements 0",
                                     b"number_of_elements 1"]),
    (rb"elements  [^\n#]*", [b"elements H X", b"elements H", b"elements H O Ti",
                             b"elements O H", b"elements H H"]),
    (rb"scale_min_short[^\n#]*", [b"scale_min_short 1.0", b"scale_min_short nan"]),
    (rb"# Length unit[^\n]*", [b"# Length unit : furlong", b"", b"# Length unit : Angstrom",
                               b"# Length unit : 1e300"]),
    (rb"# Energy unit[^\n]*", [b"# Energy unit : ", b"", b"# Energy unit : eV"]),
    (rb"symfunction_short [^\n]*", [b"symfunction_short H 2 H 0.001 0.0 1e4",
                                    b"symfunction_short H 2 H -1.0 0.0 12.0",
                                    b"symfunction_short H 2 H 0.001 0.0 0.0",
                                    b"symfunction_short H 3 O O 0.01 1.0 0.0 12.0",
                                    b"symfunction_short H 3 O O 0.01 1.0 -4.0 12.0",
                                    b"symfunction_short H 99 H 1 2 3",
                                    b"symfunction_short X 2 H 0.001 0.0 12.0",
                                    b"symfunction_short H 2 H nan 0.0 12.0"]),
]


def gen_n2p2_potential(rng, seeds: Seeds) -> Case:
    files = dict(seeds.n2p2_potential)
    r = rng.random()
    if r < 0.03:  # a file missing
        victim = rng.choice(sorted(files))
        files[victim] = None
        return Case(files, f"{victim} missing")
    name = rng.choices(sorted(files), weights=[50 if n == "input.nn" else
                                               20 if n == "scaling.data" else 15
                                               for n in sorted(files)])[0]
    data = files[name]
    ops = []
    if name == "input.nn" and rng.random() < 0.35:
        pattern, values = rng.choice(_INPUT_NN_EDITS)
        matches = list(re.finditer(pattern, data))
        if matches:
            m = rng.choice(matches)
            data = data[:m.start()] + rng.choice(values) + data[m.end():]
            ops.append(f"edit {m.group(0)[:30].decode(errors='replace').strip()}")
    if not ops or rng.random() < 0.3:
        data, more = mutate(rng, data, [files[n] for n in sorted(files) if files[n]],
                            token_weight=0.75)
        ops += more
    files[name] = data
    return Case(files, f"{name}: {', '.join(ops)}")


def _config_fields() -> dict[str, list[str]]:
    """Known keys per section, from hdnnp's configuration classes (pydantic models or
    dataclasses), so the edits follow the schema as it is."""
    sections = {"data": "DataConfig", "network": "NetworkConfig", "training": "OptimConfig",
                "": "TrainConfig"}
    out = {}
    try:
        import dataclasses

        from hdnnp.training import config as cfgmod
        for section, cls_name in sections.items():
            cls = getattr(cfgmod, cls_name)
            names = list(getattr(cls, "model_fields", {}) or
                         [f.name for f in dataclasses.fields(cls)])
            out[section] = names
    except Exception:  # the schema is being rewritten: fall back to the known keys
        out = {"": ["data", "descriptor", "network", "training", "output", "figures"],
               "data": ["train", "test", "format", "reference_energies", "n_structures",
                        "test_fraction", "seed"],
               "network": ["hidden", "activation"],
               "training": ["optimizer", "epochs", "batch_size", "learning_rate",
                            "force_weight", "energy_weight", "seed", "committee", "jobs"]}
    out["descriptor"] = ["kind", "cutoff", "size", "radial_rc", "radial_order", "angular_rc",
                         "angular_order", "functions"]
    return out


def _config_value(rng: random.Random, old=None, depth: int = 0):
    choices = [math.nan, math.inf, -math.inf, 1e300, -1e300, -1, 0, -0.0, 1, 3.5, 10**12,
               HUGE_INT, "abc", "1e-3", "nan", "", "  ", None, True, False, [], {},
               [1, "a", None], "x" * 5000, "../../x", 2**63, -(2**63) - 1, 1e-320,
               "tanh", "chebyshev", "behler", "adam", "float16", [15, 15], ["20"], "20"]
    if depth < 3 and rng.random() < 0.15:
        return rng.choice([[_config_value(rng, None, depth + 1) for _ in range(rng.randint(
            0, 3))], {rng.choice(["a", "kind", "epochs", "train"]): _config_value(
                rng, None, depth + 1)}])
    if _finite_number(old):
        choices += [-old, old * 10**6]
        if abs(old) < 1e300:
            choices.append(str(old))
        if abs(old) < 1e300:
            choices += [old + 0.5, int(old) if old == int(old) else old]
    if isinstance(old, list) and old:
        choices += [old[0], old * 3, old[:-1], [old]]
    return rng.choice(choices)


def _typo(rng: random.Random, key: str) -> str:
    if len(key) < 2:
        return key + "x"
    k = rng.randrange(len(key) - 1)
    return rng.choice([key[:k] + key[k + 1] + key[k] + key[k + 2:], key[:k] + key[k + 1:],
                       key.upper(), key.replace("_", "-"), key + " ", key[:k] + key[k] * 2
                       + key[k + 1:], key.capitalize()])


_ALIAS_BOMB = """\
a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]
b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]
c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]
d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]
e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]
f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]
g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]
h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g]
i: &i [*h, *h, *h, *h, *h, *h, *h, *h, *h]
"""


def gen_config(rng, seeds: Seeds) -> Case:
    import yaml

    name, data = rng.choice(seeds.configs)
    r = rng.random()
    if r < 0.25:  # text level
        data, ops = mutate(rng, data, [d for _, d in seeds.configs], token_weight=0.7)
        return Case({"config.yaml": data}, f"{name}: {', '.join(ops)}")
    if r < 0.27:  # YAML-specific: alias bomb, deep nesting, tags
        special = rng.choice([
            _ALIAS_BOMB.encode() + b"data:\n  train: *i\n",
            _ALIAS_BOMB.encode() + b"training: {epochs: *i}\n",
            b"data:\n  train: " + b"[" * 50000 + b"]" * 50000 + b"\n",
            b"data: !!python/object/apply:os.system ['true']\n",
            b"output: !!binary aGVsbG8=\n",
            b"training: {epochs: 1\n",
            b"\xff\xfe\x00d\x00a\x00t\x00a\x00",
            b"data: {train: [a.xsf]}\ndata: {train: [b.xsf]}\n",
            b"--- \n...\n--- {data: 1}\n",
        ])
        return Case({"config.yaml": special}, f"{name}: yaml special")
    doc = yaml.safe_load(data)
    fields = _config_fields()
    ops = []
    n = 1
    while n < 4 and rng.random() < 0.4:
        n += 1
    for _ in range(n):
        op = rng.random()
        sections = [s for s in ("data", "network", "training", "descriptor")
                    if isinstance(doc.get(s), dict)]
        if op < 0.45:  # set a known key (present or not) to a nasty value
            section = rng.choice(["", *fields])
            key = rng.choice(fields[section])
            target = doc if section == "" else doc.setdefault(section, {})
            if not isinstance(target, dict):
                continue
            target[key] = _config_value(rng, target.get(key))
            ops.append(f"set {section + '.' if section else ''}{key}")
        elif op < 0.6 and sections:  # typo in a key
            s = rng.choice(sections)
            if doc[s]:
                key = rng.choice(sorted(doc[s]))
                doc[s][_typo(rng, key)] = doc[s].pop(key)
                ops.append(f"typo {s}.{key}")
        elif op < 0.7 and sections:  # delete a key
            s = rng.choice(sections)
            if doc[s]:
                key = rng.choice(sorted(doc[s]))
                del doc[s][key]
                ops.append(f"delete {s}.{key}")
        elif op < 0.78 and sections:  # move a key to another section
            s, t = rng.choice(sections), rng.choice(sections)
            if doc[s]:
                key = rng.choice(sorted(doc[s]))
                doc[t][key] = doc[s].pop(key)
                ops.append(f"move {s}.{key} -> {t}")
        elif op < 0.88:  # a section that is not a mapping, or junk keys
            key = rng.choice(["data", "network", "training", "descriptor", "output", "junk",
                              "Data", "figures"])
            doc[key] = _config_value(rng, doc.get(key))
            ops.append(f"replace {key}")
        elif op < 0.93:  # the whole document
            doc = _config_value(rng, None)
            ops.append("replace document")
            break
        else:  # garbage nested anywhere
            if sections:
                s = rng.choice(sections)
                doc[s][rng.choice(["x", "nested", *fields.get(s, ["x"])])] = \
                    _config_value(rng, None, depth=0)
                ops.append(f"nested garbage in {s}")
    with unlimited_int_digits():
        text = yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=1000)
    data = text.encode()
    if rng.random() < 0.15:
        data, more = mutate(rng, data, [], token_weight=0.8, max_ops=2)
        ops += more
    return Case({"config.yaml": data}, f"{name}: {'; '.join(ops)}")


def gen_neighbours(rng, seeds: Seeds) -> Case:
    g = random_geometry(rng)
    return Case({"structure.json": json.dumps(g).encode()}, "random geometry")


GENERATORS = {"xsf": gen_xsf, "n2p2-data": gen_n2p2_data, "model-bytes": gen_model_bytes,
              "model-edit": gen_model_edit, "n2p2-potential": gen_n2p2_potential,
              "config": gen_config, "neighbours": gen_neighbours, "extxyz": gen_extxyz}


def generate(target: str, index: int, seed: int, seeds: Seeds) -> Case:
    """Input ``index`` of ``target``: a function of (seed, target, index) only."""
    for attempt in range(100):
        # a mutation of a mutation can produce what the generator itself cannot handle
        # (a 5000-digit count, say): draw again, deterministically
        rng = random.Random(f"{seed}/{target}/{index}" + (f"/{attempt}" if attempt else ""))
        try:
            return GENERATORS[target](rng, seeds)
        except (ValueError, OverflowError, IndexError, RecursionError):
            continue
    raise RuntimeError(f"the generator of {target} failed 100 times on input {index}")


# -------------------------------------------------------------------------------- worker

def _finite(x) -> bool:
    import numpy as np

    try:
        return bool(np.isfinite(np.asarray(x, dtype=np.float64)).all())
    except (TypeError, ValueError):
        return False


class _Probes:
    """Small structures to evaluate a loaded potential on (cached by element list)."""

    def __init__(self):
        self.cache = {}

    def __call__(self, elements) -> list:
        from ase import Atoms

        key = tuple(elements)
        if key in self.cache:
            return self.cache[key]
        els = list(elements)
        out = []
        if {"O", "Ti"} <= set(els):
            out.append(("rutile", Atoms(RUTILE_SYMBOLS, positions=RUTILE_POS, cell=RUTILE_CELL,
                                        pbc=True)))
            out.append(("cluster", Atoms(CLUSTER_SYMBOLS, positions=CLUSTER_POS)))
        if {"H", "O"} <= set(els):
            out.append(("water cluster", Atoms(WATER_SYMBOLS, positions=WATER_POS)))
            box = Atoms(WATER_SYMBOLS[:6], positions=[[x + 1.0 for x in p] for p in
                                                      WATER_POS[:6]],
                        cell=[[7.0, 0, 0], [0, 7.0, 0], [0.3, 0, 7.0]], pbc=True)
            out.append(("water box", box))
        if not out:  # the model's own elements on a generic geometry
            syms = [els[k % len(els)] for k in range(6)]
            out.append(("generic", Atoms(syms, positions=RUTILE_POS, cell=RUTILE_CELL,
                                         pbc=True)))
            out.append(("generic cluster", Atoms(syms, positions=CLUSTER_POS[:6])))
        out.append(("lone atom", Atoms(els[:1], positions=[[0.0, 0.0, 0.0]])))
        self.cache[key] = out
        return out


class Worker:
    """The worker side: runs one input at a time and reports its classification."""

    def __init__(self, seed_dir: Path, workdir: Path):
        import warnings

        import torch

        warnings.simplefilter("ignore")
        torch.set_num_threads(1)
        self.seed_dir = seed_dir
        self.case = workdir / "case"
        self.probes = _Probes()
        self.models = {}

    def _model(self, which: str):
        """The O/Ti model (xsf) or the water potential (n2p2-data), loaded once."""
        if which not in self.models:
            from hdnnp.calculator import Calculator

            path = (self.seed_dir / "models" / "chebyshev.json" if which == "tio2"
                    else self.seed_dir / "n2p2")
            try:
                calc = Calculator(str(path), device="cpu", extrapolation="ignore")
            except Exception:  # the fuzz target itself is elsewhere
                calc = None
            self.models[which] = calc
        return self.models[which]

    # ---- what a user does with each kind of input

    def _structures(self, structures, calc) -> list[str]:
        """Finite numbers, a neighbour list and (for known elements) energy and forces."""
        import numpy as np

        from hdnnp.neighbours import neighbour_pairs

        problems = []
        for k, atoms in enumerate(structures):
            what = f"structure {k + 1}"
            if not _finite(atoms.get_positions()):
                problems.append(f"{what}: non-finite positions")
            if not _finite(atoms.cell.array):
                problems.append(f"{what}: non-finite cell")
            results = getattr(atoms.calc, "results", {}) or {}
            for key in ("energy", "forces", "free_energy", "stress"):
                if results.get(key) is not None and not _finite(results[key]):
                    problems.append(f"{what}: non-finite {key}")
            for key in ("initial_charges", "n2p2_n"):
                if key in atoms.arrays and not _finite(atoms.arrays[key]):
                    problems.append(f"{what}: non-finite {key}")
            if problems:
                return problems
            i, j, s = neighbour_pairs(atoms, NEIGHBOUR_CUTOFF)
            n = len(atoms)
            if len(i) != len(j) or (len(i) and (i.min() < 0 or j.max() >= n)) or \
                    np.asarray(s).shape != (len(i), 3):
                problems.append(f"{what}: inconsistent neighbour list")
            if calc is not None and n and set(atoms.get_chemical_symbols()) <= set(
                    calc.model.elements):
                problems += self._evaluate(calc, atoms, what)
        return problems

    @staticmethod
    def _evaluate(calc, atoms, what: str) -> list[str]:
        a = atoms.copy()
        a.calc = calc
        calc.reset()
        energy = a.get_potential_energy()
        forces = a.get_forces()
        problems = []
        if not _finite(energy):
            problems.append(f"{what}: energy {energy}")
        if not _finite(forces) or forces.shape != (len(a), 3):
            problems.append(f"{what}: non-finite forces")
        return problems

    def _potential(self, model) -> list[str]:
        from ase.data import atomic_numbers

        from hdnnp.calculator import Calculator
        from hdnnp.model import NeuralNetworkPotential

        if not isinstance(model, NeuralNetworkPotential):
            return [f"the loader returned a {type(model).__name__}"]
        elements = list(model.elements)
        bad = [e for e in elements if e not in atomic_numbers or e == "X"]
        if bad or not elements:
            return [f"accepted element list {elements!r}"]
        calc = Calculator(model, device="cpu", extrapolation="ignore")
        problems = []
        for name, atoms in self.probes(elements):
            problems += self._evaluate(calc, atoms, name)
        return problems

    def act(self, target: str, case: Path) -> list[str]:
        path = case / MAIN_FILE[target]
        if target == "xsf":
            from hdnnp.io import read_structures

            return self._structures(read_structures(path), self._model("tio2"))
        if target == "n2p2-data":
            from hdnnp.io import read_structures

            return self._structures(read_structures(path, format="n2p2", length_unit="bohr",
                                                    energy_unit="hartree"),
                                    self._model("water"))
        if target == "extxyz":
            from hdnnp.io import read_structures

            return self._structures(read_structures(path, format="extxyz"),
                                    self._model("tio2"))
        if target in ("model-bytes", "model-edit"):
            from hdnnp.potential import load_potential

            return self._potential(load_potential(path))
        if target == "n2p2-potential":
            from hdnnp.n2p2 import load_n2p2_potential

            return self._potential(load_n2p2_potential(path))
        if target == "config":
            from hdnnp.training.config import load_config

            cfg = load_config(path)
            return config_problems(cfg.to_dict())
        if target == "neighbours":
            import numpy as np
            from ase import Atoms

            from hdnnp.neighbours import neighbour_pairs

            g = json.loads(path.read_text())
            atoms = Atoms(g["symbols"], positions=np.reshape(np.asarray(g["positions"], float),
                                                             (-1, 3)),
                          cell=np.asarray(g["cell"], float), pbc=g["pbc"])
            i, j, s = neighbour_pairs(atoms, g["cutoff"])
            if len(i) != len(j) or np.asarray(s).shape != (len(i), 3):
                return ["inconsistent neighbour list"]
            return []
        raise ValueError(f"unknown target {target!r}")

    def run(self, target: str, files: dict) -> dict:
        from hdnnp.errors import HdnnpError

        shutil.rmtree(self.case, ignore_errors=True)
        self.case.mkdir(parents=True)
        for rel, data in files.items():
            if data is not None:
                (self.case / rel).write_bytes(data)
        main = self.case / MAIN_FILE[target]
        t0 = time.perf_counter()
        try:
            problems = self.act(target, self.case)
        except HdnnpError as exc:
            msg = str(exc)
            result = {"status": "clean", "type": type(exc).__name__, "message": msg,
                      "named": (main.name in msg or str(main) in msg or self.case.name in msg)}
            if "\n" in msg.strip() or not msg.strip():
                result.update(status="garbage", reason="error message is not one line")
        except (Exception, SystemExit) as exc:  # classifying is the point
            tb = traceback.extract_tb(exc.__traceback__)
            where = [f"{_short(f.filename)}:{f.lineno} ({f.name})" for f in tb]
            own = [w for w, f in zip(where, tb) if "/hdnnp/" in f.filename]
            result = {"status": "crash", "type": type(exc).__name__,
                      "message": str(exc)[:2000],
                      "where": (own[-1] if own else "") + (" -> " + where[-1] if where else ""),
                      "traceback": "".join(traceback.format_exception(exc)[-12:])[-6000:]}
        else:
            result = {"status": "garbage" if problems else "accepted"}
            if problems:
                result["reason"] = problems[0]
                result["problems"] = problems[:10]
        result["seconds"] = time.perf_counter() - t0
        return result


def _short(filename: str) -> str:
    for marker in ("/site-packages/", "/src/", "/lib/python"):
        if marker in filename:
            return filename.split(marker, 1)[1]
    return filename


# ------------------------------------------------------------------- configuration ranges

_CONFIG_RULES = {
    # dotted key: (description, predicate)
    # (epochs 0 is legal with refine_epochs ≥ 1: checked below with their sum)
    "training.epochs": ("an integer ≥ 0", lambda v: _is_int(v) and v >= 0),
    "training.refine_epochs": ("an integer ≥ 0", lambda v: _is_int(v) and v >= 0),
    "training.batch_size": ("an integer ≥ 1", lambda v: _is_int(v) and v >= 1),
    # 0 keeps the weights (an evaluation-only run)
    "training.learning_rate": ("a number ≥ 0", lambda v: _is_num(v) and v >= 0),
    "training.momentum": ("a number in [0, 1)", lambda v: _is_num(v) and 0 <= v < 1),
    "training.energy_weight": ("a number ≥ 0", lambda v: _is_num(v) and v >= 0),
    "training.force_weight": ("a number ≥ 0", lambda v: _is_num(v) and v >= 0),
    "training.force_fraction": ("a number in [0, 1]", lambda v: _is_num(v) and 0 <= v <= 1),
    "training.early_stopping_patience": ("None or an integer ≥ 1",
                                         lambda v: v is None or (_is_int(v) and v >= 1)),
    "training.lbfgs_history": ("an integer ≥ 1", lambda v: _is_int(v) and v >= 1),
    "training.lbfgs_iterations_per_epoch": ("an integer ≥ 1",
                                            lambda v: _is_int(v) and v >= 1),
    "training.seed": ("an integer", lambda v: _is_int(v)),
    "training.optimizer": ("a known optimizer", lambda v: _choice("optimizer", v, (
        "adam", "lbfgs", "sgd"))),
    "training.dtype": ("float64 or float32", lambda v: v in ("float64", "float32")),
    "training.jacobian_dtype": ("float64 or float32", lambda v: v in ("float64", "float32")),
    "training.threads": ("None or an integer ≥ 1", lambda v: v is None or (_is_int(v)
                                                                         and v >= 1)),
    "training.max_time_s": ("None or a number > 0", lambda v: v is None or (_is_num(v)
                                                                          and v > 0)),
    "training.eval_train_every": ("an integer ≥ 1", lambda v: _is_int(v) and v >= 1),
    "training.committee": ("an integer ≥ 1", lambda v: _is_int(v) and v >= 1),
    "training.jobs": ("an integer ≥ 1", lambda v: _is_int(v) and v >= 1),
    "network.hidden": ("a list of integers ≥ 1", lambda v: isinstance(v, list | tuple)
                       and all(_is_int(x) and x >= 1 for x in v)),
    "network.activation": ("an activation name or a list of them", lambda v: _activations(v)),
    "data.train": ("a list of paths", lambda v: _paths_ok(v)),
    "data.test": ("a list of paths", lambda v: _paths_ok(v)),
    "data.reference_energies": ("None or element → finite number", lambda v: v is None or (
        isinstance(v, dict) and all(_element(k) and _is_num(x) for k, x in v.items()))),
    "data.n_structures": ("None or an integer ≥ 1", lambda v: v is None or (_is_int(v)
                                                                          and v >= 1)),
    "data.test_fraction": ("a number in [0, 1)", lambda v: _is_num(v) and 0 <= v < 1),
    "data.seed": ("an integer", lambda v: _is_int(v)),
    "output": ("a non-empty path", lambda v: isinstance(v, str) and v not in ("", "None")),
    "figures": ("true or false", lambda v: isinstance(v, bool)),
    "descriptor": ("a mapping with a known 'kind'", lambda v: isinstance(v, dict)
                   and _descriptor_kind(v.get("kind"))),
}


def _choice(field_name: str, value, fallback) -> bool:
    """``value`` is one of the choices of the schema's ``Literal`` field (a new optimizer
    is a new choice, not garbage), or of ``fallback`` when the schema has no such field."""
    import typing

    try:
        from hdnnp.training.config import OptimConfig

        annotation = OptimConfig.model_fields[field_name].annotation
        choices = typing.get_args(annotation) if typing.get_origin(
            annotation) is typing.Literal else fallback
    except (ImportError, AttributeError, KeyError):
        choices = fallback
    return isinstance(value, str) and value in choices


def _descriptor_kind(kind) -> bool:
    try:
        from hdnnp.descriptors import DESCRIPTOR_KINDS
    except ImportError:
        return isinstance(kind, str)
    return isinstance(kind, str) and kind in DESCRIPTOR_KINDS


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _element(symbol) -> bool:
    from ase.data import atomic_numbers

    return isinstance(symbol, str) and symbol in atomic_numbers and symbol != "X"


def _activations(v) -> bool:
    try:
        from hdnnp.activations import canonical_activation
    except ImportError:
        return True
    names = [v] if isinstance(v, str) else v
    if not isinstance(names, list | tuple) or not names:
        return False
    try:
        for name in names:
            if not isinstance(name, str):
                return False
            canonical_activation(name)
    except Exception:
        return False
    return True


def _paths_ok(v) -> bool:
    return isinstance(v, list | tuple) and all(isinstance(x, str) and x.strip() for x in v)


def config_problems(d: dict) -> list[str]:
    """What is wrong with an accepted configuration (``TrainConfig.to_dict()``): any
    non-finite number anywhere, and values outside issue 10's documented ranges."""
    problems = []

    def walk(node, where):
        if isinstance(node, float) and not math.isfinite(node):
            problems.append(f"{where} is {node}")
        elif isinstance(node, dict):
            for k, v in node.items():
                walk(v, f"{where}.{k}" if where else str(k))
        elif isinstance(node, list | tuple):
            for k, v in enumerate(node):
                walk(v, f"{where}[{k}]")

    walk(d, "")
    for key, (want, ok) in _CONFIG_RULES.items():
        node, found = d, True
        for part in key.split("."):
            if isinstance(node, dict) and part in node:
                node = node[part]
            else:
                found = False
                break
        if found:
            try:
                good = ok(node)
            except Exception:
                good = False
            if not good:
                problems.append(f"{key} = {str(node)[:60]!r} (expected {want})")
    tr = d.get("training") if isinstance(d, dict) else None
    if isinstance(tr, dict) and _is_num(tr.get("energy_weight")) and _is_num(
            tr.get("force_weight")) and tr["energy_weight"] + tr["force_weight"] <= 0:
        problems.append("training.energy_weight + training.force_weight = 0")
    if isinstance(tr, dict) and _is_int(tr.get("epochs")) and _is_int(
            tr.get("refine_epochs", 0)) and tr["epochs"] + tr.get("refine_epochs", 0) < 1:
        problems.append("training.epochs + training.refine_epochs < 1 (nothing trained)")
    return problems


def _send(fh, obj) -> None:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    fh.write(struct.pack("<Q", len(data)) + data)
    fh.flush()


def _read_exact(fh, n: int) -> bytes | None:
    buf = b""
    while len(buf) < n:
        chunk = fh.read(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf


def worker_main(seed_dir: str, memory_gb: float, workdir_root: str | None = None) -> int:
    """Entry point of a worker process: messages on stdin, answers on the original stdout
    (anything the libraries print goes to stderr)."""
    import faulthandler
    import resource

    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    faulthandler.enable(sys.stderr)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if memory_gb > 0:
        limit = int(memory_gb * 2**30)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    # inside the main process's directory, which it removes even when it had to kill us
    workdir = Path(tempfile.mkdtemp(prefix="worker-", dir=workdir_root))
    os.chdir(workdir)
    try:
        worker = Worker(Path(seed_dir), workdir)
        worker._model("tio2")
        worker._model("water")
        _send(out, {"ready": True})
        stdin = sys.stdin.buffer
        while True:
            header = _read_exact(stdin, 8)
            if header is None:
                return 0
            msg = pickle.loads(_read_exact(stdin, struct.unpack("<Q", header)[0]))
            _send(out, {"id": msg["id"], **worker.run(msg["target"], msg["files"])})
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


# ------------------------------------------------------------------------- main process

class WorkerProcess:
    """The main side of one worker: start, submit, collect, kill."""

    def __init__(self, seed_dir: Path, memory_gb: float, log: Path):
        """``log`` receives the worker's stderr; its directory holds the worker's files."""
        self.seed_dir, self.memory_gb, self.log = seed_dir, memory_gb, log
        self.proc = None
        self.task = None  # (target, index, started)
        self.buf = bytearray()
        self.start()

    def start(self, timeout: float = 300.0) -> None:
        env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1",
                   OPENBLAS_NUM_THREADS="1", CUDA_VISIBLE_DEVICES="", PYTHONHASHSEED="0",
                   PYTHONFAULTHANDLER="1")
        with open(self.log, "ab") as err:
            self.proc = subprocess.Popen(
                [sys.executable, str(HERE), "--worker", "--seed-dir", str(self.seed_dir),
                 "--memory-gb", str(self.memory_gb), "--workdir", str(self.log.parent)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE, stderr=err, env=env, start_new_session=True)
        self.buf = bytearray()
        self.task = None
        deadline = time.monotonic() + timeout
        while True:
            msg = self.poll(max(0.0, deadline - time.monotonic()))
            if msg is not None:
                if msg is EOFError:
                    raise RuntimeError(f"a fuzz worker died on start-up (see {self.log})")
                return
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"a fuzz worker did not start within {timeout:g} s")

    def fileno(self) -> int:
        return self.proc.stdout.fileno()

    def submit(self, target: str, index: int, files: dict) -> bool:
        self.task = (target, index, time.monotonic())
        try:
            _send(self.proc.stdin, {"id": index, "target": target, "files": files})
        except (BrokenPipeError, OSError):
            return False
        return True

    def poll(self, timeout: float):
        """A complete message, EOFError when the worker died, or None."""
        while True:
            if len(self.buf) >= 8:
                n = struct.unpack("<Q", self.buf[:8])[0]
                if len(self.buf) >= 8 + n:
                    msg = pickle.loads(bytes(self.buf[8:8 + n]))
                    del self.buf[:8 + n]
                    return msg
            ready, _, _ = select.select([self.fileno()], [], [], timeout)
            if not ready:
                return None
            chunk = os.read(self.fileno(), 1 << 20)
            if not chunk:
                return EOFError
            self.buf += chunk
            timeout = 0.0

    def death(self) -> dict:
        """The classification of a worker that closed its pipe mid-task."""
        try:
            rc = self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.kill()
            rc = self.proc.returncode
        if rc is not None and rc < 0:
            try:
                name = signal.Signals(-rc).name
            except ValueError:
                name = f"signal {-rc}"
            return {"status": "crash", "type": name, "message": f"worker killed by {name}",
                    "where": name, "traceback": _tail(self.log)}
        return {"status": "crash", "type": f"exit {rc}", "where": f"exit {rc}",
                "message": f"worker exited with code {rc}", "traceback": _tail(self.log)}

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        if self.proc is not None:
            for fh in (self.proc.stdin, self.proc.stdout):
                with contextlib.suppress(OSError):
                    fh.close()

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()
        self.kill()


def _tail(path: Path, n: int = 4000) -> str:
    try:
        return path.read_bytes()[-n:].decode(errors="replace")
    except OSError:
        return ""


def group_key(result: dict) -> str:
    s = result["status"]
    if s == "crash":
        return f"{result['type']} @ {result.get('where', '')}"
    if s == "garbage":
        return re.sub(r"-?\d+(\.\d+)?(e[-+]?\d+)?", "#", result.get("reason", ""))[:120]
    return s


def run_cases(target: str, cases, workers: list[WorkerProcess], timeout: float,
              progress=None) -> dict[int, dict]:
    """Run ``cases`` (an iterable of (index, Case)) of ``target`` on ``workers``; the
    result of every index."""
    results: dict[int, dict] = {}
    todo = iter(cases)  # generated lazily: a whole run's inputs would not fit in memory
    more = True
    while more or any(w.task for w in workers):
        for w in workers:
            if w.task is None and more:
                item = next(todo, None)
                if item is None:
                    more = False
                    continue
                index, case = item
                if not w.submit(target, index, case.files):
                    results[index] = w.death()
                    w.kill()
                    w.start()
                    _tick(progress, results[index])
        busy = [w for w in workers if w.task]
        if not busy:
            continue
        now = time.monotonic()
        wait = max(0.0, min(w.task[2] + timeout - now for w in busy))
        ready, _, _ = select.select([w.fileno() for w in busy], [], [], wait)
        for w in busy:
            index = w.task[1]
            if w.fileno() in ready:
                msg = w.poll(0.0)
                if msg is None:  # a partial message: wait for the rest
                    msg = w.poll(max(0.0, w.task[2] + timeout - time.monotonic()))
                if msg is EOFError:
                    results[index] = w.death()
                    w.kill()
                    w.start()
                elif msg is not None:
                    msg.pop("id", None)
                    results[index] = msg
                    w.task = None
                else:
                    continue
                _tick(progress, results[index])
            elif time.monotonic() - w.task[2] > timeout:
                results[index] = {"status": "hang", "type": "timeout",
                                  "message": f"no answer within {timeout:g} s"}
                w.kill()
                w.start()
                _tick(progress, results[index])
    return results


def _tick(progress, result) -> None:
    if progress is not None:
        progress.counts[result["status"]] += 1
        progress.update(1)
        progress.set_postfix({k[:5]: v for k, v in progress.counts.items() if v}, refresh=False)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-")[:60] or "x"


def save_case(directory: Path, index: int, case: Case, result: dict, target: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    if MAIN_FILE[target] == ".":
        dest = directory / f"{index:07d}"
        dest.mkdir(exist_ok=True)
        for rel, data in case.files.items():
            if data is not None:
                (dest / rel).write_bytes(data)
    else:
        dest = directory / f"{index:07d}-{MAIN_FILE[target]}"
        dest.write_bytes(case.files[MAIN_FILE[target]])
    info = {"target": target, "index": index, "mutation": case.note, **result}
    (directory / f"{index:07d}.txt").write_text(
        "\n".join(f"{k}: {v}" for k, v in info.items() if k not in ("traceback",))
        + ("\n\n" + result["traceback"] if result.get("traceback") else "") + "\n")
    return dest


def git_commit() -> str:
    try:
        head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True,
                              text=True, timeout=30).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain",
                                "--untracked-files=no"], capture_output=True, text=True,
                               timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return (head or "unknown") + ("+dirty" if dirty else "")


def markdown_table(summary: dict) -> str:
    lines = ["| reader / path | inputs | clean errors | accepted garbage | crashes (non-hdnnp "
             "exception) | hangs | accepted (valid) |",
             "|---|---|---|---|---|---|---|"]
    for target, s in summary["targets"].items():
        lines.append(f"| {TITLES[target]} | {s['inputs']:,} | {s['clean']:,} | "
                     f"{s['garbage']:,} | {s['crash']:,} | {s['hang']:,} | {s['accepted']:,} |")
    t = {k: sum(s[k] for s in summary["targets"].values()) for k in ("inputs", *STATUSES)}
    if len(summary["targets"]) > 1:
        lines.append(f"| **all** | {t['inputs']:,} | {t['clean']:,} | {t['garbage']:,} | "
                     f"{t['crash']:,} | {t['hang']:,} | {t['accepted']:,} |")
    return "\n".join(lines)


def split_counts(n: int, targets) -> dict[str, int]:
    """``n`` inputs split over ``targets`` in issue 10's proportions (largest remainder)."""
    weights = {t: PROPORTION.get(t, 1000) for t in targets}
    total = sum(weights.values())
    raw = {t: n * w / total for t, w in weights.items()}
    counts = {t: int(v) for t, v in raw.items()}
    for t in sorted(raw, key=lambda t: raw[t] - counts[t], reverse=True)[:n - sum(
            counts.values())]:
        counts[t] += 1
    return counts


def fuzz(targets, counts: dict[str, int], seed: int = 1, workers: int = 2,
         timeout: float = 10.0, memory_gb: float = 4.0, out_dir: Path | None = None,
         max_saved: int = 20, start: int = 0, quiet: bool = False,
         results_log: Path | None = None) -> dict:
    """Run the fuzzer; the summary (see the module docstring)."""
    tmp = Path(tempfile.mkdtemp(prefix="hdnnp-fuzz-"))
    summary = {"seed": seed, "commit": git_commit(), "timeout_s": timeout,
               "workers": workers, "memory_gb": memory_gb, "start": start, "targets": {}}
    try:
        from hdnnp import __version__

        summary["hdnnp_version"] = __version__
        seeds = build_seeds(tmp / "seeds", targets)
        log = tmp / "workers.log"
        pool = []
        try:
            for _ in range(workers):
                pool.append(WorkerProcess(seeds.directory, memory_gb, log))
            for target in targets:
                n = counts[target]
                if (target == "n2p2-potential" and not seeds.n2p2_potential) or \
                        (target == "n2p2-data" and not seeds.n2p2_data):
                    print(f"{target}: shared data missing, skipped", file=sys.stderr)
                    continue
                progress = None
                if not quiet:
                    from collections import Counter

                    from tqdm import tqdm

                    progress = tqdm(total=n, desc=f"{target:>14}", unit="input",
                                    file=sys.stderr, dynamic_ncols=True)
                    progress.counts = Counter()
                t0 = time.monotonic()
                indices = range(start, start + n)
                results = run_cases(target, ((i, generate(target, i, seed, seeds))
                                             for i in indices), pool, timeout, progress)
                wall = time.monotonic() - t0
                if progress is not None:
                    progress.close()
                summary["targets"][target] = _summarise(target, results, wall, seeds, seed,
                                                        out_dir, max_saved)
                if results_log is not None:
                    with open(results_log, "a") as fh:
                        for i in sorted(results):
                            r = results[i]
                            fh.write(json.dumps({
                                "target": target, "index": i, "status": r["status"],
                                "type": r.get("type"), "message": (r.get("message") or r.get(
                                    "reason") or "")[:300],
                                "input": generate(target, i, seed, seeds).note[:300]}) + "\n")
        finally:
            for w in pool:
                w.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return summary


def _summarise(target, results, wall, seeds, seed, out_dir, max_saved) -> dict:
    s = {"inputs": len(results), **{k: 0 for k in STATUSES}, "unnamed_errors": 0,
         "wall_s": round(wall, 1), "seed": seed, "failures": []}
    groups: dict[str, dict] = {}
    slow = []
    for index in sorted(results):
        r = results[index]
        s[r["status"]] += 1
        if r["status"] == "clean" and not r.get("named", True):
            s["unnamed_errors"] += 1
            s.setdefault("unnamed_examples", [])
            if len(s["unnamed_examples"]) < 5:
                s["unnamed_examples"].append({"index": index, "message": r["message"][:300]})
        slow.append((r.get("seconds", 0.0), index))
        if r["status"] in ("garbage", "crash", "hang"):
            key = f"{r['status']}: {group_key(r)}"
            g = groups.setdefault(key, {"class": r["status"], "key": key, "count": 0,
                                        "type": r.get("type"),
                                        "message": (r.get("message") or r.get("reason", ""))[
                                            :500], "indices": [], "saved": []})
            g["count"] += 1
            if len(g["indices"]) < max_saved:
                g["indices"].append(index)
                if out_dir is not None:
                    case = generate(target, index, seed, seeds)
                    dest = save_case(Path(out_dir) / target / r["status"] / _slug(
                        group_key(r)), index, case, r, target)
                    g["saved"].append(str(dest))
    s["failures"] = sorted(groups.values(), key=lambda g: -g["count"])
    s["slowest"] = [{"index": i, "seconds": round(t, 2)} for t, i in sorted(slow)[-5:][::-1]]
    return s


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="harness.py", description=__doc__.split("\n\n")[0],
        epilog=__doc__[__doc__.index("Examples::"):].replace("Examples::", "examples:"),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--target", default="all",
                        help=f"comma-separated targets, or 'all' ({', '.join(TARGETS)}); "
                        f"extra: {', '.join(EXTRA_TARGETS)}")
    parser.add_argument("--n", type=int, default=None,
                        help="inputs in all (split over the targets in issue 10's "
                        "proportions; default 1000)")
    parser.add_argument("--per-target", type=int, default=None, help="inputs per target")
    parser.add_argument("--start", type=int, default=0,
                        help="index of the first input (inputs are numbered per target)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes")
    parser.add_argument("--timeout", type=float, default=10.0,
                        help="seconds per input before it counts as a hang (default 10)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--memory-gb", type=float, default=4.0,
                        help="address-space limit of each worker (GiB; 0: none)")
    parser.add_argument("--out", type=Path, default=None, help="JSON summary file")
    parser.add_argument("--out-dir", type=Path, default=None,
                        help="directory for reproducers (default: next to --out)")
    parser.add_argument("--max-saved", type=int, default=20,
                        help="reproducers saved per distinct failure")
    parser.add_argument("--results", type=Path, default=None,
                        help="also append every input's result to this JSON-lines file")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--seed-dir", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--workdir", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return worker_main(args.seed_dir, args.memory_gb, args.workdir)
    targets = list(TARGETS) if args.target == "all" else [t.strip() for t in
                                                          args.target.split(",")]
    unknown = [t for t in targets if t not in TARGETS + EXTRA_TARGETS]
    if unknown:
        parser.error(f"unknown target(s) {', '.join(unknown)}")
    if args.per_target is not None:
        counts = dict.fromkeys(targets, args.per_target)
    else:
        counts = split_counts(args.n if args.n is not None else 1000, targets)
    out_dir = args.out_dir
    if out_dir is None and args.out is not None:
        out_dir = args.out.with_suffix("").with_name(args.out.stem + "-cases")
    summary = fuzz(targets, counts, seed=args.seed, workers=args.workers,
                   timeout=args.timeout, memory_gb=args.memory_gb, out_dir=out_dir,
                   max_saved=args.max_saved, start=args.start, quiet=args.quiet,
                   results_log=args.results)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(summary, indent=1, default=str) + "\n")
    print(markdown_table(summary))
    for target, s in summary["targets"].items():
        for g in s["failures"][:10]:
            print(f"  {target}: {g['count']} × {g['key']}: {g['message'][:160]!r}")
    bad = sum(s["garbage"] + s["crash"] + s["hang"] for s in summary["targets"].values())
    return 1 if bad else 0


# ------------------------------------------------- ænet potential files (issue 12, added)
# Target ``aenet-nn`` (not in ``all``): a directory with the two ``*.nn`` files of an O/Ti
# ænet potential (Chebyshev or Behler2011, written by hdnnp's exporter; Fortran binary or
# the text form), one of them mutated → ``hdnnp.aenet.load_aenet_potential`` →
# ``hdnnp.Calculator`` on the probe structures.

EXTRA_TARGETS = (*EXTRA_TARGETS, "aenet-nn")
TITLES["aenet-nn"] = "ænet *.nn potential files"
MAIN_FILE["aenet-nn"] = "."
_AENET_SEEDS: dict = {}


def aenet_nn_seeds() -> dict:
    """(kind, form) → {file name: bytes} of small O/Ti ænet potentials (built once)."""
    if not _AENET_SEEDS:
        import torch

        from hdnnp.aenet.nnfile import to_binary, to_text
        from hdnnp.aenet.potential import model_to_aenet
        from hdnnp.descriptors import Chebyshev, SymmetryFunctions, default_behler_functions
        from hdnnp.model import NeuralNetworkPotential

        torch.manual_seed(12)
        species = ["Ti", "O"]
        for kind, d in (("chebyshev", Chebyshev(species, 4.5, 4, 3.5, 2)),
                        ("behler", SymmetryFunctions(species, default_behler_functions(
                            species, 4.5, 2, 2)))):
            model = NeuralNetworkPotential(d, hidden=(4, 3), activation=["tanh", "twist"],
                                           reference_energies={"O": -432.5, "Ti": -1604.6})
            files = model_to_aenet(model)
            _AENET_SEEDS[(kind, "binary")] = {f"{el}.nn": to_binary(f)
                                              for el, f in files.items()}
            _AENET_SEEDS[(kind, "text")] = {f"{el}.nn.ascii": to_text(f).encode()
                                            for el, f in files.items()}
    return _AENET_SEEDS


def gen_aenet_nn(rng, seeds: Seeds) -> Case:
    pool = aenet_nn_seeds()
    key = rng.choice(sorted(pool))
    files = dict(pool[key])
    if rng.random() < 0.03:
        victim = rng.choice(sorted(files))
        files[victim] = None
        return Case(files, f"{key}: {victim} missing")
    name = rng.choice(sorted(files))
    data, ops = mutate(rng, files[name], [d for d in files.values() if d],
                       token_weight=0.7 if key[1] == "text" else 0.3)
    files[name] = data
    return Case(files, f"{key[0]} {key[1]} {name}: {', '.join(ops)}")


GENERATORS["aenet-nn"] = gen_aenet_nn
_act_before_aenet = Worker.act


def _act_with_aenet(self, target: str, case: Path) -> list[str]:
    if target == "aenet-nn":
        from hdnnp.aenet import load_aenet_potential

        return self._potential(load_aenet_potential(case))
    return _act_before_aenet(self, target, case)


Worker.act = _act_with_aenet


if __name__ == "__main__":
    sys.exit(main())
