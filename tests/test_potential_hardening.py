"""Potential files and n2p2 potential directories are checked completely on load (issue 10,
item 3): damaged, edited or absurd files give a one-line PotentialFileError /
InputFileError naming the file and the key path or line, never another exception, a hang
or a potential that returns NaN.  Property tests mutate valid files at random."""

from __future__ import annotations

import copy
import gzip
import json
import re
import shutil
from pathlib import Path

import pytest
import torch
from ase import Atoms
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hdnnp.errors import HdnnpError, InputFileError, PotentialFileError
from hdnnp.model import NeuralNetworkPotential
from hdnnp.neighbours import build_batch
from hdnnp.potential import _checksum, load_potential, save_potential

from test_model import DESCRIPTORS, make_model

WATER = Path(__file__).parents[1].parent / "shared" / "data" / "n2p2" / "H2O_RPBE-D3"
TIO2 = Atoms("TiO2", positions=[[0.0, 0.0, 0.0], [1.8, 0.0, 0.0], [0.0, 1.9, 0.3]])
H2O = Atoms("OH2", positions=[[0.0, 0.0, 0.0], [0.96, 0.0, 0.0], [-0.24, 0.93, 0.0]])


# ------------------------------------------------------------------ helpers
def _model(kind="G2", seed=0):
    return make_model(DESCRIPTORS[kind](), seed=seed)


def _committee():
    return NeuralNetworkPotential.committee([_model(seed=0), _model(seed=1)])


def _doc(model) -> dict:
    from hdnnp.potential import potential_to_dict

    return json.loads(json.dumps(potential_to_dict(model)))


def _write(path: Path, doc: dict, checksum: bool = True) -> Path:
    """Write ``doc`` (an edited document) with its checksum recomputed."""
    doc = dict(doc)
    if checksum:
        doc["sha256"] = _checksum(doc)
    path.write_text(json.dumps(doc))
    return path


def _load_error(path, cls=PotentialFileError) -> str:
    with pytest.raises(cls) as info:
        load_potential(path)
    message = str(info.value)
    assert "\n" not in message
    assert str(path) in message or Path(info.value.path).name in message
    return message


def _finite_prediction(model, atoms) -> None:
    out = model(build_batch([atoms], model.elements, model.cutoff), forces=True)
    assert torch.isfinite(out["energy"]).all(), out["energy"]
    assert torch.isfinite(out["forces"]).all()


@pytest.fixture
def water(tmp_path):
    if not (WATER / "input.nn").exists():
        pytest.skip(f"shared n2p2 water potential not found at {WATER}")
    d = tmp_path / "water"
    d.mkdir()
    for name in ("input.nn", "scaling.data", "weights.001.data", "weights.008.data"):
        shutil.copy(WATER / name, d / name)
    return d


def _edit(path: Path, old: str, new: str) -> int:
    """Replace the first line starting with ``old`` by ``new``; its line number."""
    lines = path.read_text().splitlines()
    k = next(i for i, line in enumerate(lines) if line.startswith(old))
    lines[k] = new
    path.write_text("\n".join(lines) + "\n")
    return k + 1


def _data_line(path: Path, k: int = 0) -> int:
    """Line number of the k-th non-comment line of a data file."""
    lines = path.read_text().splitlines()
    return [i for i, line in enumerate(lines, 1) if line.strip() and not
            line.lstrip().startswith("#")][k]


def _set_field(path: Path, line: int, column: int, value: str) -> None:
    lines = path.read_text().splitlines()
    f = lines[line - 1].split()
    f[column] = value
    lines[line - 1] = " ".join(f)
    path.write_text("\n".join(lines) + "\n")


# ------------------------------------------------------------ hdnnp files
def test_huge_integer_is_one_line_error(tmp_path):
    path = save_potential(_model(), tmp_path / "model.json")
    text = path.read_text()
    k = text.index('"output_shift"')
    start = text.index(":", k) + 1
    end = text.index(",", start)
    path.write_text(text[:start] + " " + "9" * 4301 + text[end:])
    line = text[:start].count("\n") + 1
    message = _load_error(path)
    assert f"line {line}" in message and "digits" in message


