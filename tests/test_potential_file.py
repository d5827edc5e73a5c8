"""The potential file: exact round trip, and clear errors for damaged files."""

from __future__ import annotations

import gzip
import json

import pytest
import torch

from hdnnp.cli import main
from hdnnp.errors import PotentialFileError
from hdnnp.neighbours import build_batch
from hdnnp.potential import load_potential, save_potential

from conftest import rutile
from test_model import DESCRIPTORS, make_model


@pytest.fixture
def model_file(tmp_path):
    model = make_model(DESCRIPTORS["chebyshev"]())
    model.reference_energies[:] = torch.tensor([-432.503149303, -1604.604515075],
                                               dtype=torch.float64)
    path = tmp_path / "model.json"
    save_potential(model, path, training={"note": "test"})
    return model, path


@pytest.mark.parametrize("suffix", [".json", ".json.gz"])
def test_round_trip_is_bit_identical(tmp_path, suffix):
    for name in ("G2", "G4", "G5", "chebyshev"):
        model = make_model(DESCRIPTORS[name]())
        path = tmp_path / f"m{suffix}"
        save_potential(model, path)
        back = load_potential(path)
        batch = build_batch([rutile()], model.elements, model.cutoff)
        a, b = model(batch), back(batch)
        assert torch.equal(a["energy"], b["energy"])
        assert torch.equal(a["forces"], b["forces"])
        assert back.descriptor.to_config() == model.descriptor.to_config()


def test_file_is_self_describing(model_file):
    _, path = model_file
    doc = json.loads(path.read_text())
    for key in ("format", "version", "units", "elements", "reference_energies", "descriptor",
                "networks", "training", "sha256"):
        assert key in doc
    assert doc["units"] == {"energy": "eV", "length": "angstrom"}
    assert doc["reference_energies"]["Ti"] == -1604.604515075
    net = doc["networks"]["O"]
    assert net["hidden"] == [7, 5] and net["activations"] == ["tanh", "tanh", "linear"]


def _run_info(path, capsys):
    rc = main(["info", str(path)])
    err = capsys.readouterr().err
    return rc, err


def test_truncated_file(model_file, tmp_path, capsys):
    _, path = model_file
    bad = tmp_path / "truncated.json"
    bad.write_bytes(path.read_bytes()[:2000])
    with pytest.raises(PotentialFileError, match="truncated"):
        load_potential(bad)
    rc, err = _run_info(bad, capsys)
    assert rc == 2 and err.count("\n") == 1 and "truncated" in err


def test_garbled_file(model_file, tmp_path, capsys):
    _, path = model_file
    text = path.read_text()
    k = text.index('"weights"') + 40
    digit = next(i for i in range(k, len(text)) if text[i].isdigit() and text[i] != "7")
    bad = tmp_path / "garbled.json"
    bad.write_text(text[:digit] + "7" + text[digit + 1:])
    with pytest.raises(PotentialFileError, match="checksum"):
        load_potential(bad)
    rc, err = _run_info(bad, capsys)
    assert rc == 2 and "damaged" in err and err.count("\n") == 1


def test_wrong_version_and_foreign_file(model_file, tmp_path, capsys):
    _, path = model_file
    doc = json.loads(path.read_text())
    doc["version"] = 99
    bad = tmp_path / "v99.json"
    bad.write_text(json.dumps(doc))
    rc, err = _run_info(bad, capsys)
    assert rc == 2 and "version 99 is not supported" in err and err.count("\n") == 1
    other = tmp_path / "other.json"
    other.write_text('{"hello": 1}')
    rc, err = _run_info(other, capsys)
    assert rc == 2 and "not an hdnnp potential" in err
    gz = tmp_path / "broken.json.gz"
    gz.write_bytes(gzip.compress(path.read_bytes())[:100])
    rc, err = _run_info(gz, capsys)
    assert rc == 2 and err.count("\n") == 1


def test_info_command(model_file, capsys):
    _, path = model_file
    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    assert "network Ti: 24-7-5-1" in out
    assert main(["info", "--json", str(path)]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["networks"]["O"]["architecture"] == [24, 7, 5, 1]
