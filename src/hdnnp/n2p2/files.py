"""n2p2/RuNNer ``scaling.data`` and ``weights.ZZZ.data`` files.

``scaling.data`` (n2p2 ``nnp-scaling``; n2p2 documentation "Symmetry function scaling"):
one line per symmetry function, elements in order of increasing atomic number and the
functions of each element in n2p2's sorted order::

    e_index  sf_index  sf_min  sf_max  sf_mean  [sf_sigma]

(1-based indices; ``#`` lines are comments).  RuNNer's version has no sigma column and
ends with a line of three energy statistics, which is ignored.

``weights.ZZZ.data`` (``ZZZ`` = atomic number, three digits): the connection values of
one element's network, first column of every non-comment line, in n2p2's order
(``NeuralNetwork::setConnections``): for each layer *l* = 1 … L, the weights
:math:`w^{(l)}_{kj}` from neuron *j* of layer *l − 1* to neuron *k* of layer *l* with *j*
running slowest, then the biases of layer *l*.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

import numpy as np

from hdnnp.errors import InputFileError
from hdnnp.fileio import atomic_write_text
from hdnnp.fortran import parse_float, parse_int
from hdnnp.validation import MAX_VALUE


@dataclass
class ScalingRow:
    minimum: float
    maximum: float
    mean: float
    sigma: float | None
    line: int


def read_scaling_data(path: str | Path, counts: Sequence[int]) -> list[list[ScalingRow]]:
    """Scaling statistics per element (``counts[e]`` functions for element index e).

    Values are finite with magnitude ≤ :data:`hdnnp.potential.MAX_VALUE` and sf_min ≤
    sf_max; sf_min may be -inf and sf_max +inf (hdnnp's exporter writes them for features
    never seen in training)."""
    path = Path(path)
    if not path.is_file():
        raise InputFileError(path, "no such file")
    rows: list[tuple[int, int, ScalingRow]] = []
    for lineno, raw in enumerate(path.read_text(errors="replace").splitlines(), start=1):
        body = raw.strip()
        if not body or body.startswith("#"):
            continue
        f = body.split()
        if len(f) == 3 and len(rows) == sum(counts):
            continue  # RuNNer's trailing energy statistics (min, max, mean)
        if len(f) < 5:
            raise InputFileError(path, "expected 'e_index sf_index min max mean [sigma]', got "
                                 f"{len(f)} columns", lineno)
        e = parse_int(f[0], path, lineno, "element index")
        s = parse_int(f[1], path, lineno, "symmetry function index")
        vals = [parse_float(x, path, lineno, name, finite=False, bound=MAX_VALUE)
                for x, name in zip(f[2:6], ("sf_min", "sf_max", "sf_mean", "sf_sigma"))]
        # only hdnnp's exporter writes infinite bounds: -inf / +inf for features never
        # seen in training (no extrapolation warning); everything else must be finite
        for x, name in zip(vals, ("sf_min", "sf_max", "sf_mean", "sf_sigma")):
            if math.isinf(x) and not ((name == "sf_min" and x < 0)
                                      or (name == "sf_max" and x > 0)):
                raise InputFileError(path, f"{name} is {x} (must be a finite number)", lineno)
        if vals[0] > vals[1]:
            raise InputFileError(path, f"sf_min {vals[0]!r} is larger than sf_max {vals[1]!r}",
                                 lineno)
        rows.append((e, s, ScalingRow(vals[0], vals[1], vals[2],
                                      vals[3] if len(vals) > 3 else None, lineno)))
    out: list[list[ScalingRow]] = []
    k = 0
    for e, n in enumerate(counts, start=1):
        block = []
        for s in range(1, n + 1):
            if k >= len(rows):
                raise InputFileError(path, f"too few lines: element {e} needs {n} symmetry "
                                     f"functions, the file ends at function {s}")
            ei, si, row = rows[k]
            if (ei, si) != (e, s):
                raise InputFileError(path, f"expected element {e}, symmetry function {s} "
                                     f"(n2p2's order), found element {ei}, function {si}",
                                     row.line)
            block.append(row)
            k += 1
        out.append(block)
    if k != len(rows):
        raise InputFileError(path, f"{len(rows) - k} more lines than the {k} symmetry "
                             "functions of input.nn", rows[k][2].line)
    return out


def _fmt(x: float) -> str:
    return f"{x:24.16E}" if np.isfinite(x) else f"{x!r:>24}"


def write_scaling_data(path: str | Path, blocks: Sequence[Sequence[tuple[float, float, float,
                                                                             float]]]) -> None:
    """Write ``scaling.data`` from per-element lists of (min, max, mean, sigma)."""
    lines = [
        "#" * 80,
        "# Symmetry function scaling data (written by hdnnp).",
        "#" * 80,
        "# Col  Name     Description",
        "#" * 80,
        "# 1    e_index  Element index.",
        "# 2    sf_index Symmetry function index.",
        "# 3    sf_min   Symmetry function minimum.",
        "# 4    sf_max   Symmetry function maximum.",
        "# 5    sf_mean  Symmetry function mean.",
        "# 6    sf_sigma Symmetry function sigma.",
        "#" * 121,
        f"#{'1':>9} {'2':>10} {'3':>24} {'4':>24} {'5':>24} {'6':>24}",
        f"#{'e_index':>9} {'sf_index':>10} {'sf_min':>24} {'sf_max':>24} {'sf_mean':>24} "
        f"{'sf_sigma':>24}",
        "#" * 121,
    ]
    for e, block in enumerate(blocks, start=1):
        for s, (lo, hi, mean, sigma) in enumerate(block, start=1):
            lines.append(f"{e:10d} {s:10d} {_fmt(lo)} {_fmt(hi)} {_fmt(mean)} {_fmt(sigma)}")
    atomic_write_text(path, "\n".join(lines) + "\n")


def read_weights(path: str | Path, expected: int | None = None) -> np.ndarray:
    """Connection values (first column of the non-comment lines) of a weights file: finite,
    of magnitude ≤ :data:`hdnnp.potential.MAX_VALUE` (errors name file and line)."""
    path = Path(path)
    if not path.is_file():
        raise InputFileError(path, "no such file (one weights file per element is needed)")
    values = []
    for lineno, raw in enumerate(path.read_text(errors="replace").splitlines(), start=1):
        body = raw.strip()
        if not body or body.startswith("#"):
            continue
        values.append(parse_float(body.split()[0], path, lineno, "connection value",
                                  bound=MAX_VALUE))
    if expected is not None and len(values) != expected:
        raise InputFileError(path, f"{len(values)} connection values, but the network of "
                             f"input.nn has {expected} weights and biases")
    return np.asarray(values, dtype=np.float64)


def connections_to_layers(values: np.ndarray, sizes: Sequence[int]):
    """Split n2p2 connection values into per-layer (W [out, in], b [out]) arrays."""
    layers = []
    k = 0
    for n_in, n_out in pairwise(sizes):
        w = values[k:k + n_in * n_out].reshape(n_in, n_out).T
        k += n_in * n_out
        b = values[k:k + n_out]
        k += n_out
        layers.append((w.copy(), b.copy()))
    return layers


def n_connections(sizes: Sequence[int]) -> int:
    return sum(a * b + b for a, b in pairwise(sizes))


def write_weights(path: str | Path, layers: Sequence[tuple[np.ndarray, np.ndarray]]) -> None:
    """Write one element's network in n2p2's weights-file layout (see module docstring)."""
    lines = [
        "#" * 80,
        "# Neural network connection values (weights and biases), written by hdnnp.",
        "#" * 80,
        "# Col  Name       Description",
        "#" * 80,
        "# 1    connection Neural network connection value.",
        "# 2    t          Connection type (a = weight, b = bias).",
        "# 3    index      Index enumerating weights.",
        "# 4    l_s        Starting point layer (end point layer for biases).",
        "# 5    n_s        Starting point neuron in starting layer (end point neuron for "
        "biases).",
        "# 6    l_e        End point layer.",
        "# 7    n_e        End point neuron in end layer.",
        "#" * 80,
        f"#{'1':>23} {'2':>1} {'3':>9} {'4':>5} {'5':>5} {'6':>5} {'7':>5}",
        f"#{'connection':>23} {'t':>1} {'index':>9} {'l_s':>5} {'n_s':>5} {'l_e':>5} "
        f"{'n_e':>5}",
        "#" * 60,
    ]
    count = 0
    for layer, (w, b) in enumerate(layers, start=1):
        w = np.asarray(w, dtype=np.float64)
        n_out, n_in = w.shape
        for j in range(n_in):
            for k in range(n_out):
                count += 1
                lines.append(f"{w[k, j]:24.16E} a {count:9d} {layer - 1:5d} {j + 1:5d} "
                             f"{layer:5d} {k + 1:5d}")
        for k in range(n_out):
            count += 1
            lines.append(f"{float(b[k]):24.16E} b {count:9d} {layer:5d} {k + 1:5d}")
    atomic_write_text(path, "\n".join(lines) + "\n")