@pytest.mark.parametrize("where,value,key", [
    (("networks", "O", "weights", 0, 0, 0), float("nan"), r"networks\.O\.weights\[0\]\[0\]\[0\]"),
    (("networks", "Ti", "biases", 1, 2), float("inf"), r"networks\.Ti\.biases\[1\]\[2\]"),
    (("networks", "O", "input_shift", 1), "nan", r"networks\.O\.input_shift\[1\]"),
    (("networks", "O", "input_scale", 0), "inf", r"networks\.O\.input_scale\[0\]"),
    (("networks", "O", "output_scale"), float("-inf"), r"networks\.O\.output_scale"),
    (("networks", "O", "output_shift"), 1e300, r"networks\.O\.output_shift"),
    (("reference_energies", "Ti"), float("nan"), r"reference_energies\.Ti"),
    (("networks", "O", "feature_max", 0), float("nan"), r"networks\.O\.feature_max\[0\]"),
    (("networks", "O", "feature_min", 0), "inf", r"networks\.O\.feature_min\[0\]"),
    (("descriptor", "functions", 0, "eta"), float("nan"), r"descriptor\.functions\[0\]\.eta"),
])
def test_non_finite_numbers_are_refused_on_load(tmp_path, where, value, key):
    doc = _doc(_model())
    node = doc
    for k in where[:-1]:
        node = node[k]
    node[where[-1]] = value
    message = _load_error(_write(tmp_path / "model.json", doc))
    assert re.search(key, message), message


def test_infinite_feature_bounds_of_unseen_features_still_load(tmp_path):
    for name, m in (("committee", _committee()), ("chebyshev", _model("chebyshev"))):
        _finite_prediction(load_potential(save_potential(m, tmp_path / f"{name}.json.gz")), TIO2)
    model = _model()
    for net in model.networks.values():  # never trained: the bounds stay -inf / +inf
        assert torch.isinf(net.feature_min).all() and torch.isinf(net.feature_max).all()
    back = load_potential(save_potential(model, tmp_path / "model.json"))
    assert torch.equal(back.networks["O"].feature_min, model.networks["O"].feature_min)
    _finite_prediction(back, TIO2)
    doc = _doc(model)
    doc["networks"]["O"]["feature_max"][0] = "-inf"  # -inf only allowed as a minimum
    assert "feature_max[0]" in _load_error(_write(tmp_path / "bad.json", doc))


@pytest.mark.parametrize("committee", [False, True])
def test_checksum_is_mandatory(tmp_path, committee):
    doc = _doc(_committee() if committee else _model())
    assert doc["version"] == (2 if committee else 1)
    renamed = dict(doc)
    renamed["sha257"] = renamed.pop("sha256")
    path = tmp_path / "renamed.json"
    path.write_text(json.dumps(renamed))
    assert "'sha256' key is missing" in _load_error(path)
    del renamed["sha257"]
    path.write_text(json.dumps(renamed))
    assert "checksum" in _load_error(path)


def test_not_json_or_gzip_is_one_line(tmp_path):
    path = tmp_path / "model.json"
    for content in (
        b"\x00\x01garbage\xff",
        b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff" + b"\xff" * 40,  # bad deflate data
        gzip.compress(b"[" * 100_000),  # RecursionError in Python's json
        b"[" * 100_000,
        b'{"a": ' * 50_000,
        '{"format": "hdnnp-potential"}'.encode("utf-16"),
    ):
        path.write_bytes(content)
        _load_error(path)


def test_deep_nesting_inside_a_checksummed_document(tmp_path):
    doc = _doc(_model())
    deep: list = []
    node = deep
    for _ in range(100):
        node.append([])
        node = node[0]
    doc["training"] = {"history": deep}
    assert "nested" in _load_error(_write(tmp_path / "model.json", doc))


