"""The shared n2p2 water potential (H2O_RPBE-D3) run exactly: energies and forces of all
20 configurations against n2p2's own ``nnp-predict`` results, the 1080-atom energy,
extrapolation warnings, and the calculator/CLI entry points."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

import hdnnp
from hdnnp.calculator import ExtrapolationWarning
from hdnnp.io import read_structures
from hdnnp.n2p2 import load_n2p2_potential
from hdnnp.n2p2.data import read_input_data
from hdnnp.neighbours import build_batch
from hdnnp.potential import load_potential
from hdnnp.units import BOHR, HARTREE
from test_n2p2_functions import _single_thread  # noqa: F401 (autouse fixture)

WATER = Path(__file__).parents[1].parent / "shared" / "data" / "n2p2" / "H2O_RPBE-D3"
E_1080_HARTREE = -2.7564547347815904e04


@pytest.fixture(scope="module")
def water_dir() -> Path:
    if not (WATER / "input.nn").exists():
        pytest.skip(f"shared n2p2 water potential not found at {WATER}")
    return WATER


@pytest.fixture(scope="module")
def model(water_dir):
    return load_n2p2_potential(water_dir)


@pytest.fixture(scope="module")
def structures(water_dir):
    return list(read_input_data(water_dir / "input.data", length_unit="bohr",
                                energy_unit="hartree"))


def test_units_come_from_the_input_nn_header(water_dir, model):
    assert model.metadata["units"] == {"length": "bohr", "energy": "hartree"}
    assert model.cutoff == pytest.approx(12.0 * BOHR)
    # SF parameters converted to Å: eta 0.001 Bohr^-2, rc 12 Bohr
    f = model.descriptor.functions[0]
    assert f["type"] == 2 and f["rc"] == pytest.approx(12.0 * BOHR, rel=1e-15)
    assert f["eta"] == pytest.approx(0.001 / BOHR**2, rel=1e-15)


def test_twenty_configurations_match_n2p2(water_dir, model, structures):
    ref = json.loads((water_dir / "reference.json").read_text())
    assert len(structures) == len(ref) == 20
    e_err, f_err = [], []
    for atoms, r in zip(structures, ref):
        n = len(atoms)
        assert r["natoms"] == n
        out = model(build_batch([atoms], model.elements, model.cutoff), forces=True)
        e_err.append(abs(float(out["energy"][0].detach()) - r["energy_nnp"] * HARTREE) / n)
        f_ref = np.asarray(r["forces_nnp"]) * (HARTREE / BOHR)
        f_err.append(np.abs(out["forces"].detach().numpy() - f_ref).max())
    assert max(e_err) <= 1e-6, f"energy error {max(e_err):.3g} eV/atom"
    assert max(f_err) <= 1e-5, f"force error {max(f_err):.3g} eV/Å"


def test_1080_atom_energy_matches_n2p2(water_dir, model):
    (atoms,) = read_input_data(water_dir / "large-1080.data", input_nn=water_dir)
    assert len(atoms) == 1080
    batch = build_batch([atoms], model.elements, model.cutoff)
    with torch.no_grad():
        energy = float(model(batch, forces=False)["energy"][0]) / HARTREE
    assert abs(energy - E_1080_HARTREE) <= 1e-8 * abs(E_1080_HARTREE)


def _independent_warning_count(water_dir, model, atoms) -> int:
    """n2p2's rule: a symmetry function below sf_min or above sf_max of scaling.data."""
    rows = [line.split() for line in (water_dir / "scaling.data").read_text().splitlines()
            if line.strip() and not line.startswith("#")]
    bounds = {}
    for e_index, _sf_index, lo, hi, *_ in rows:
        bounds.setdefault(int(e_index), []).append((float(lo), float(hi)))
    batch = build_batch([atoms], model.elements, model.cutoff)
    with torch.no_grad():
        g = model.descriptor(batch).numpy()
    count = 0
    for k in range(len(model.elements)):  # H (1), O (2): n2p2 element indices
        b = np.array(bounds[k + 1])
        rows_e = g[batch.species.numpy() == k][:, : len(b)]
        count += int(((rows_e < b[:, 0]) | (rows_e > b[:, 1])).sum())
    return count


def test_extrapolation_warnings_are_counted_per_call(water_dir, model, structures):
    calc = hdnnp.Calculator(water_dir, extrapolation="warn")
    atoms = structures[1].copy()
    atoms.calc = calc
    atoms.get_potential_energy()
    assert calc.results["extrapolation_warnings"] == _independent_warning_count(
        water_dir, model, atoms) == 0
    squeezed = structures[1].copy()
    squeezed.set_cell(squeezed.cell.array * 0.8, scale_atoms=True)
    squeezed.calc = calc
    with pytest.warns(ExtrapolationWarning):
        squeezed.get_potential_energy()
    expected = _independent_warning_count(water_dir, model, squeezed)
    assert expected > 0
    assert calc.results["extrapolation_warnings"] == expected
    assert len(calc.results["extrapolating_atoms"]) > 0
    atoms.calc = calc
    atoms.positions[0, 0] += 0.01  # a new call, within range again
    with warnings.catch_warnings():
        warnings.simplefilter("error", ExtrapolationWarning)
        atoms.get_potential_energy()
    assert calc.results["extrapolation_warnings"] == 0
    assert "1 of 3 calls" in calc.extrapolation_summary()


def test_calculator_and_load_potential_accept_the_directory(water_dir, structures):
    model = load_potential(water_dir)
    assert model.metadata["format"] == "n2p2"
    atoms = structures[3].copy()
    atoms.calc = hdnnp.Calculator(str(water_dir))
    e = atoms.get_potential_energy()
    f = atoms.get_forces()
    ref = json.loads((water_dir / "reference.json").read_text())[3]
    assert e == pytest.approx(ref["energy_nnp"] * HARTREE, abs=1e-6 * len(atoms))
    np.testing.assert_allclose(f, np.asarray(ref["forces_nnp"]) * HARTREE / BOHR, atol=1e-5)


def test_input_data_next_to_input_nn_is_read_in_its_units(water_dir, structures):
    auto = read_structures(water_dir / "input.data")  # units from the sibling input.nn
    assert len(auto) == 20
    np.testing.assert_array_equal(auto[5].positions, structures[5].positions)
    assert auto[5].get_potential_energy() == structures[5].get_potential_energy()
    raw = next(read_input_data(water_dir / "input.data", length_unit="angstrom",
                               energy_unit="eV"))
    np.testing.assert_allclose(raw.positions * BOHR, auto[0].positions, rtol=1e-15)


def test_units_are_required_when_input_nn_states_none(water_dir, tmp_path):
    from hdnnp.errors import PotentialFileError

    for name in ("scaling.data", "weights.001.data", "weights.008.data"):
        (tmp_path / name).write_bytes((water_dir / name).read_bytes())
    text = (water_dir / "input.nn").read_text()
    (tmp_path / "input.nn").write_text(text.replace("# Length unit", "# length").replace(
        "# Energy unit", "# energy"))
    with pytest.raises(PotentialFileError, match="unit of this n2p2 potential is unknown"):
        load_n2p2_potential(tmp_path)
    model = load_n2p2_potential(tmp_path, length_unit="bohr", energy_unit="hartree")
    assert model.cutoff == pytest.approx(12.0 * BOHR)
