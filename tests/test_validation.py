"""One validation layer for structures (issue 10, item 2): readers, Dataset, calculator and
neighbour list refuse bad input with a one-line HdnnpError instead of a signal, a
PyTorch error or a silent NaN."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator
from ase.neighborlist import primitive_neighbor_list
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import hdnnp
from hdnnp.data import Dataset
from hdnnp.errors import HdnnpError, InputFileError
from hdnnp.io import parse_xsf, read_structures
from hdnnp.n2p2.data import read_input_data
from hdnnp.neighbours import neighbour_pairs
from hdnnp.potential import save_potential
from hdnnp.validation import check_cutoff, check_structure

from conftest import rutile
from test_model import DESCRIPTORS, make_model

REFERENCE = {"O": -432.5, "Ti": -1604.6}

XSF = """\
# total energy = -2037.5 eV

CRYSTAL
PRIMVEC
   4.0 0.0 0.0
   0.0 4.0 0.0
   0.0 0.0 4.0
PRIMCOORD
2 1
Ti  0.0 0.0 0.0   0.1 0.0 0.0
O   2.0 2.0 2.0  -0.1 0.0 0.0
"""

INPUT_DATA = """\
begin
comment two atoms
lattice 4.0 0.0 0.0
lattice 0.0 4.0 0.0
lattice 0.0 0.0 4.0
atom 0.0 0.0 0.0 Ti 0.0 0.0 0.1 0.0 0.0
atom 2.0 2.0 2.0 O 0.0 0.0 -0.1 0.0 0.0
energy -2037.5
charge 0.0
end
"""


@pytest.fixture(scope="module")
def model():
    m = make_model(DESCRIPTORS["chebyshev"]())
    m.reference_energies[:] = torch.tensor([REFERENCE["O"], REFERENCE["Ti"]],
                                           dtype=torch.float64)
    return m


# ------------------------------------------------------------------ neighbour list


def test_bad_cells_and_far_atoms_give_errors_not_sigfpe():
    """vesin died with SIGFPE (exit 136) on these; run in a child so a crash fails the test
    instead of killing pytest."""
    code = textwrap.dedent("""
        import numpy as np
        from ase import Atoms
        from hdnnp.errors import HdnnpError
        from hdnnp.neighbours import neighbour_pairs
        cases = [Atoms("H2", positions=[[0, 0, 0], [1, 0, 0]], cell=np.diag([v, 5, 5]),
                       pbc=True) for v in (np.nan, np.inf, 1e300)]
        cases.append(Atoms("H2", positions=[[0, 0, 0], [1e6, 0, 0]]))
        for atoms in cases:
            try:
                neighbour_pairs(atoms, 5.0)
                print("accepted")
            except HdnnpError as exc:
                print("refused:", exc)
        # shapes vesin's grid cannot subdivide, within the coordinate limit: still pairs
        for d, rc in ((1e5, 0.2), (9e4, 0.5)):
            i, j, s = neighbour_pairs(Atoms("H3", positions=[[0, 0, 0], [0.75 * rc, 0, 0],
                                                             [d, 0, 0]]), rc)
            print("pairs", len(i))
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, (proc.returncode, proc.stderr[-2000:])
    lines = proc.stdout.splitlines()
    assert len(lines) == 6
    assert all(line.startswith("refused:") for line in lines[:4]), lines
    assert "cell vector 1" in lines[0] and "atom 2 has position" in lines[3]
    assert lines[4:] == ["pairs 2", "pairs 2"]


def _pair_set(i, j, s):
    return sorted(zip(np.asarray(i).tolist(), np.asarray(j).tolist(),
                      map(tuple, np.asarray(s).tolist())))