def test_giant_cutoff_is_refused_on_load(tmp_path):
    doc = _doc(_model("chebyshev"))
    doc["descriptor"]["radial_rc"] = 1.0e4
    message = _load_error(_write(tmp_path / "cheb.json", doc))
    assert "descriptor.radial_rc" in message and "30" in message
    doc = _doc(_model())
    doc["descriptor"]["functions"][1]["rc"] = 1.0e4
    message = _load_error(_write(tmp_path / "sf.json", doc))
    assert "descriptor.functions[1]" in message and "exceeds" in message
    doc["descriptor"]["functions"][1]["rc"] = 1.0e-30  # below any interatomic distance
    for f in doc["descriptor"]["functions"]:
        f["rc"] = 1.0e-30
    assert "at least 0.1" in _load_error(_write(tmp_path / "tiny.json", doc))


@pytest.mark.parametrize("key", ["input_shift", "input_scale", "feature_min", "feature_max"])
def test_wrong_length_scaling_vector(tmp_path, key):
    doc = _doc(_model())
    doc["networks"]["O"][key] = doc["networks"]["O"][key][:-1]
    message = _load_error(_write(tmp_path / "model.json", doc))
    assert f"networks.O.{key}: expected 2 numbers, got 1" in message


def test_weight_shapes_must_chain(tmp_path):
    doc = _doc(_model())
    w = doc["networks"]["O"]["weights"][1]  # 5×7
    doc["networks"]["O"]["weights"][1] = [row[:-1] for row in w]
    assert "networks.O.weights[1]: expected 5×7, got 5×6" in _load_error(
        _write(tmp_path / "a.json", doc))
    doc = _doc(_model())
    doc["networks"]["O"]["weights"][1][3] = doc["networks"]["O"]["weights"][1][3][:-1]
    assert "networks.O.weights[1][3]: expected 7 numbers, got 6" in _load_error(
        _write(tmp_path / "b.json", doc))
    doc = _doc(_model())
    doc["networks"]["Ti"]["biases"][0].append(0.0)
    assert "networks.Ti.biases[0]: expected 7 numbers, got 8" in _load_error(
        _write(tmp_path / "c.json", doc))


def test_inputs_must_equal_the_descriptor_features(tmp_path):
    doc = _doc(_model())
    net = doc["networks"]["O"]
    net["inputs"] = 3  # consistent with its own weights, but the descriptor has 2 features
    net["weights"][0] = [[*row, 0.1] for row in net["weights"][0]]
    for key in ("input_shift", "input_scale"):
        net[key].append(0.5)
    for key, v in (("feature_min", "-inf"), ("feature_max", "inf")):
        net[key].append(v)
    message = _load_error(_write(tmp_path / "model.json", doc))
    assert "networks.O.inputs" in message and "2 features for O" in message


@pytest.mark.parametrize("edit,key", [
    (lambda d: d["networks"]["O"]["activations"].__setitem__(1, "swish"),
     "networks.O.activations[1]"),
    (lambda d: d["descriptor"].__setitem__("kind", "soap"), "descriptor.kind"),
    (lambda d: d["descriptor"]["functions"][0].__setitem__("eta", -1.0),
     "descriptor.functions[0]: eta must be non-negative"),
    (lambda d: d["descriptor"]["functions"][0].__setitem__("type", "G9"),
     "descriptor.functions[0]: unknown symmetry function type"),
    (lambda d: d["descriptor"].__setitem__("cutoff_alpha", 2.0), "descriptor.cutoff_alpha"),
    (lambda d: d.__setitem__("elements", ["O", "Xx"]), "elements[1]: 'Xx' is not a chemical"),
    (lambda d: d["reference_energies"].pop("Ti"), "reference_energies: missing key 'Ti'"),
    (lambda d: d["networks"].__setitem__("Zr", d["networks"]["O"]), "networks.Zr: unknown key"),
    (lambda d: d["networks"]["O"].__setitem__("input_scal", [1.0, 1.0]),
     "networks.O.input_scal: unknown key"),
    (lambda d: d["units"].__setitem__("energy", "hartree"), "units.energy: expected 'eV'"),
    (lambda d: d.__setitem__("version", True), "version true is not supported"),
])
def test_schema_errors_name_the_key_path(tmp_path, edit, key):
    doc = _doc(_model())
    edit(doc)
    assert key in _load_error(_write(tmp_path / "model.json", doc))


