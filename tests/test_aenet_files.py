"""ænet ``*.nn`` files: the binary and text forms, damaged files, what cannot be exported,
and a property test of the reader (issue 12; ``docs/reliability.md``).

These tests need no ænet build: the files are written by hdnnp's own exporter (whose
agreement with ænet's ``predict.x`` is checked in ``test_aenet_predict.py``)."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from hdnnp.aenet import nnfile
from hdnnp.aenet.nnfile import read_nn, to_binary, to_text
from hdnnp.aenet.potential import export_aenet_potential, load_aenet_potential, model_to_aenet
from hdnnp.calculator import Calculator
from hdnnp.cli import main
from hdnnp.descriptors import Chebyshev, SymmetryFunctions, default_behler_functions
from hdnnp.errors import HdnnpError, PotentialFileError
from hdnnp.model import NeuralNetworkPotential
from hdnnp.potential import load_potential, save_potential

from conftest import TIO2_REFERENCE_ENERGIES, rutile

SPECIES = ["Ti", "O"]


def small_model(kind: str = "chebyshev", seed: int = 0) -> NeuralNetworkPotential:
    torch.manual_seed(seed)
    if kind == "chebyshev":
        d = Chebyshev(SPECIES, 4.5, 4, 3.5, 2)
    else:
        d = SymmetryFunctions(SPECIES, default_behler_functions(SPECIES, 4.5, 2, 2))
    model = NeuralNetworkPotential(d, hidden=(4, 3), activation=["tanh", "twist"],
                                   reference_energies=TIO2_REFERENCE_ENERGIES)
    with torch.no_grad():
        for net in model.networks.values():
            for layer in net.layers:
                layer.weight.normal_(0.0, 0.5)
                layer.bias.normal_(0.0, 0.2)
            net.input_shift.uniform_(0.0, 2.0)
            net.input_scale.uniform_(0.3, 1.5)
            net.output_scale.fill_(0.4)
            net.output_shift.fill_(-1.0)
    return model


def _energy(calc, atoms) -> tuple[float, np.ndarray]:
    a = atoms.copy()
    a.calc = calc
    return a.get_potential_energy(), a.get_forces()


@pytest.mark.parametrize("kind", ["chebyshev", "behler"])
def test_binary_and_text_forms_hold_the_same_bits(kind, tmp_path, monkeypatch):
    files = model_to_aenet(small_model(kind))
    for el, f in files.items():
        raw = to_binary(f)
        (tmp_path / f"{el}.nn").write_bytes(raw)
        (tmp_path / f"{el}.nn.ascii").write_text(to_text(f))
        assert to_binary(read_nn(tmp_path / f"{el}.nn")) == raw
        assert to_binary(read_nn(tmp_path / f"{el}.nn.ascii")) == raw
    # aenet-PyTorch's layout: every array on one line (its writer's "{:24.17f}" numbers
    # keep 17 decimals only, so that form is read to within them)
    for fmt, exact in ((nnfile._es, True), (lambda x: f" {x:24.17f}" if isinstance(
            x, float | np.floating) else f" {x:17d}", False)):
        def one_line(values, _fmt, per_line=4, fmt=fmt):
            return ["".join((fmt if _fmt is nnfile._es else _fmt)(v) for v in values)]

        monkeypatch.setattr(nnfile, "_rows", one_line)
        for el, f in files.items():
            (tmp_path / f"{el}.pt.nn.ascii").write_text(nnfile.to_text(f))
            back = read_nn(tmp_path / f"{el}.pt.nn.ascii")
            if exact:
                assert to_binary(back) == to_binary(f)
            else:
                assert np.allclose(back.network.W, f.network.W, rtol=0, atol=1e-16)


def test_a_directory_of_nn_files_is_a_potential(tmp_path):
    model = small_model()
    export_aenet_potential(model, tmp_path / "pot")
    atoms = rutile()
    e0, f0 = _energy(Calculator(model, extrapolation="ignore"), atoms)
    for source in (tmp_path / "pot", {"Ti": tmp_path / "pot" / "Ti.nn",
                                      "O": tmp_path / "pot" / "O.nn"}):
        e, f = _energy(Calculator(source, extrapolation="ignore"), atoms)
        assert abs(e - e0) < 1e-9 and np.abs(f - f0).max() < 1e-9
    assert load_potential(tmp_path / "pot").elements == ("Ti", "O")
    # hdnnp export of an ænet potential (ænet in, ænet out)
    assert main(["export", str(tmp_path / "pot"), str(tmp_path / "again"), "--format",
                 "aenet-ascii"]) == 0
    e, _ = _energy(Calculator(tmp_path / "again", extrapolation="ignore"), atoms)
    assert abs(e - e0) < 1e-9


def _one_line(exc: BaseException, name: str) -> None:
    msg = str(exc)
    assert "\n" not in msg and name in msg, msg


def test_damaged_files_are_one_line_errors_naming_the_file(tmp_path):
    f = model_to_aenet(small_model())["Ti"]
    raw = to_binary(f)
    path = tmp_path / "Ti.nn"
    # truncated at every record boundary and inside records
    cuts = {0, 3, 4, 7, len(raw) - 1, len(raw) - 5}
    pos = 0
    while pos < len(raw):
        (n,) = struct.unpack("<i", raw[pos:pos + 4])
        cuts.update({pos, pos + 4 + n // 2, pos + 8 + n})
        pos += n + 8
    for cut in sorted(cuts - {len(raw)}):
        path.write_bytes(raw[:cut])
        with pytest.raises(PotentialFileError) as err:
            read_nn(path)
        _one_line(err.value, "Ti.nn")
    # a wrong record marker, extra bytes, NaN weights
    bad = bytearray(raw)
    bad[4 + 4 + 4 + 4 + 4 + 8] = 9  # the nnodes_max record's trailing marker
    for data in (bytes(bad), raw + b"\x00", raw[:40] + struct.pack("<d", np.nan) + raw[48:]):
        path.write_bytes(data)
        with pytest.raises(PotentialFileError) as err:
            read_nn(path)
        _one_line(err.value, "Ti.nn")
    # text: a truncated file, a word for a number, a count that does not fit
    text = to_text(f)
    lines = text.splitlines()
    tpath = tmp_path / "Ti.nn.ascii"
    for variant in ("\n".join(lines[:len(lines) // 2]), text.replace("E-01", "X-01", 1),
                    text.replace(lines[2], "      999999", 1), "", "\x00\x01garbage"):
        tpath.write_text(variant)
        with pytest.raises(PotentialFileError) as err:
            read_nn(tpath)
        _one_line(err.value, "Ti.nn.ascii")
    # through the command line: one line, exit status 2
    path.write_bytes(raw[:100])
    assert main(["predict", "--aenet", f"Ti={path}", "x.xsf"]) == 2


def test_inconsistent_sets_of_files_are_refused(tmp_path):
    export_aenet_potential(small_model(), tmp_path / "a")
    export_aenet_potential(small_model(), tmp_path / "b", ascii=True)
    with pytest.raises(PotentialFileError, match="no ænet potential file for O"):
        load_aenet_potential({"Ti": tmp_path / "a" / "Ti.nn"})
    with pytest.raises(PotentialFileError, match="is the potential of O, given for Ti"):
        load_aenet_potential({"Ti": tmp_path / "a" / "O.nn", "O": tmp_path / "a" / "O.nn"})
    (tmp_path / "b" / "Ti.nn").write_bytes((tmp_path / "a" / "Ti.nn").read_bytes())
    with pytest.raises(PotentialFileError, match="a second potential for Ti"):
        load_aenet_potential(tmp_path / "b")
    # another Chebyshev set-up for O than for Ti
    other = Chebyshev(SPECIES, 4.5, 5, 3.5, 2)
    export_aenet_potential(NeuralNetworkPotential(other), tmp_path / "c")
    with pytest.raises(PotentialFileError, match="Chebyshev parameters"):
        load_aenet_potential({"Ti": tmp_path / "a" / "Ti.nn", "O": tmp_path / "c" / "O.nn"})
    (tmp_path / "empty").mkdir()
    with pytest.raises(PotentialFileError, match="no ænet potential files"):
        load_aenet_potential(tmp_path / "empty")


@pytest.mark.parametrize("change, what", [
    ("committee", "committee"),
    ("softplus", "activation 'softplus'"),
    ("cutoff", "cutoff type 2"),
    ("type12", "sf12"),
    ("shifted_g5", "no shift rs"),
    ("spins", "type spins"),
    ("angular_rc", "angular cutoff"),
])
def test_what_aenet_cannot_express_is_refused_in_one_line(change, what, tmp_path):
    model = small_model("behler" if change in ("cutoff", "type12", "shifted_g5") else
                        "chebyshev")
    if change == "committee":
        model = NeuralNetworkPotential.committee([model, small_model(seed=1)])
    elif change == "softplus":
        model = NeuralNetworkPotential(model.descriptor, hidden=(3,), activation="softplus")
    elif change == "cutoff":
        model = NeuralNetworkPotential(SymmetryFunctions(
            SPECIES, model.descriptor.functions, cutoff_type=2))
    elif change == "type12":
        model = NeuralNetworkPotential(SymmetryFunctions(SPECIES, [
            {"type": 12, "center": "Ti", "eta": 0.1, "rs": 0.0, "rc": 4.0},
            {"type": 2, "center": "O", "neighbours": ["Ti"], "eta": 0.1, "rs": 0.0,
             "rc": 4.0}]))
    elif change == "shifted_g5":
        model = NeuralNetworkPotential(SymmetryFunctions(SPECIES, [
            {"type": 9, "center": "Ti", "neighbours": ["O", "O"], "eta": 0.1, "rs": 1.0,
             "lambda": 1, "zeta": 2, "rc": 4.0},
            {"type": 2, "center": "O", "neighbours": ["Ti"], "eta": 0.1, "rs": 0.0,
             "rc": 4.0}]))
    elif change == "spins":
        model = NeuralNetworkPotential(Chebyshev(SPECIES, 4.5, 4, 3.5, 2, spins=[1.0, 2.0]))
    elif change == "angular_rc":
        model = NeuralNetworkPotential(Chebyshev(SPECIES, 4.0, 4, 4.5, 2))
    with pytest.raises(HdnnpError) as err:
        export_aenet_potential(model, tmp_path / "out")
    _one_line(err.value, what)
    assert "not expressible in ænet" in str(err.value)
    assert not (tmp_path / "out").exists()
    save_potential(model, tmp_path / "model.json")
    assert main(["export", str(tmp_path / "model.json"), str(tmp_path / "out2"),
                 "--format", "aenet"]) == 2


# ------------------------------------------------------------------ property test

EXAMPLES = int(os.environ.get("HDNNP_FUZZ_EXAMPLES", "0")) or None
FUZZ = settings(max_examples=EXAMPLES or 80, deadline=None, derandomize=EXAMPLES is None,
                database=None,
                phases=tuple(Phase) if EXAMPLES else (Phase.explicit, Phase.generate),
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
_SEED_FILES = {kind: model_to_aenet(small_model(kind)) for kind in ("chebyshev", "behler")}
SPECIAL = [b"nan", b"inf", b"-1", b"0", b"1e300", b"99999999", b"1.0D+400", b"", b"T", b"x"]


def _mutate(data: bytes, ops: list) -> bytes:
    out = bytearray(data)
    for kind, pos, value in ops:
        if not out:
            break
        p = pos % len(out)
        if kind == "flip":
            out[p] ^= 1 << (value % 8)
        elif kind == "truncate":
            del out[p:]
        elif kind == "insert":
            out[p:p] = SPECIAL[value % len(SPECIAL)]
        elif kind == "number":  # replace the token around p (text) / 8 bytes (binary)
            if out[:1] == b"\x04":
                out[p:p + 8] = struct.pack("<d", [np.nan, np.inf, 1e300, -1e-300, 0.0,
                                                  4e6][value % 6])
            else:
                a = out.rfind(b" ", 0, p) + 1
                b = out.find(b" ", p)
                b = len(out) if b < 0 else b
                out[a:b] = SPECIAL[value % len(SPECIAL)]
        elif kind == "int32":
            out[p:p + 4] = struct.pack("<i", [0, -1, 1, 3, 2**31 - 1, 10**6][value % 6])
    return bytes(out)


op = st.tuples(st.sampled_from(["flip", "truncate", "insert", "number", "int32"]),
               st.integers(0, 10**6), st.integers(0, 100))


@FUZZ
@given(kind=st.sampled_from(["chebyshev", "behler"]), element=st.sampled_from(SPECIES),
       text=st.booleans(), ops=st.lists(op, min_size=1, max_size=3))
def test_mutated_nn_files_load_or_fail_in_one_line(kind, element, text, ops, tmp_path_factory):
    """A mutated file is read into a potential whose energy and forces are finite, or
    refused with a one-line HdnnpError naming a file; never another exception."""
    folder = tmp_path_factory.mktemp("nn")
    for el, f in _SEED_FILES[kind].items():
        data = to_text(f).encode() if text else to_binary(f)
        if el == element:
            data = _mutate(data, ops)
        (folder / f"{el}.nn").write_bytes(data)
    try:
        model = load_aenet_potential(folder)
        energy, forces = _energy(Calculator(model, extrapolation="ignore"), rutile())
    except HdnnpError as exc:
        msg = str(exc)
        assert ("\n" not in msg and ".nn" in msg) or "non-finite" in msg, msg
        return
    assert np.isfinite(energy) and np.isfinite(forces).all()


@pytest.mark.parametrize("kind", ["chebyshev", "behler"])
def test_one_species_text_form_rebuilds_the_second_species_row(kind, tmp_path):
    """ænet writes ``sfenv`` with ``nenv`` rows in text: one row for one species."""
    d = (Chebyshev(["O"], 4.5, 4, 3.5, 2) if kind == "chebyshev" else
         SymmetryFunctions(["O"], default_behler_functions(["O"], 4.5, 2, 2)))
    f = model_to_aenet(NeuralNetworkPotential(d, hidden=(3,)))["O"]
    lines = to_text(f).splitlines()
    net, stp = f.network, f.setup
    up = -(-net.nlayers // 4)
    start = (4 + 3 * up + -(-(net.nlayers - 1) // 4) + -(-net.iw[-1] // 4) + 8
             + len(stp.envtypes) + -(-stp.nsf // 4) + stp.nsf)
    both = nnfile._rows(stp.sfenv.reshape(-1), nnfile._i17)   # what hdnnp writes
    assert lines[start:start + len(both)] == both
    one = nnfile._rows(stp.sfenv[:, 0], nnfile._i17)          # ænet's save_Setup_ASCII
    for variant in (lines, lines[:start] + one + lines[start + len(both):]):
        (tmp_path / "O.nn.ascii").write_text("\n".join(variant) + "\n")
        assert to_binary(read_nn(tmp_path / "O.nn.ascii")) == to_binary(f)
    if kind == "behler":  # angular functions name the species twice, radial ones once
        assert sorted({tuple(r) for r in f.setup.sfenv}) == [(1, 0), (1, 1)]


def test_fuzz_harness_target_runs_clean(tmp_path):
    """A short run of the harness's ``aenet-nn`` target (the long runs are by hand:
    ``docs/aenet.md``): no crashes, hangs or accepted garbage, every error names a file."""
    harness = Path(__file__).resolve().parent / "fuzz" / "harness.py"
    out = tmp_path / "fuzz.json"
    proc = subprocess.run([sys.executable, str(harness), "--target", "aenet-nn",
                           "--per-target", "25", "--workers", "1", "--timeout", "20",
                           "--seed", "3", "--quiet", "--out", str(out)],
                          capture_output=True, text=True, timeout=180)
    assert out.exists(), proc.stderr[-3000:]
    s = json.loads(out.read_text())["targets"]["aenet-nn"]
    assert s["inputs"] == 25 and s["garbage"] + s["crash"] + s["hang"] == 0, s["failures"]
    assert s["unnamed_errors"] == 0 and s["clean"] > 0
    assert proc.returncode == 0