@pytest.mark.parametrize("seed", range(6))
def test_image_pair_fallback_matches_ase(seed):
    """The k-d tree fallback (for cells vesin's grid cannot take) against ASE's list on
    skewed cells, partial periodicity and atoms outside the cell."""
    from hdnnp.neighbours import _image_pairs
    from hdnnp.validation import effective_cell

    rng = np.random.default_rng(seed)
    cell = np.diag(rng.uniform(2.0, 6.0, 3)) + rng.uniform(-1.0, 1.0, (3, 3))
    pbc = rng.random(3) < 0.7
    pos = rng.uniform(-3.0, 9.0, (7, 3))
    rc = float(rng.uniform(1.5, 5.0))
    ours = _image_pairs(pos, effective_cell(cell, pbc), pbc, rc)
    ref = primitive_neighbor_list("ijS", pbc, cell, pos, rc, self_interaction=False)
    assert _pair_set(*ours) == _pair_set(*ref)


def test_stretched_periodic_cells_do_not_hang():
    """These took 8 s to minutes (and one GBs) in the neighbour list's old fallback; run in a
    child with a time limit so a hang fails the test instead of stalling the suite."""
    code = textwrap.dedent("""
        import numpy as np
        from ase import Atoms
        from hdnnp.neighbours import neighbour_pairs
        thin = [[99999, 0, 0], [0, 0.2, 0], [0, 0, 0.2]]
        cases = [
            (Atoms("O4", positions=[[0, 0, 0], [1.5, .1, .1], [3, .1, .1], [5, .1, .1]],
                   cell=thin, pbc=True), 0.5),
            (Atoms("O2", positions=[[0, 0, 0], [1.5, .1, .1]], cell=np.diag([1e5, 1e5, .2]),
                   pbc=True), 0.5),
            (Atoms("O19", positions=np.random.default_rng(0).uniform(0, 3, (19, 3)),
                   cell=np.diag([3, 3, 1e5]), pbc=[False, True, True]), 5.7),
        ]
        for atoms, rc in cases:
            i, j, s = neighbour_pairs(atoms, rc)
            d = np.linalg.norm(atoms.positions[j] + s @ atoms.cell.array
                               - atoms.positions[i], axis=1)
            print(len(i), bool((d < rc).all()))
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.split("\n")[:3]
    assert all(line.endswith("True") and int(line.split()[0]) > 0 for line in lines), lines


@pytest.mark.parametrize("rc", [float("nan"), 0.0, -1.0, 1e-4, 0.09, 1e4, "abc"])
def test_absurd_cutoffs_are_refused(rc):
    with pytest.raises(HdnnpError, match="cutoff"):
        check_cutoff(rc)
    with pytest.raises(HdnnpError, match="cutoff"):
        neighbour_pairs(rutile(), rc)


def test_neighbour_list_matches_ase_for_partial_periodicity_and_outliers():
    rng = np.random.default_rng(3)
    for trial in range(30):
        cell = np.diag(rng.uniform(3, 8, 3)) + rng.normal(size=(3, 3)) * 0.5
        pbc = rng.integers(0, 2, 3).astype(bool)
        pos = rng.uniform(0, 1, (6, 3)) @ cell
        pos[0] += rng.normal(size=3) * 10 ** rng.uniform(1, 4.5)
        rc = float(rng.uniform(0.5, 4.0))
        i, j, s = neighbour_pairs(Atoms("H6", positions=pos, cell=cell, pbc=pbc), rc)
        ia, ja, sa = primitive_neighbor_list("ijS", pbc, cell, pos, rc, self_interaction=False)
        assert sorted(zip(i.tolist(), j.tolist(), map(tuple, s.tolist()))) == sorted(
            zip(ia.tolist(), ja.tolist(), map(tuple, sa.tolist()))), trial


# ------------------------------------------------------------------ calculator


@pytest.mark.parametrize("cell", [[np.nan, 5, 5], [np.inf, 5, 5], [1e300, 5, 5]])
def test_calculator_refuses_non_finite_and_absurd_cells(model, cell):
    atoms = Atoms("TiO", positions=[[0, 0, 0], [1.8, 0, 0]], cell=np.diag(cell), pbc=True)
    atoms.calc = hdnnp.Calculator(model, extrapolation="ignore")
    with pytest.raises(HdnnpError, match="cell vector 1"):
        atoms.get_potential_energy()


def test_calculator_refuses_an_atom_far_away(model):
    atoms = Atoms("TiO", positions=[[0, 0, 0], [1e6, 0, 0]])
    atoms.calc = hdnnp.Calculator(model, extrapolation="ignore")
    with pytest.raises(HdnnpError, match="atom 2 has position"):
        atoms.get_potential_energy()


@pytest.mark.parametrize("atoms", [
    Atoms(),
    Atoms(cell=[5, 5, 5], pbc=True),
    Atoms("Ti", positions=[[1, 1, 1]], cell=[20, 20, 20], pbc=True),
    Atoms("O"),
    Atoms("TiO2", positions=[[0, 0, 0], [30, 0, 0], [0, 30, 0]]),
], ids=["empty", "empty-box", "one-in-box", "one-atom", "far-apart"])
def test_structures_without_pairs_give_reference_energies(model, atoms):
    atoms = atoms.copy()
    atoms.calc = hdnnp.Calculator(model, extrapolation="error")
    expected = sum(REFERENCE[s] for s in atoms.get_chemical_symbols())
    assert atoms.get_potential_energy() == pytest.approx(expected, abs=1e-12)
    np.testing.assert_array_equal(atoms.get_forces(), np.zeros((len(atoms), 3)))
    np.testing.assert_allclose(atoms.get_potential_energies().sum(), expected, atol=1e-12)
    if atoms.pbc.all():
        np.testing.assert_array_equal(atoms.get_stress(), np.zeros(6))


@pytest.mark.parametrize("atoms", [
    Atoms("TiO", positions=[[0, 0, 0], [0, 0, 0]]),
    Atoms("TiO", positions=[[0, 0, 0], [4.0, 0.02, 0]], cell=[4, 4, 4], pbc=True),
], ids=["same-place", "periodic-image"])
def test_calculator_refuses_atoms_at_distance_zero(model, atoms):
    atoms.calc = hdnnp.Calculator(model, extrapolation="ignore")
    with pytest.raises(HdnnpError, match=r"atoms 1 and 2 are .*closer than 0\.1"):
        atoms.get_potential_energy()


def test_calculator_refuses_a_non_finite_energy(model):
    broken = make_model(DESCRIPTORS["chebyshev"]())
    with torch.no_grad():
        broken.networks["O"].output_scale.fill_(float("nan"))
    atoms = rutile()
    atoms.calc = hdnnp.Calculator(broken, extrapolation="ignore")
    with pytest.raises(HdnnpError, match="non-finite"):
        atoms.get_potential_energy()


def test_predict_agrees_with_the_calculator_on_structures_without_pairs(model):
    """predict_structures gave reference + network(0) for isolated atoms, the calculator
    the reference energy: the two paths of one potential disagreed by ≈ 1 eV/atom."""
    from hdnnp.predict import predict_structures

    structs = [rutile(), Atoms("O", cell=[20] * 3), Atoms(),
               Atoms("TiO2", positions=[[0, 0, 0], [30, 0, 0], [0, 30, 0]])]
    pred = predict_structures(model, structs)
    for k, atoms in enumerate(structs):
        atoms = atoms.copy()
        atoms.calc = hdnnp.Calculator(model, extrapolation="ignore")
        assert pred["energy"][k] == pytest.approx(atoms.get_potential_energy(), abs=1e-9)
    np.testing.assert_array_equal(pred["forces"][len(structs[0]):], 0.0)
    assert pred["energy"][3] == pytest.approx(REFERENCE["Ti"] + 2 * REFERENCE["O"], abs=1e-12)


def test_predict_refuses_duplicate_atoms_and_non_finite_output(model):
    from hdnnp.predict import predict_structures

    with pytest.raises(HdnnpError, match=r"atoms 1 and 2 are 0 Å apart"):
        predict_structures(model, [Atoms("TiO", positions=[[0, 0, 0], [0, 0, 0]])])
    broken = make_model(DESCRIPTORS["chebyshev"]())
    with torch.no_grad():
        broken.networks["O"].output_scale.fill_(float("nan"))
    with pytest.raises(HdnnpError, match="non-finite"):
        predict_structures(broken, [rutile()])


# ------------------------------------------------------------------ hdnnp predict


def test_predict_on_an_xsf_with_a_nan_cell_gives_one_line(model, tmp_path):
    save_potential(model, tmp_path / "model.json")
    (tmp_path / "bad.xsf").write_text(XSF.replace("   4.0 0.0 0.0", "   nan 0.0 0.0"))
    code = "import sys; from hdnnp.cli import main; sys.exit(main())"
    proc = subprocess.run([sys.executable, "-c", code, "predict", str(tmp_path / "model.json"),
                           str(tmp_path / "bad.xsf"), "--quiet"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode > 0, (proc.returncode, proc.stderr[-2000:])
    err = proc.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("hdnnp: error:"), proc.stderr[-2000:]
    assert "bad.xsf, line 5" in err[0] and "finite" in err[0]


# ------------------------------------------------------------------ XSF


@pytest.mark.parametrize("text, line, message", [
    (XSF.replace("-2037.5", "nan"), 1, "finite"),
    (XSF.replace("-2037.5", "inf"), 1, "finite"),
    ("# total energy = 1.0 eV\n" + XSF, 2, "second total energy"),
    (XSF.replace("2 1\n", "0 1\n"), 9, "0 atoms"),
    (XSF.replace("0.0 0.0 0.0   0.1", "nan 0.0 0.0   0.1"), 10, "coordinate"),
    (XSF.replace("0.0 0.0 0.0   0.1", "0.0 0.0 1e400   0.1"), 10, "coordinate"),
    (XSF.replace("0.0 0.0 0.0   0.1", "0.0 0.0 1e6   0.1"), 10, "out of range"),
    (XSF.replace("-0.1 0.0 0.0", "-0.1 inf 0.0"), 11, "force"),
    (XSF.replace("   0.0 4.0 0.0", "   0.0 1e300 0.0"), 6, "lattice"),
    (XSF.replace("2 1\n", "x 1\n"), 9, "number of atoms"),
    (XSF + "CONVCOORD\nabc\n", 13, "number of atoms"),
    (XSF + "CONVCOORD\n5\n", 13, "CONVCOORD announces 5"),
    (XSF + "CONVCOORD\n", 12, "count"),
    (XSF + "PRIMCOORD\n2 1\n", 12, "second block"),
])
def test_xsf_reader_refuses_bad_values_naming_the_line(text, line, message):
    with pytest.raises(InputFileError, match=message) as info:
        parse_xsf(text, "bad.xsf")
    assert info.value.line == line, str(info.value)


def test_xsf_without_atoms_and_with_duplicate_atoms_are_refused():
    with pytest.raises(InputFileError, match="no atoms"):
        parse_xsf("# total energy = 1.0 eV\nATOMS\n", "bad.xsf")
    dup = XSF.replace("O   2.0 2.0 2.0", "O   0.0 0.0 0.0")
    with pytest.raises(HdnnpError, match="atoms 1 and 2 are 0 Å apart"):
        parse_xsf(dup, "bad.xsf")
    image = XSF.replace("O   2.0 2.0 2.0", "O   3.95 0.0 0.0")  # 0.05 Å from Ti's image
    with pytest.raises(HdnnpError, match=r"0\.05 Å apart"):
        parse_xsf(image, "bad.xsf")
    flat = XSF.replace("   0.0 0.0 4.0", "   4.0 4.0 0.0")
    with pytest.raises(HdnnpError, match="linearly independent"):
        parse_xsf(flat, "bad.xsf")


# ------------------------------------------------------------------ n2p2 input.data


@pytest.mark.parametrize("old, new, line, message", [
    ("energy -2037.5", "energy nan", 8, "finite"),
    ("0.1 0.0 0.0\n", "0.1 inf 0.0\n", 6, "finite"),
    ("lattice 4.0 0.0 0.0", "lattice nan 0.0 0.0", 3, "finite"),
    ("lattice 4.0 0.0 0.0", "lattice 1e300 0.0 0.0", 3, "out of range"),
    ("energy -2037.5\n", "energy -2037.5\nenergy 1.0\n", 9, "second energy"),
    ("atom 2.0 2.0 2.0", "atom 0.0 0.0 0.0", 1, "apart"),
])
def test_input_data_refuses_bad_values_naming_the_line(tmp_path, old, new, line, message):
    path = tmp_path / "input.data"
    path.write_text(INPUT_DATA.replace(old, new))
    with pytest.raises(InputFileError, match=message) as info:
        list(read_input_data(path))
    assert info.value.line == line, str(info.value)


def test_input_data_begin_end_without_atoms_is_refused(tmp_path):
    path = tmp_path / "input.data"
    path.write_text(INPUT_DATA + "begin\nend\n")
    with pytest.raises(InputFileError, match="without atoms") as info:
        list(read_input_data(path))
    assert info.value.line == 12


# ------------------------------------------------------------------ other readers, Dataset


@pytest.mark.parametrize("text,line,message", [
    ("100000000\nProperties=species:S:1:pos:R:3\nO 0 0 0\n", 1, "announces 100000000 atoms"),
    ("2147483648\nProperties=species:S:1:pos:R:3\nO 0 0 0\n", 1, "announces 2147483648"),
    ("1\nProperties=species:S:1:pos:R:3:forces:R:100000000\nO 0 0 0 1 2 3\n", 2,
     "100000000 columns"),
    ("1\n\nO 0 0 0\nx\n", 4, "number of atoms"),
], ids=["count-1e8", "count-2^31", "wide-property", "garbage-count"])
def test_extxyz_headers_are_checked_before_ase_allocates(tmp_path, text, line, message):
    """ASE allocated what the header announced: 100 s for 10⁸ atoms, forever for 2³¹."""
    path = tmp_path / "bad.extxyz"
    path.write_text(text)
    with pytest.raises(InputFileError, match=message) as info:
        read_structures(path)
    assert f"line {line}" in str(info.value) and "\n" not in str(info.value)


def test_fuzz_run_findings_are_one_line_errors(tmp_path, monkeypatch):
    """Found by the 51,000-input harness run: a 5000-digit atomic number in an XSF file
    (ValueError), an n2p2 'n' column finite in hartree but not in eV (NaN accepted), and
    an atom with tens of thousands of neighbours (a 3.8 GiB allocation)."""
    xsf = tmp_path / "z.xsf"
    xsf.write_text("ATOMS\n" + "1" * 5000 + " 0.0 0.0 0.0\n")
    with pytest.raises(InputFileError, match="unknown element"):
        read_structures(xsf)
    data = tmp_path / "input.data"
    data.write_text("begin\natom 0 0 0 O 0 1e308 0 0 0\natom 1.5 0 0 H 0 0 0 0 0\n"
                    "energy -1\nend\n")
    with pytest.raises(InputFileError, match="line 2: atom: the n column"):
        list(read_input_data(data, length_unit="bohr", energy_unit="hartree"))
    import hdnnp.validation

    monkeypatch.setattr(hdnnp.validation, "MAX_NEIGHBOURS_PER_ATOM", 50)  # 3000 in use
    grid = np.stack(np.meshgrid(*[np.arange(5) * 0.3] * 3), -1).reshape(-1, 3)
    blob = Atoms(f"H{len(grid)}", positions=grid)  # 0.3 Å apart: 124 neighbours each
    with pytest.raises(HdnnpError, match=r"124 neighbours within 6 Å \(at most 50"):
        neighbour_pairs(blob, 6.0)


def test_extxyz_with_nan_energy_is_refused(tmp_path):
    path = tmp_path / "bad.extxyz"
    path.write_text('2\nProperties=species:S:1:pos:R:3 energy=nan pbc="F F F"\n'
                    "Ti 0 0 0\nO 1.8 0 0\n")
    with pytest.raises(HdnnpError, match=r"bad\.extxyz, structure 1: the energy is nan"):
        read_structures(path)


def _labelled(energy=-1.0, forces=None):
    atoms = rutile()
    f = np.zeros((len(atoms), 3)) if forces is None else forces
    atoms.calc = SinglePointCalculator(atoms, energy=energy, forces=f)
    return atoms


def test_dataset_checks_structures_built_in_memory():
    Dataset([_labelled()], REFERENCE)
    with pytest.raises(HdnnpError, match="energy is nan"):
        Dataset([_labelled(energy=float("nan"))])
    with pytest.raises(HdnnpError, match="atom 1 has force"):
        Dataset([_labelled(forces=np.full((6, 3), np.inf))])
    with pytest.raises(HdnnpError, match="forces have shape"):
        Dataset([_labelled(forces=np.zeros((5, 3)))])
    with pytest.raises(HdnnpError, match="reference energy of O"):
        Dataset([_labelled()], {"O": float("nan"), "Ti": 1.0})


def test_volume_per_atom_is_checked_in_files_but_not_in_the_calculator(model):
    lone = Atoms("Ti", positions=[[0, 0, 0]], cell=[200, 200, 200], pbc=True)
    with pytest.raises(HdnnpError, match="per atom"):
        check_structure(lone, "lone")
    lone.calc = hdnnp.Calculator(model)
    assert lone.get_potential_energy() == pytest.approx(REFERENCE["Ti"], abs=1e-12)


def test_check_structure_accepts_valid_structures():
    check_structure(rutile(), "rutile")
    slab = Atoms("Ti2", positions=[[0, 0, 0], [1.5, 1.5, 1]], cell=[[3, 0, 0], [0, 3, 0],
                                                                   [0, 0, 0]],
                 pbc=[True, True, False])  # a zero vector along the non-periodic direction
    check_structure(slab, "slab")
    left = rutile()
    left.set_cell(-left.cell.array, scale_atoms=True)  # left-handed cells are valid
    check_structure(left, "left-handed")


# ------------------------------------------------------------------ property test

_BAD_TOKENS = ["nan", "inf", "-inf", "1e300", "-1e400", "0", "-1", "x", "", "1e-300", "99",
               "NaN", "begin", "end", "energy", "atom", "PRIMCOORD", "CONVCOORD", "ATOMS"]


def _mutate(text: str, data) -> str:
    lines = text.splitlines()
    for _ in range(data.draw(st.integers(1, 3))):
        k = data.draw(st.integers(0, len(lines) - 1))
        op = data.draw(st.sampled_from(["token", "delete", "duplicate"]))
        if op == "delete":
            del lines[k]
        elif op == "duplicate":
            lines.insert(k, lines[k])
        else:
            tokens = lines[k].split() or [""]
            t = data.draw(st.integers(0, len(tokens) - 1))
            tokens[t] = data.draw(st.sampled_from(_BAD_TOKENS))
            lines[k] = " ".join(tokens)
        if not lines:
            break
    return "\n".join(lines) + "\n"


def _assert_finite(atoms: Atoms) -> None:
    assert np.isfinite(atoms.get_positions()).all()
    assert np.isfinite(atoms.cell.array).all()
    res = atoms.calc.results if atoms.calc is not None else {}
    for key in ("energy", "forces"):
        if res.get(key) is not None:
            assert np.isfinite(res[key]).all()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                   HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_mutated_files_give_finite_structures_or_hdnnp_errors(data, tmp_path):
    kind = data.draw(st.sampled_from(["xsf", "n2p2"]))
    if kind == "xsf":
        try:
            _assert_finite(parse_xsf(_mutate(XSF, data), "fuzz.xsf"))
        except HdnnpError:
            pass
    else:
        path = tmp_path / "input.data"
        path.write_text(_mutate(INPUT_DATA, data))
        try:
            for atoms in read_input_data(path):
                _assert_finite(atoms)
        except HdnnpError:
            pass
