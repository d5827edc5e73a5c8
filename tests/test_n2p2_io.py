"""n2p2/RuNNer ``input.data``: units, lossless read -> write -> read, and errors that name
file and line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator

from hdnnp.errors import InputFileError
from hdnnp.io import read_structures, write_structures
from hdnnp.n2p2.data import read_input_data, write_input_data
from hdnnp.units import BOHR, HARTREE

WATER = Path(__file__).parents[1].parent / "shared" / "data" / "n2p2" / "H2O_RPBE-D3"

EXAMPLE = """\
begin
comment a periodic  structure, two spaces kept
lattice 10.0 0.0 0.0
lattice 0.5 9.0 0.0
lattice 0.0 0.1 8.0
atom 1.0 2.0 3.0 O -0.8 0.0 0.01 -0.02 0.03
atom 2.5 2.0 3.0 H 0.4 0.5 -0.01 0.02 0.0
atom 1.0 3.1 3.0 H 0.4 0.0 0.0 0.0 -0.03
energy -76.25
charge 0.0
end
begin
atom 0.0 0.0 0.0 Cu 0.0 0.0 1e-3 2.0E-3 -3.5d0
energy -1.5
end
"""


def assert_same(a: Atoms, b: Atoms):
    assert a.get_chemical_symbols() == b.get_chemical_symbols()
    np.testing.assert_array_equal(a.positions, b.positions)
    np.testing.assert_array_equal(a.cell.array, b.cell.array)
    np.testing.assert_array_equal(a.pbc, b.pbc)
    np.testing.assert_array_equal(a.get_initial_charges(), b.get_initial_charges())
    np.testing.assert_array_equal(a.arrays["n2p2_n"], b.arrays["n2p2_n"])
    np.testing.assert_array_equal(a.get_forces(), b.get_forces())
    assert a.get_potential_energy() == b.get_potential_energy()
    assert {k: v for k, v in a.info.items() if k != "source"} == {
        k: v for k, v in b.info.items() if k != "source"}


def test_read_converts_units_and_keeps_everything(tmp_path):
    p = tmp_path / "input.data"
    p.write_text(EXAMPLE.replace("-3.5d0", "-3.5"))
    first, second = read_input_data(p, length_unit="bohr", energy_unit="hartree")
    assert first.get_chemical_formula() == "H2O"
    assert first.pbc.all() and not second.pbc.any()
    np.testing.assert_allclose(first.positions[1], np.array([2.5, 2.0, 3.0]) * BOHR, rtol=1e-15)
    np.testing.assert_allclose(first.cell.array[1], np.array([0.5, 9.0, 0.0]) * BOHR)
    assert first.get_potential_energy() == pytest.approx(-76.25 * HARTREE, rel=1e-15)
    np.testing.assert_allclose(first.get_forces()[0], np.array([0.01, -0.02, 0.03])
                               * HARTREE / BOHR, rtol=1e-15)
    np.testing.assert_array_equal(first.get_initial_charges(), [-0.8, 0.4, 0.4])
    assert first.arrays["n2p2_n"][1] == pytest.approx(0.5 * HARTREE)
    assert first.info["comment"] == "a periodic  structure, two spaces kept"
    assert first.info["charge"] == 0.0
    assert first.info["source"] == f"{p}:0" and second.info["source"] == f"{p}:1"
    assert "charge" not in second.info
    # default units: Å and eV
    (default,) = read_input_data(p, index=1)
    np.testing.assert_array_equal(default.get_forces()[0], [1e-3, 2e-3, -3.5])


@pytest.mark.parametrize("units", [("angstrom", "eV"), ("bohr", "hartree")])
def test_read_write_read_is_lossless(tmp_path, units):
    p = tmp_path / "input.data"
    p.write_text(EXAMPLE)
    first = list(read_input_data(p, *units))
    q = tmp_path / "out" / "copy.data"
    write_input_data(q, first, *units)
    again = list(read_input_data(q, *units))
    assert len(again) == 2
    for a, b in zip(first, again):
        assert_same(a, b)
    # and through the format-dispatching front end
    write_structures(tmp_path / "front.data", first, format="n2p2", length_unit=units[0],
                     energy_unit=units[1])
    for a, b in zip(first, read_structures(tmp_path / "front.data", length_unit=units[0],
                                           energy_unit=units[1])):
        assert_same(a, b)


def test_shared_water_data_round_trips(tmp_path):
    if not (WATER / "input.data").exists():
        pytest.skip(f"shared n2p2 water data not found at {WATER}")
    first = list(read_input_data(WATER / "input.data", input_nn=WATER))
    assert len(first) == 20
    out = tmp_path / "input.data"
    write_input_data(out, first, input_nn=WATER)
    again = list(read_input_data(out, input_nn=WATER))
    for a, b in zip(first, again):
        assert_same(a, b)


def test_written_file_is_n2p2_format(tmp_path):
    atoms = Atoms("OH2", positions=[[0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0]])
    atoms.calc = SinglePointCalculator(atoms, energy=-10.0, forces=np.ones((3, 3)))
    p = tmp_path / "input.data"
    write_input_data(p, [atoms], length_unit="bohr", energy_unit="hartree")
    lines = p.read_text().splitlines()
    assert lines[0] == "begin" and lines[-1] == "end"
    atom = lines[2].split()
    assert atom[0] == "atom" and atom[4] == "H" and len(atom) == 10
    assert float(atom[1]) == pytest.approx(0.96 / BOHR)
    assert float(atom[7]) == pytest.approx(BOHR / HARTREE)
    assert float(lines[-2].split()[1]) == pytest.approx(-10.0 / HARTREE)


@pytest.mark.parametrize("old,new,line,match", [
    ("atom 2.5 2.0 3.0 H 0.4 0.5 -0.01 0.02 0.0", "atom 2.5 2.0 3.0 H 0.4 0.5 -0.01 0.02", 7,
     "9 values"),
    ("atom 2.5 2.0 3.0 H 0.4 0.5 -0.01 0.02 0.0", "atom 2.5 2.O 3.0 H 0.4 0.5 -0.01 0.02 0.0",
     7, "not a number"),
    ("atom 2.5 2.0 3.0 H", "atom 2.5 2.0 3.0 Hx", 7, "unknown chemical element"),
    ("energy -76.25", "energy -76.25 eV", 9, "one number"),
    ("charge 0.0\nend", "charge 0.0\nstress 1\nend", 11, "unknown keyword 'stress'"),
    ("lattice 0.0 0.1 8.0\n", "", 10, "2 lattice lines"),
    ("end\nbegin\natom 0.0", "begin\natom 0.0", 11, "'begin' before the 'end'"),
    ("begin\ncomment", "comment", 1, "expected 'begin'"),
])
def test_malformed_lines_name_file_and_line(tmp_path, old, new, line, match):
    p = tmp_path / "input.data"
    assert old in EXAMPLE
    p.write_text(EXAMPLE.replace(old, new, 1))
    with pytest.raises(InputFileError, match=match) as info:
        list(read_input_data(p))
    assert info.value.line == line
    assert str(info.value).startswith(f"{p}, line {line}:")


def test_missing_end_is_reported(tmp_path):
    p = tmp_path / "input.data"
    p.write_text(EXAMPLE.rstrip().rsplit("\n", 1)[0] + "\n")
    with pytest.raises(InputFileError, match="no 'end'"):
        list(read_input_data(p))
