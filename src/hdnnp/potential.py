"""Potential files: one self-describing JSON document per potential.

Layout (``format: "hdnnp-potential"``, ``version: 2``)::

    {
      "format": "hdnnp-potential", "version": 2,
      "units": {"energy": "eV", "length": "angstrom"},
      "elements": ["O", "Ti"],
      "reference_energies": {"O": -432.50, "Ti": -1604.60},     # eV per isolated atom
      "descriptor": {...},                                      # Descriptor.to_config()
      "networks": {"O": {"inputs": 44, "hidden": [15, 15],
                         "activations": ["tanh", "tanh", "linear"],
                         "input_shift": [...], "input_scale": [...],
                         "output_scale": s, "output_shift": b,
                         "feature_min": [...], "feature_max": [...],
                         "weights": [[[...]], ...], "biases": [[...], ...]}, ...},
                                                                # a committee: {"O": {"committee":
                                                                #   [{network}, ...]}, ...}
      "training": {...},                                        # provenance
      "hdnnp_version": "0.1.0", "created": "2026-11-21T22:00:00+00:00",
      "sha256": "..."                                           # of everything else
    }

Version 2 added committees; single potentials are still written (and read) as version 1.
Numbers are written with Python's shortest round-trip representation, so a
potential reloads bit-identically; ``weights[l]`` is the ``[out, in]`` matrix of layer
*l*.  The only non-finite numbers a file holds are the ``"-inf"`` / ``"inf"`` (strings)
of ``feature_min`` / ``feature_max`` of features never seen in training.  The file is
data only (no pickle); it is written atomically (temporary file + rename).

Reading checks the whole document before anything is allocated, and every problem is a
one-line :class:`~hdnnp.errors.PotentialFileError` naming the file and the key path,
e.g. ``model.json: networks.O.weights[1]: expected 15×15, got 15×14``:

* the file: at most ``MAX_FILE_BYTES`` (also after gunzip), UTF-8 JSON, nested at most
  ``MAX_DEPTH`` levels, no number beyond Python's 4300-digit limit;
* ``format`` and ``version``; the ``sha256`` checksum is mandatory (every hdnnp release
  has written it, for version 1 and 2 alike): a file without it, or whose content does not
  match it, is refused (a truncated or edited file);
* no unknown keys (a renamed key is never silently skipped); ``units`` eV and Å;
  ``elements`` distinct chemical symbols, the same in ``descriptor``, ``networks`` and
  ``reference_energies``;
* the descriptor: a known kind, its parameters valid (the descriptor's own checks),
  every cutoff within :func:`hdnnp.validation.check_cutoff` (0.1–30 Å; a 10⁴ Å cutoff
  made the calculator practically endless), ζ ≤ ``MAX_ZETA`` and type spins ≤
  ``MAX_SPIN`` (beyond, the angular terms overflow to inf/NaN), at most ``MAX_FEATURES``
  features per element;
* every network: ``inputs`` = the descriptor's features of its element, at most
  ``MAX_LAYERS`` hidden layers of 1…``MAX_NEURONS`` neurons, known activations (one per
  hidden layer plus the output), weight and bias shapes chaining inputs → hidden → 1,
  scaling vectors of length ``inputs``; all numbers finite (weights, biases, scalings,
  output scale and shift, reference energies, descriptor parameters) with magnitude ≤
  ``MAX_VALUE``; ``feature_min`` ≤ ``feature_max``, -inf / +inf allowed there only;
  committees of 2…``MAX_COMMITTEE`` members, as many for every element, version 2.

Why a hand-written checker rather than pydantic models: nearly every rule is a
cross-field one (shapes that chain through the layers, ``inputs`` against the
descriptor's feature count, the same elements in four places, committee sizes), which
pydantic would express as custom validators anyway; the hand-written walk reports the
exact key path in the message format above, converts the ``"inf"`` strings in the two
places they are allowed, checks sizes before any tensor is allocated, and costs a
fraction of building pydantic models for weight matrices of 10⁵ numbers.
"""