def test_sizes_are_bounded_before_allocating(tmp_path):
    doc = _doc(_model())
    doc["networks"]["O"]["hidden"] = [10**12, 5]  # 10¹² neurons: refused, not allocated
    assert "networks.O.hidden[0]: 1000000000000 is out of range (1…10000)" in _load_error(
        _write(tmp_path / "neurons.json", doc))
    doc = _doc(_model())
    doc["networks"]["O"]["hidden"] = [1] * 101
    assert "networks.O.hidden: 101 layer sizes (at most 100)" in _load_error(
        _write(tmp_path / "layers.json", doc))
    doc = _doc(_model("chebyshev"))
    doc["descriptor"]["radial_order"] = 60_000
    assert "features (at most 100000)" in _load_error(_write(tmp_path / "features.json", doc))
    doc = _doc(_committee())
    member = doc["networks"]["O"]["committee"][0]
    doc["networks"]["O"]["committee"] = [member] * 1001
    assert "networks.O.committee: 1001 members (at most 1000)" in _load_error(
        _write(tmp_path / "committee.json", doc))
    doc = _doc(_committee())
    doc["networks"]["Ti"]["committee"].append(doc["networks"]["Ti"]["committee"][0])
    assert "networks.Ti: 3 committee member(s), but networks.O has 2" in _load_error(
        _write(tmp_path / "sizes.json", doc))
    doc = _doc(_model())
    doc["descriptor"]["functions"][0]["zeta"] = 1.0e4
    doc["descriptor"]["functions"][0]["type"] = "G4"
    doc["descriptor"]["functions"][0]["lambda"] = 1
    doc["descriptor"]["functions"][0]["neighbours"] = ["O", "O"]
    assert "zeta 10000 is out of range" in _load_error(_write(tmp_path / "zeta.json", doc))


# ---------------------------------------------------------- n2p2 directories
def test_n2p2_non_finite_or_huge_weights_name_file_and_line(water):
    w = water / "weights.008.data"
    line = _data_line(w, 5)
    good = w.read_text()
    for value in ("nan", "inf", "1e300", "1d400"):
        w.write_text(good)
        _set_field(w, line, 0, value)
        with pytest.raises(InputFileError) as info:
            load_potential(water)
        assert info.value.path.endswith("weights.008.data") and info.value.line == line
        assert "\n" not in str(info.value)


def test_n2p2_non_finite_scaling_names_file_and_line(water):
    s = water / "scaling.data"
    good = s.read_text()
    line = _data_line(s, 3)
    for column, value, match in ((2, "nan", "not a finite"), (3, "inf", "finite bounds"),
                                 (4, "1e999", "must be a finite"), (5, "-inf", "sf_sigma"),
                                 (2, "5e30", "out of range")):
        s.write_text(good)
        _set_field(s, line, column, value)
        with pytest.raises(HdnnpError, match=match) as info:
            load_potential(water)
        assert "scaling.data" in str(info.value) and f"line {line}" in str(info.value)


def test_n2p2_cutoff_is_checked_in_angstrom(water):
    _finite_prediction(load_potential(water), H2O)  # the unedited copy is usable
    nn = water / "input.nn"
    text = nn.read_text()
    # 50 bohr = 26.5 Å is within the 30 Å limit (compared in Å, not in the file's bohr)
    nn.write_text(text.replace(" 12.00", " 50.00"))
    model = load_potential(water)
    assert 26.4 < model.cutoff < 26.5
    nn.write_text(text.replace("symfunction_short H 2 H 0.001 0.0 12.00",
                               "symfunction_short H 2 H 0.001 0.0 1.0e4", 1))
    with pytest.raises(InputFileError, match="exceeds the sane maximum") as info:
        load_potential(water)
    assert info.value.path.endswith("input.nn")
    assert text.splitlines()[info.value.line - 1].startswith("symfunction_short H 2 H 0.001")


