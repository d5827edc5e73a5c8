"""ænet XSF reading/writing, archives and malformed input."""

from __future__ import annotations

import tarfile

import numpy as np
import pytest
from ase.calculators.singlepoint import SinglePointCalculator

from hdnnp.aenet.xsf import format_xsf, parse_xsf, read_xsf, write_xsf
from hdnnp.cli import main
from hdnnp.errors import InputFileError
from hdnnp.io import read_structures, write_structures

from conftest import TIO2_ARCHIVE, require_shared, rutile, tio2_cluster

CRYSTAL = """# total energy = -19960.66173260 eV

CRYSTAL
PRIMVEC
        5.93400000     0.00000000     0.00000000
        0.00000000     9.29699974     0.00000000
        0.00000000     0.00000000     4.64899994
PRIMCOORD
3 1
Ti      4.42027297     7.02709599     2.24183899     0.07592985    -0.40427630     0.69417754
O       4.35577500     5.60886900     0.86034600     0.58757519    -0.05353964     0.16937123
O       1.46810602     5.53179502     0.85134899    -0.04318915     0.63411964     0.51066781
"""

MOLECULE = """# total energy = -31.5 eV
ATOMS
H   0.0 0.0 0.0   0.1 0.0 0.0
8   0.0 0.0 0.97  -0.1 0.0 0.0
"""


def test_parse_crystal_with_energy_and_forces():
    atoms = parse_xsf(CRYSTAL, "x.xsf")
    assert atoms.get_chemical_symbols() == ["Ti", "O", "O"]
    assert atoms.pbc.all()
    np.testing.assert_allclose(atoms.cell.lengths(), [5.934, 9.29699974, 4.64899994])
    assert atoms.get_potential_energy() == pytest.approx(-19960.66173260)
    np.testing.assert_allclose(atoms.get_forces()[0], [0.07592985, -0.40427630, 0.69417754])


def test_parse_molecule_atomic_numbers():
    atoms = parse_xsf(MOLECULE)
    assert atoms.get_chemical_symbols() == ["H", "O"]
    assert not atoms.pbc.any()
    assert atoms.get_potential_energy() == -31.5


@pytest.mark.parametrize("atoms_factory", [rutile, tio2_cluster])
def test_write_read_round_trip(tmp_path, atoms_factory):
    atoms = atoms_factory()
    rng = np.random.default_rng(0)
    atoms.calc = SinglePointCalculator(atoms, energy=-123.456789, forces=rng.normal(
        size=(len(atoms), 3)))
    path = tmp_path / "s.xsf"
    write_xsf(path, atoms)
    back = read_xsf(path)
    np.testing.assert_allclose(back.positions, atoms.positions, atol=1e-11)
    np.testing.assert_allclose(back.get_forces(), atoms.get_forces(), atol=1e-11)
    assert back.get_potential_energy() == pytest.approx(-123.456789, abs=1e-9)
    assert (back.pbc == atoms.pbc).all()
    if atoms.pbc.any():
        np.testing.assert_allclose(back.cell.array, atoms.cell.array, atol=1e-11)
    assert format_xsf(back) == format_xsf(atoms)


def test_missing_column_names_file_and_line(tmp_path):
    bad = CRYSTAL.replace("0.16937123\n", "\n")
    path = tmp_path / "bad.xsf"
    path.write_text(bad)
    with pytest.raises(InputFileError) as err:
        read_xsf(path)
    msg = str(err.value)
    assert "bad.xsf, line 11" in msg and "6 columns" in msg


def test_cli_reports_malformed_xsf_in_one_line(tmp_path, capsys):
    path = tmp_path / "bad.xsf"
    path.write_text(CRYSTAL.replace("0.16937123\n", "\n"))
    (tmp_path / "model.json").write_text("{}")
    rc = main(["predict", str(tmp_path / "model.json"), str(path)])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.startswith("hdnnp: error:") and err.count("\n") == 1


@pytest.mark.parametrize("text,fragment", [
    (CRYSTAL.replace("3 1", "4 1"), "announces 4 atoms"),
    (CRYSTAL.replace("Ti      4.42", "Xq      4.42"), "unknown element"),
    (CRYSTAL.replace("5.93400000", "five"), "lattice vector"),
    ("", "empty"),
])
def test_other_malformed_input(text, fragment):
    with pytest.raises(InputFileError, match=fragment):
        parse_xsf(text, "f.xsf")


def test_directory_and_archive(tmp_path):
    structs = []
    for k in range(3):
        a = rutile(seed=k)
        a.calc = SinglePointCalculator(a, energy=-10.0 * k, forces=np.zeros((len(a), 3)))
        structs.append(a)
    write_structures(tmp_path / "dir", structs)
    back = read_structures(tmp_path / "dir")
    assert [b.get_potential_energy() for b in back] == [0.0, -10.0, -20.0]
    with tarfile.open(tmp_path / "set.tar.gz", "w:gz") as tf:
        tf.add(tmp_path / "dir", arcname="xsf")
    back = read_structures(tmp_path / "set.tar.gz")
    assert len(back) == 3 and "set.tar.gz:xsf/structure0002.xsf" in back[1].info["source"]
    write_structures(tmp_path / "all.extxyz", structs)
    back = read_structures(tmp_path / "all.extxyz")
    assert back[2].get_potential_energy() == -20.0


def test_reads_shared_aenet_archive():
    archive = require_shared(TIO2_ARCHIVE)
    structs = read_structures(archive)
    assert len(structs) == 7815
    assert sum(len(s) for s in structs) == 165229
    assert structs[0].get_potential_energy() == pytest.approx(-19960.66173260)