from __future__ import annotations

import datetime as _dt
import gzip
import hashlib
import io
import json
import math
import re
import zlib
from pathlib import Path

import numpy as np
import torch

from hdnnp._version import __version__
from hdnnp.activations import canonical_activation
from hdnnp.errors import HdnnpError, PotentialFileError
from hdnnp.fileio import atomic_write_bytes
from hdnnp.model import AtomicNetwork, CommitteeNetwork, NeuralNetworkPotential, member_networks
from hdnnp.validation import (  # the limits of a usable potential live with the checks
    MAX_COMMITTEE,
    MAX_DEPTH,
    MAX_FEATURES,
    MAX_FILE_BYTES,
    MAX_LAYERS,
    MAX_NEURONS,
    MAX_SPIN,
    MAX_VALUE,
    check_cutoff,
    symmetry_function_problem,
)

FORMAT = "hdnnp-potential"
VERSION = 2
READABLE_VERSIONS = (1, 2)

_NET_REQUIRED = ("inputs", "hidden", "activations", "weights", "biases")
_NET_OPTIONAL = ("input_shift", "input_scale", "output_scale", "output_shift",
                 "feature_min", "feature_max")
_DOC_REQUIRED = ("format", "version", "elements", "reference_energies", "descriptor",
                 "networks", "sha256")
_DOC_OPTIONAL = ("units", "training", "hdnnp_version", "created")


def _floats(t: torch.Tensor):
    def conv(x):
        x = float(x)
        if math.isinf(x):
            return "inf" if x > 0 else "-inf"
        return x

    if t.dim() == 0:
        return conv(t)
    return [_floats(x) if x.dim() else conv(x) for x in t.detach().cpu().double()]


def _checksum(doc: dict) -> str:
    body = {k: v for k, v in doc.items() if k != "sha256"}
    blob = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()


def network_to_dict(net: AtomicNetwork) -> dict:
    return {
        "inputs": net.n_inputs,
        "hidden": net.hidden,
        "activations": list(net.activation_names),
        "input_shift": _floats(net.input_shift),
        "input_scale": _floats(net.input_scale),
        "output_scale": _floats(net.output_scale),
        "output_shift": _floats(net.output_shift),
        "feature_min": _floats(net.feature_min),
        "feature_max": _floats(net.feature_max),
        "weights": [_floats(layer.weight) for layer in net.layers],
        "biases": [_floats(layer.bias) for layer in net.layers],
    }


def element_networks_to_dict(net) -> dict:
    """An element's network, or ``{"committee": [...]}`` for a committee."""
    if isinstance(net, CommitteeNetwork):
        return {"committee": [network_to_dict(m) for m in member_networks(net)]}
    return network_to_dict(net)