def test_n2p2_bad_input_nn_values_name_file_and_line(water):
    nn = water / "input.nn"
    good = nn.read_text()
    sf = "symfunction_short H 2 H 0.001 0.0 12.00"
    ang = next(x for x in good.splitlines() if x.startswith("symfunction_short") and
               len(x.split()) == 9)
    f = ang.split()
    cases = [
        ("global_nodes_short", "global_nodes_short 100000000 25", "out of range"),
        ("global_nodes_short", "global_nodes_short 0 25", "out of range"),
        ("global_nodes_short", "global_nodes_short -5 25", "out of range"),
        ("global_nodes_short", "global_nodes_short 1e400 25", "not a finite"),
        ("global_nodes_short", "global_nodes_short nan 25", "not a finite"),
        ("global_nodes_short", "global_nodes_short 25.5 25", "whole number"),
        ("global_hidden_layers_short", "global_hidden_layers_short -1", "out of range"),
        ("global_hidden_layers_short", "global_hidden_layers_short " + "9" * 5000,
         "not an integer"),
        (sf, "symfunction_short H 2 H 0.001 0.0 0.0", "rc must be positive"),
        (sf, "symfunction_short H 2 H 0.001 0.0 -3.0", "rc must be positive"),
        (sf, "symfunction_short H 2 H -0.5 0.0 12.0", "eta must be non-negative"),
        (sf, "symfunction_short H 2 H nan 0.0 12.0", "not a finite"),
        (ang, " ".join([*f[:7], "0.0", *f[8:]]), "zeta must be positive"),
        (ang, " ".join([*f[:7], "-2.0", *f[8:]]), "zeta must be positive"),
        (ang, " ".join([*f[:7], "5000", *f[8:]]), "zeta 5000 is out of range"),
        (ang, " ".join([*f[:6], "0.5", *f[7:]]), "lambda must be"),
        ("conv_energy", "conv_energy 0.0", "conv_energy"),
        ("mean_energy", "mean_energy inf", "not a finite"),
        ("scale_min_short", "scale_min_short nan", "not a finite"),
        ("cutoff_type", "cutoff_type 2 nan", "not a finite"),
        ("elements", "elements H O", None),  # unchanged: control
    ]
    for old, new, match in cases:
        nn.write_text(good)
        line = _edit(nn, old, new)
        if match is None:
            load_potential(water)
            continue
        with pytest.raises(InputFileError, match=match) as info:
            load_potential(water)
        assert info.value.path.endswith("input.nn"), (new, str(info.value))
        assert info.value.line == line, (new, str(info.value))
        assert "\n" not in str(info.value)
    nn.write_text(good.replace("atom_energy", "# atom_energy") + "atom_energy H inf\n")
    with pytest.raises(InputFileError, match="atom_energy"):
        load_potential(water)


# ---------------------------------------------------------------- properties
_NASTY = st.sampled_from([float("nan"), float("inf"), float("-inf"), 1e300, -1e300,
                          10**30, 2**63, -1, -1.0, 0, 0.0, -0.0, "abc", "nan", "inf", "",
                          [], {}, [1.0], {"a": 1}, None, True, 10**400, 0.5, 3, 1e10,
                          -1e10, 1e-300])


def _check_loads_cleanly(load, atoms) -> None:
    """The property: a usable potential with finite predictions, or a one-line HdnnpError."""
    try:
        model = load()
    except HdnnpError as exc:
        assert "\n" not in str(exc)
        return
    _finite_prediction(model, atoms)


class _Files(dict):
    def __repr__(self) -> str:  # keep Hypothesis' failure reports short
        return f"<{len(self)} files: {', '.join(self)}>"


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    d = tmp_path_factory.mktemp("saved")
    single = save_potential(_model(), d / "model.json").read_bytes()
    committee = save_potential(_committee(), d / "committee.json").read_bytes()
    return d, _Files(single=single, committee=committee)


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(which=st.sampled_from(["single", "committee"]), gz=st.booleans(),
       edits=st.lists(st.tuples(st.integers(0, 10**9), st.sampled_from("fidt"),
                                st.binary(min_size=1, max_size=4)), min_size=1, max_size=4))
