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
potential reloads bit-identically.  The file is data only (no pickle); it is written
atomically (temporary file + rename).  A truncated or garbled file (checksum
mismatch) or an unknown format version raises :class:`~hdnnp.errors.PotentialFileError`.
"""

from __future__ import annotations

import datetime as _dt
import gzip
import hashlib
import json
import math
from pathlib import Path

import torch

from hdnnp import __version__
from hdnnp.errors import HdnnpError, PotentialFileError
from hdnnp.fileio import atomic_write_bytes
from hdnnp.model import AtomicNetwork, CommitteeNetwork, NeuralNetworkPotential, member_networks

FORMAT = "hdnnp-potential"
VERSION = 2
READABLE_VERSIONS = (1, 2)


def _floats(t: torch.Tensor):
    def conv(x):
        x = float(x)
        if math.isinf(x):
            return "inf" if x > 0 else "-inf"
        return x

    if t.dim() == 0:
        return conv(t)
    return [_floats(x) if x.dim() else conv(x) for x in t.detach().cpu().double()]


def _tensor(x) -> torch.Tensor:
    def conv(v):
        if isinstance(v, list):
            return [conv(u) for u in v]
        return float(v)

    return torch.tensor(conv(x), dtype=torch.float64)


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


def element_networks_from_dict(d: dict) -> AtomicNetwork | CommitteeNetwork:
    if "committee" in d:
        return CommitteeNetwork([network_from_dict(m) for m in d["committee"]])
    return network_from_dict(d)


def network_from_dict(d: dict) -> AtomicNetwork:
    acts = d["activations"]
    net = AtomicNetwork(int(d["inputs"]), d["hidden"], acts[:-1], output_activation=acts[-1])
    net = net.double()
    with torch.no_grad():
        for layer, w, b in zip(net.layers, d["weights"], d["biases"], strict=True):
            wt, bt = _tensor(w), _tensor(b)
            if wt.shape != layer.weight.shape or bt.shape != layer.bias.shape:
                raise HdnnpError(f"weight matrix of shape {tuple(wt.shape)} does not fit layer "
                                 f"{tuple(layer.weight.shape)}")
            layer.weight.copy_(wt)
            layer.bias.copy_(bt)
        for name in ("input_shift", "input_scale", "output_scale", "output_shift",
                     "feature_min", "feature_max"):
            if name in d:
                getattr(net, name).copy_(_tensor(d[name]))
    return net


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
    from hdnnp.descriptors import descriptor_from_config

    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise PotentialFileError(source, "not an hdnnp potential file (missing 'format: "
                                 f"{FORMAT}')")
    version = doc.get("version")
    if version not in READABLE_VERSIONS:
        raise PotentialFileError(source, f"potential file version {version!r} is not supported "
                                 f"by hdnnp {__version__} (it reads versions "
                                 f"{', '.join(map(str, READABLE_VERSIONS))})")
    if "sha256" in doc and doc["sha256"] != _checksum(doc):
        raise PotentialFileError(source, "file is damaged: its checksum does not match its content")
    try:
        descriptor = descriptor_from_config(doc["descriptor"])
        networks = {e: element_networks_from_dict(doc["networks"][e]) for e in doc["elements"]}
        model = NeuralNetworkPotential(descriptor, networks=networks,
                                       reference_energies=doc.get("reference_energies", {}))
    except PotentialFileError:
        raise
    except (KeyError, TypeError, ValueError, HdnnpError) as exc:
        raise PotentialFileError(source, f"inconsistent potential file: {exc}") from None
    model.metadata = {"training": doc.get("training", {}), "created": doc.get("created"),
                      "hdnnp_version": doc.get("hdnnp_version"), "source": source}
    return model.double()


def save_potential(model: NeuralNetworkPotential, path: str | Path,
                   training: dict | None = None) -> Path:
    """Write ``model`` to ``path`` atomically (gzip-compressed if the name ends in .gz)."""
    path = Path(path)
    text = json.dumps(potential_to_dict(model, training), indent=1).encode()
    if path.suffix == ".gz":
        text = gzip.compress(text, mtime=0)
    atomic_write_bytes(path, text)
    return path


def load_potential(path: str | Path) -> NeuralNetworkPotential:
    """Load an hdnnp potential file, or an n2p2/RuNNer potential directory."""
    path = Path(path)
    if path.is_dir():
        from hdnnp.n2p2.potential import load_n2p2_potential

        return load_n2p2_potential(path)
    if not path.exists():
        raise PotentialFileError(path, "no such file")
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as exc:
            raise PotentialFileError(path, f"damaged gzip data ({exc})") from None
    try:
        doc = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        what = "truncated" if isinstance(exc, json.JSONDecodeError) and exc.pos >= len(raw) - 2 \
            else "not valid JSON"
        raise PotentialFileError(path, f"file is {what} ({exc.__class__.__name__}: {exc})") \
            from None
    return potential_from_dict(doc, str(path))