# ------------------------------------------------------------------ checks
def _show(value) -> str:
    """A short, one-line description of a JSON value for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        if value.bit_length() > 200:
            return f"an integer of about {int(value.bit_length() * math.log10(2)) + 1} digits"
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        text = repr(value)
        return text if len(text) <= 40 else text[:36] + "...'"
    if isinstance(value, list):
        return f"a list of {len(value)}"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _key(path: str, key) -> str:
    return f"{path}.{key}" if path else str(key)


def _too_deep(doc, limit: int) -> bool:
    """Whether ``doc`` nests lists/objects more than ``limit`` levels (iteratively)."""
    stack = [(doc, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > limit:
            return True
        items = value.values() if isinstance(value, dict) else value
        stack.extend((v, depth + 1) for v in items if type(v) in (list, dict))
    return False


class _Document:
    """The schema checker of one potential document (see the module docstring).

    Each method checks one part and returns it converted (floats, ints); a problem raises
    a :class:`PotentialFileError` naming the file and the key path."""

    def __init__(self, source: str):
        self.source = source

    def fail(self, path: str, message: str) -> PotentialFileError:
        text = f"{path}: {message}" if path else message
        return PotentialFileError(self.source, text.replace("\n", "\\n"))

    # ------------------------------------------------------------- generic
    def obj(self, value, path: str, required=(), optional=()) -> dict:
        if not isinstance(value, dict):
            raise self.fail(path, f"expected an object, got {_show(value)}")
        for k in required:
            if k not in value:
                raise self.fail(path, f"missing key {k!r}")
        known = set(required) | set(optional)
        for k in value:
            if k not in known:
                raise self.fail(_key(path, k), f"unknown key (expected "
                                f"{', '.join(map(repr, [*required, *optional]))})")
        return value

    def number(self, value, path: str, low_inf: bool = False, high_inf: bool = False,
               bound: float = MAX_VALUE) -> float:
        """A finite number (JSON int or float) of magnitude ≤ ``bound``; ``low_inf`` /
        ``high_inf`` also allow -inf / +inf (float or the writer's "-inf" / "inf")."""
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise self.fail(path, f"expected a number, got {_show(value)}")
        if isinstance(value, str):
            if not ((value == "-inf" and low_inf) or (value == "inf" and high_inf)):
                raise self.fail(path, f"expected a number, got {_show(value)}")
            return float(value)
        try:
            x = float(value)
        except OverflowError:
            raise self.fail(path, f"{_show(value)} is out of range (|x| ≤ {bound:g})") from None
        if math.isnan(x):
            raise self.fail(path, "NaN (must be a finite number)")
        if math.isinf(x):
            if (x < 0 and low_inf) or (x > 0 and high_inf):
                return x
            raise self.fail(path, f"{x} (must be a finite number)")
        if abs(x) > bound:
            raise self.fail(path, f"{x:g} is out of range (|x| ≤ {bound:g})")
        return x

    def integer(self, value, path: str, low: int, high: int) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(path, f"expected an integer, got {_show(value)}")
        if not low <= value <= high:
            raise self.fail(path, f"{_show(value)} is out of range ({low}…{high})")
        return value

    def string(self, value, path: str) -> str:
        if not isinstance(value, str):
            raise self.fail(path, f"expected a string, got {_show(value)}")
        return value

    def array(self, value, path: str, n: int | None = None, what: str = "items",
              high: int | None = None) -> list:
        if not isinstance(value, list):
            raise self.fail(path, f"expected a list of {what}, got {_show(value)}")
        if n is not None and len(value) != n:
            raise self.fail(path, f"expected {n} {what}, got {len(value)}")
        if high is not None and len(value) > high:
            raise self.fail(path, f"{len(value)} {what} (at most {high})")
        return value

    def numbers(self, value, path: str, n: int, **kw) -> list[float]:
        self.array(value, path, n, "numbers")
        if all(type(v) is float for v in value):  # the common case, checked at numpy speed
            a = np.asarray(value, dtype=np.float64)
            if np.isfinite(a).all() and (a.size == 0 or np.abs(a).max() <= kw.get(
                    "bound", MAX_VALUE)):
                return value
        return [self.number(v, f"{path}[{k}]", **kw) for k, v in enumerate(value)]

    def matrix(self, value, path: str, rows: int, cols: int) -> list[list[float]]:
        """A ``rows``×``cols`` matrix as a list of rows."""
        expected = f"expected {rows}×{cols}"
        if not isinstance(value, list):
            raise self.fail(path, f"{expected}, got {_show(value)}")
        if all(isinstance(r, list) for r in value):
            lengths = {len(r) for r in value}
            if len(value) != rows or lengths - {cols}:
                if len(lengths) <= 1:
                    got = f"{len(value)}×{next(iter(lengths), 0)}"
                    raise self.fail(path, f"{expected}, got {got}")
                k = next(i for i, r in enumerate(value) if len(r) != cols)
                raise self.fail(f"{path}[{k}]", f"expected {cols} numbers, got {len(value[k])}")
        elif len(value) != rows:
            raise self.fail(path, f"{expected}, got a list of {len(value)}")
        return [self.numbers(r, f"{path}[{k}]", cols) for k, r in enumerate(value)]

    def cutoff(self, value, path: str) -> float:
        """A cutoff radius (Å) within :func:`hdnnp.validation.check_cutoff`."""
        self.number(value, path)
        try:
            return check_cutoff(value, path)
        except HdnnpError as exc:
            raise PotentialFileError(self.source, str(exc)) from None

    # ------------------------------------------------------------ document
    def potential(self, doc) -> NeuralNetworkPotential:
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise PotentialFileError(self.source, "not an hdnnp potential file (missing "
                                     f"'format: {FORMAT}')")
        if _too_deep(doc, MAX_DEPTH):
            raise self.fail("", f"nested more than {MAX_DEPTH} levels deep (not an hdnnp "
                            "potential)")
        version = doc.get("version")
        if isinstance(version, bool) or version not in READABLE_VERSIONS:
            raise self.fail("", f"potential file version {_show(version)} is not supported "
                            f"by hdnnp {__version__} (it reads versions "
                            f"{', '.join(map(str, READABLE_VERSIONS))})")
        if "sha256" not in doc:
            raise self.fail("", "no checksum: the 'sha256' key is missing (hdnnp writes it "
                            "into every potential file; without it damage cannot be detected)")
        try:
            ok = isinstance(doc["sha256"], str) and doc["sha256"] == _checksum(doc)
        except (TypeError, ValueError, RecursionError):
            ok = False
        if not ok:
            raise self.fail("", "file is damaged: its checksum does not match its content")
        self.obj(doc, "", _DOC_REQUIRED, _DOC_OPTIONAL)
        if "units" in doc:
            units = self.obj(doc["units"], "units", ("energy", "length"))
            for key, want in (("energy", "eV"), ("length", "angstrom")):
                if units[key] != want:
                    raise self.fail(f"units.{key}", f"expected {want!r}, got "
                                    f"{_show(units[key])}")
        elements = self.elements(doc["elements"])
        refs = self.obj(doc["reference_energies"], "reference_energies", elements)
        reference = {e: self.number(refs[e], f"reference_energies.{e}") for e in elements}
        features = self.descriptor_config(doc["descriptor"], elements)
        nets = self.obj(doc["networks"], "networks", elements)
        specs = {}
        for e in elements:
            n_features = features.get(e) if features is not None else None
            specs[e] = self.element_networks(nets[e], f"networks.{e}", e, n_features, version)
        sizes = {e: len(v) for e, v in specs.items()}
        if len(set(sizes.values())) > 1:
            a, b = elements[0], next(e for e in elements if sizes[e] != sizes[elements[0]])
            raise self.fail(f"networks.{b}", f"{sizes[b]} committee member(s), but networks.{a} "
                            f"has {sizes[a]}")
        for key in ("hdnnp_version", "created"):
            if doc.get(key) is not None:
                self.string(doc[key], key)
        training = doc.get("training")
        if training is not None and not isinstance(training, dict):
            raise self.fail("training", f"expected an object, got {_show(training)}")
        descriptor = self.descriptor(doc["descriptor"], elements, features)
        if features is None:  # a descriptor kind without a schema here: check after building
            for e in elements:
                self.check_inputs(specs[e], f"networks.{e}", e, descriptor.n_features(e))
        networks = {}
        for e in elements:
            members = [_network(s) for s in specs[e]]
            networks[e] = CommitteeNetwork(members) if len(members) > 1 else members[0]
        model = NeuralNetworkPotential(descriptor, networks=networks,
                                       reference_energies=reference)
        model.metadata = {"training": training or {}, "created": doc.get("created"),
                          "hdnnp_version": doc.get("hdnnp_version"), "source": self.source}
        return model.double()

    def elements(self, value) -> list[str]:
        from ase.data import atomic_numbers

        self.array(value, "elements", what="element symbols")
        if not value:
            raise self.fail("elements", "no elements")
        for k, e in enumerate(value):
            if not isinstance(e, str) or e not in atomic_numbers or e == "X":
                raise self.fail(f"elements[{k}]", f"{_show(e)} is not a chemical element")
            if e in value[:k]:
                raise self.fail(f"elements[{k}]", f"{e!r} is listed twice")
        return list(value)

    # ---------------------------------------------------------- descriptor
    def descriptor_config(self, cfg, elements: list[str]) -> dict[str, int] | None:
        """Check the descriptor's configuration without building it; the number of
        features per element (None for a kind registered by a plug-in)."""
        from hdnnp.descriptors import DESCRIPTOR_KINDS, Chebyshev, SymmetryFunctions

        path = "descriptor"
        if not isinstance(cfg, dict):
            raise self.fail(path, f"expected an object, got {_show(cfg)}")
        kind = cfg.get("kind")
        if not isinstance(kind, str) or kind not in DESCRIPTOR_KINDS:
            raise self.fail(f"{path}.kind", f"unknown descriptor kind {_show(kind)} (known: "
                            f"{', '.join(DESCRIPTOR_KINDS)})")
        if cfg.get("elements") != elements:
            raise self.fail(f"{path}.elements", f"expected the file's elements {elements}, "
                            f"got {_show(cfg.get('elements'))}")
        cls = DESCRIPTOR_KINDS[kind]
        if cls is SymmetryFunctions:
            return self.symmetry_config(cfg, elements)
        if cls is Chebyshev:
            return self.chebyshev_config(cfg, elements)
        return None

    def symmetry_config(self, cfg: dict, elements: list[str]) -> dict[str, int]:
        from hdnnp.descriptors.symmetry import (
            BEHLER_PARAMETERS,
            SF_PARAMETERS,
            canonical_function,
            cutoff_type_number,
            normalise_function,
        )

        path = "descriptor"
        self.obj(cfg, path, ("kind", "elements", "functions"),
                 ("cutoff_type", "cutoff_alpha", "cutoff_function"))
        for key in ("cutoff_type", "cutoff_function"):
            if key in cfg:
                value = cfg[key]
                if isinstance(value, bool) or not isinstance(value, int | str):
                    raise self.fail(f"{path}.{key}", f"expected an n2p2 cutoff type number or "
                                    f"name, got {_show(value)}")
                try:
                    cutoff_type_number(value)
                except (HdnnpError, ValueError) as exc:
                    raise self.fail(f"{path}.{key}", str(exc)) from None
        if "cutoff_alpha" in cfg:
            alpha = self.number(cfg["cutoff_alpha"], f"{path}.cutoff_alpha")
            if not 0.0 <= alpha < 1.0:
                raise self.fail(f"{path}.cutoff_alpha", f"{alpha:g} is not in [0, 1)")
        functions = self.array(cfg["functions"], f"{path}.functions", what="functions",
                               high=MAX_FEATURES * len(elements))
        params = {n for names in (*SF_PARAMETERS.values(), *BEHLER_PARAMETERS.values())
                  for n in names}
        allowed = ("type", "center", "neighbours", "neighbors", *sorted(params))
        counts = dict.fromkeys(elements, 0)
        for k, f in enumerate(functions):
            fpath = f"{path}.functions[{k}]"
            self.obj(f, fpath, ("type", "center"), allowed)
            kind = f["type"]
            if isinstance(kind, bool) or not isinstance(kind, int | str):
                raise self.fail(f"{fpath}.type", f"expected a type number or name, got "
                                f"{_show(kind)}")
            self.string(f["center"], f"{fpath}.center")
            for key in ("neighbours", "neighbors"):
                if key in f and not isinstance(f[key], str):
                    self.array(f[key], f"{fpath}.{key}", what="element symbols", high=2)
                    for j, e in enumerate(f[key]):
                        self.string(e, f"{fpath}.{key}[{j}]")
            if "subtype" in f:
                self.string(f["subtype"], f"{fpath}.subtype")
            for name in params - {"subtype"}:
                if name in f:
                    self.number(f[name], f"{fpath}.{name}")
            try:
                spec = canonical_function(normalise_function(f, elements))
            except HdnnpError as exc:
                raise self.fail(fpath, str(exc)) from None
            problem = symmetry_function_problem(spec)
            if problem:
                raise self.fail(fpath, problem)
            counts[spec["center"]] += 1
        for e, n in counts.items():
            if n > MAX_FEATURES:
                raise self.fail(f"{path}.functions", f"{n} functions for {e} (at most "
                                f"{MAX_FEATURES})")
        return counts

    def chebyshev_config(self, cfg: dict, elements: list[str]) -> dict[str, int]:
        path = "descriptor"
        self.obj(cfg, path, ("kind", "elements", "radial_rc", "radial_order", "angular_rc",
                             "angular_order"), ("spins",))
        for key in ("radial_rc", "angular_rc"):
            self.cutoff(cfg[key], f"{path}.{key}")
        orders = [self.integer(cfg[key], f"{path}.{key}", 0, MAX_FEATURES)
                  for key in ("radial_order", "angular_order")]
        n = (orders[0] + orders[1] + 2) * (2 if len(elements) > 1 else 1)
        if n > MAX_FEATURES:
            raise self.fail(path, f"radial_order {orders[0]} and angular_order {orders[1]} give "
                            f"{n} features (at most {MAX_FEATURES})")
        if cfg.get("spins") is not None:
            self.numbers(cfg["spins"], f"{path}.spins", len(elements), bound=MAX_SPIN)
        return dict.fromkeys(elements, n)

    def descriptor(self, cfg: dict, elements: list[str], features: dict[str, int] | None):
        """Build the (checked) descriptor; its own checks' errors name the file."""
        from hdnnp.descriptors import descriptor_from_config

        try:
            descriptor = descriptor_from_config(cfg)
        except HdnnpError as exc:
            raise self.fail("descriptor", str(exc)) from None
        except (KeyError, TypeError, ValueError, OverflowError) as exc:
            raise self.fail("descriptor", f"cannot be built ({type(exc).__name__}: {exc})") \
                from None
        for e in elements:
            n = descriptor.n_features(e)
            if n > MAX_FEATURES or (features is not None and n != features[e]):
                raise self.fail("descriptor", f"{n} features for {e} (expected "
                                f"{features[e] if features else f'at most {MAX_FEATURES}'})")
        self.cutoff(descriptor.cutoff, "descriptor")
        return descriptor

    # ------------------------------------------------------------ networks
    def element_networks(self, spec, path: str, element: str, n_features: int | None,
                         version: int) -> list[dict]:
        """The checked network(s) of one element: one, or the committee's members."""
        if isinstance(spec, dict) and "committee" in spec:
            if version < 2:
                raise self.fail(f"{path}.committee", "committees need potential file version 2")
            self.obj(spec, path, ("committee",))
            members = self.array(spec["committee"], f"{path}.committee", what="members",
                                 high=MAX_COMMITTEE)
            if len(members) < 2:
                raise self.fail(f"{path}.committee", f"{len(members)} member(s); a committee "
                                "needs at least two")
            return [self.network(m, f"{path}.committee[{k}]", element, n_features)
                    for k, m in enumerate(members)]
        return [self.network(spec, path, element, n_features)]

    def check_inputs(self, specs: list[dict], path: str, element: str, n: int) -> None:
        for k, s in enumerate(specs):
            if s["inputs"] != n:
                where = f"{path}.committee[{k}]" if len(specs) > 1 else path
                raise self.fail(f"{where}.inputs", f"the network takes {s['inputs']} inputs, "
                                f"but the descriptor has {n} features for {element}")

    def network(self, d, path: str, element: str, n_features: int | None) -> dict:
        self.obj(d, path, _NET_REQUIRED, _NET_OPTIONAL)
        n_in = self.integer(d["inputs"], f"{path}.inputs", 0, MAX_FEATURES)
        if n_features is not None:
            self.check_inputs([{"inputs": n_in}], path, element, n_features)
        hidden = self.array(d["hidden"], f"{path}.hidden", what="layer sizes", high=MAX_LAYERS)
        hidden = [self.integer(h, f"{path}.hidden[{k}]", 1, MAX_NEURONS)
                  for k, h in enumerate(hidden)]
        n_layers = len(hidden) + 1
        acts = self.array(d["activations"], f"{path}.activations", n_layers,
                          "activations (one per hidden layer and the output)")
        for k, a in enumerate(acts):
            self.string(a, f"{path}.activations[{k}]")
            try:
                canonical_activation(a)
            except HdnnpError as exc:
                raise self.fail(f"{path}.activations[{k}]", str(exc)) from None
        sizes = [n_in, *hidden, 1]
        weights = self.array(d["weights"], f"{path}.weights", n_layers, "weight matrices")
        biases = self.array(d["biases"], f"{path}.biases", n_layers, "bias vectors")
        out = {"inputs": n_in, "hidden": hidden, "activations": list(acts),
               "weights": [self.matrix(w, f"{path}.weights[{k}]", sizes[k + 1], sizes[k])
                           for k, w in enumerate(weights)],
               "biases": [self.numbers(b, f"{path}.biases[{k}]", sizes[k + 1])
                          for k, b in enumerate(biases)]}
        for key in ("input_shift", "input_scale"):
            if key in d:
                out[key] = self.numbers(d[key], f"{path}.{key}", n_in)
        for key in ("output_scale", "output_shift"):
            if key in d:
                out[key] = self.number(d[key], f"{path}.{key}")
        if "feature_min" in d:
            out["feature_min"] = self.numbers(d["feature_min"], f"{path}.feature_min", n_in,
                                              low_inf=True)
        if "feature_max" in d:
            out["feature_max"] = self.numbers(d["feature_max"], f"{path}.feature_max", n_in,
                                              high_inf=True)
        if "feature_min" in out and "feature_max" in out:
            for k, (lo, hi) in enumerate(zip(out["feature_min"], out["feature_max"])):
                if lo > hi:
                    raise self.fail(f"{path}.feature_min[{k}]", f"{lo!r} is larger than "
                                    f"feature_max[{k}] = {hi!r}")
        return out


def _network(v: dict) -> AtomicNetwork:
    """An :class:`AtomicNetwork` from a network checked by :meth:`_Document.network`."""
    acts = v["activations"]
    net = AtomicNetwork(v["inputs"], v["hidden"], acts[:-1], output_activation=acts[-1])
    net = net.double()
    f64 = dict(dtype=torch.float64)
    with torch.no_grad():
        for layer, w, b in zip(net.layers, v["weights"], v["biases"], strict=True):
            layer.weight.copy_(torch.tensor(w, **f64).reshape(layer.weight.shape))
            layer.bias.copy_(torch.tensor(b, **f64))
        for name in _NET_OPTIONAL:
            if name in v:
                getattr(net, name).copy_(torch.tensor(v[name], **f64))
    return net


# ------------------------------------------------------------------ API
def potential_to_dict(model: NeuralNetworkPotential, training: dict | None = None) -> dict:
    doc = {
        "format": FORMAT,
        # the lowest version that holds the content: single potentials stay readable by
        # hdnnp releases that predate committees
        "version": VERSION if model.committee_size > 1 else 1,
        "units": {"energy": "eV", "length": "angstrom"},
        "elements": list(model.elements),
        "reference_energies": model.reference_energy_dict(),
        "descriptor": model.descriptor.to_config(),
        "networks": {e: element_networks_to_dict(model.networks[e]) for e in model.elements},
        "training": training if training is not None else model.metadata.get("training", {}),
        "hdnnp_version": __version__,
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
    }
    doc["sha256"] = _checksum(doc)
    return doc


def potential_from_dict(doc: dict, source: str = "<potential>") -> NeuralNetworkPotential:
    """The potential of a parsed potential document, checked completely first (module
    docstring); any problem is a :class:`PotentialFileError` naming ``source`` and the
    key path."""
    return _Document(str(source)).potential(doc)


def save_potential(model: NeuralNetworkPotential, path: str | Path,
                   training: dict | None = None) -> Path:
    """Write ``model`` to ``path`` atomically (gzip-compressed if the name ends in .gz)."""
    path = Path(path)
    text = json.dumps(potential_to_dict(model, training), indent=1).encode()
    if path.suffix == ".gz":
        text = gzip.compress(text, mtime=0)
    atomic_write_bytes(path, text)
    return path


_LONG_NUMBER = re.compile(r"\d{4300,}")


def read_document(path: str | Path):
    """The parsed JSON of a potential file (gzip-compressed or not); a file that is too
    large, not gzip/UTF-8/JSON, or nested too deeply is a one-line
    :class:`PotentialFileError`."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise PotentialFileError(path, f"file of {size} bytes is larger than the "
                                     f"{MAX_FILE_BYTES} bytes a potential file may have")
        raw = path.read_bytes()
    except OSError as exc:
        raise PotentialFileError(path, f"cannot be read ({exc.strerror or exc})") from None
    if raw[:2] == b"\x1f\x8b":
        try:
            with gzip.GzipFile(fileobj=io.BytesIO(raw)) as fh:
                raw = fh.read(MAX_FILE_BYTES + 1)
        except (OSError, EOFError, zlib.error) as exc:
            raise PotentialFileError(path, f"damaged gzip data ({exc})") from None
        if len(raw) > MAX_FILE_BYTES:
            raise PotentialFileError(path, f"decompresses to more than {MAX_FILE_BYTES} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PotentialFileError(path, f"file is not valid JSON (not UTF-8 text: {exc})") \
            from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        what = "truncated" if exc.pos >= len(text) - 2 else "not valid JSON"
        raise PotentialFileError(path, f"file is {what} ({exc.__class__.__name__}: {exc})") \
            from None
    except RecursionError:
        raise PotentialFileError(path, "file is not valid JSON for hdnnp: nested too deeply "
                                 f"(at most {MAX_DEPTH} levels)") from None
    except ValueError as exc:  # Python's limit on the digits of an integer
        m = _LONG_NUMBER.search(text)
        where = f"line {text.count(chr(10), 0, m.start()) + 1}: " if m else ""
        raise PotentialFileError(path, f"{where}a number with more digits than JSON readers "
                                 f"accept ({str(exc).split(';')[0]})") from None


def load_potential(path: str | Path) -> NeuralNetworkPotential:
    """Load an hdnnp potential file, an n2p2/RuNNer potential directory, or an ænet
    potential (a directory of ``*.nn`` files or one such file, :mod:`hdnnp.aenet`).

    Everything is checked on load (module docstring; :mod:`hdnnp.n2p2.potential` for
    directories): a damaged, edited or absurd file is a one-line
    :class:`~hdnnp.errors.PotentialFileError` (or :class:`~hdnnp.errors.InputFileError`
    for n2p2 files) naming the file and the key path or line."""
    path = Path(path)
    from hdnnp.aenet.potential import is_aenet_path, load_aenet_potential

    if is_aenet_path(path):  # a directory of ænet *.nn files, or one such file
        return load_aenet_potential(path)
    if path.is_dir():
        from hdnnp.n2p2.potential import load_n2p2_potential

        return load_n2p2_potential(path)
    if not path.exists():
        raise PotentialFileError(path, "no such file")
    return potential_from_dict(read_document(path), str(path))