def test_property_byte_mutations(saved, which, gz, edits):
    d, files = saved
    data = bytearray(gzip.compress(files[which], mtime=0) if gz else files[which])
    for pos, op, blob in edits:
        if not data:
            break
        k = pos % len(data)
        if op == "f":
            data[k] ^= blob[0] or 1
        elif op == "i":
            data[k:k] = blob
        elif op == "d":
            del data[k:k + len(blob)]
        else:
            del data[k:]
    path = d / "mutated.json"
    path.write_bytes(bytes(data))
    _check_loads_cleanly(lambda: load_potential(path), TIO2)


def _paths(node, prefix=()):
    """Every (path, value) of a JSON tree, containers included."""
    yield prefix, node
    items = node.items() if isinstance(node, dict) else enumerate(node) \
        if isinstance(node, list) else ()
    for k, v in items:
        yield from _paths(v, (*prefix, k))


@settings(max_examples=200, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(which=st.sampled_from(["single", "committee"]), data=st.data())
def test_property_json_edits_with_checksum(saved, which, data):
    d, files = saved
    doc = json.loads(files[which])
    for _ in range(data.draw(st.integers(1, 3))):
        entries = [(p, v) for p, v in _paths(doc) if p and p != ("sha256",)]
        path, _ = data.draw(st.sampled_from(entries))
        parent = doc
        for k in path[:-1]:
            parent = parent[k]
        key = path[-1]
        op = data.draw(st.sampled_from(["replace", "replace", "delete", "rename"]))
        if op == "replace":
            parent[key] = copy.deepcopy(data.draw(_NASTY))
        elif op == "delete":
            del parent[key]
        elif isinstance(parent, dict):
            parent[key + "_x"] = parent.pop(key)
        else:
            parent.insert(key, copy.deepcopy(parent[key]))
    huge = any(isinstance(v, int) and not isinstance(v, bool) and abs(v) > 10**300
               for _, v in _paths(doc))
    path = d / "edited.json"
    if huge:  # json cannot write what it cannot read either: a file with a 5000-digit number
        text = json.dumps(doc, default=str).replace(str(10**400), "9" * 5000)
        path.write_text(text)
    else:
        _write(path, doc)
    _check_loads_cleanly(lambda: load_potential(path), TIO2)


@pytest.fixture(scope="module")
def water_files(tmp_path_factory):
    if not (WATER / "input.nn").exists():
        pytest.skip(f"shared n2p2 water potential not found at {WATER}")
    names = ("input.nn", "scaling.data", "weights.001.data", "weights.008.data")
    return tmp_path_factory.mktemp("water"), _Files({n: (WATER / n).read_text() for n in names})


_TOKENS = st.sampled_from(["nan", "inf", "-inf", "1e300", "-1", "0", "-0", "100000000",
                           "9" * 5000, "", "x", "0.5", "1d400", "2.5"])


@settings(max_examples=120, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_property_n2p2_mutations(water_files, data):
    d, files = water_files
    texts = dict(files)
    for _ in range(data.draw(st.integers(1, 3))):
        name = data.draw(st.sampled_from(sorted(texts)))
        lines = texts[name].splitlines()
        body = [i for i, x in enumerate(lines) if x.strip() and not x.lstrip().startswith("#")]
        i = data.draw(st.sampled_from(body))
        op = data.draw(st.sampled_from(["token", "token", "token", "delete", "duplicate"]))
        if op == "delete":
            del lines[i]
        elif op == "duplicate":
            lines.insert(i, lines[i])
        else:
            fields = lines[i].split("#")[0].split()
            j = data.draw(st.integers(0, len(fields) - 1))
            fields[j] = data.draw(_TOKENS)
            lines[i] = " ".join(fields)
        texts[name] = "\n".join(lines) + "\n"
    for name, text in texts.items():
        (d / name).write_text(text)
    _check_loads_cleanly(lambda: load_potential(d), H2O)
