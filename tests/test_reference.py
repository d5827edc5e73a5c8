"""Reference calculators: tblite GFN1-xTB labels, isolated atoms, errors."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms

from hdnnp.errors import HdnnpError, MissingDependencyError
from hdnnp.reference_data import structures as st
from hdnnp.reference_data.calculators import (
    ReferenceSettings,
    SCFError,
    check_elements,
    isolated_atom_energies,
    single_point,
)

SMALL = {"graphene": (3, 3, 1), "hbn": (3, 3, 1), "diamond": (1, 1, 1), "cbn": (1, 1, 1),
         "quartz": (1, 1, 1), "silica-bilayer": (1, 1, 1), "rutile": (1, 1, 2),
         "anatase": (1, 1, 1), "brookite": (1, 1, 1), "h2": None}


@pytest.mark.parametrize("name", list(SMALL))
def test_gfn1_single_point_converges_for_every_material(name):
    atoms = st.build(name) if SMALL[name] is None else st.build(name, SMALL[name])
    res = single_point(atoms)
    assert np.isfinite(res["energy"]) and res["forces"].shape == (len(atoms), 3)
    # ideal structures near the (experimental) equilibrium: moderate forces only
    assert np.abs(res["forces"]).max() < 3.0
    if name in ("graphene", "hbn", "diamond", "cbn"):
        # every atom sits on an inversion centre or a 3-fold axis: forces vanish
        assert np.abs(res["forces"]).max() < 1e-4


def _fd_forces(atoms, settings, atoms_idx, h=1e-3):
    out = np.zeros((len(atoms_idx), 3))
    for n, i in enumerate(atoms_idx):
        for k in range(3):
            a = atoms.copy()
            a.positions[i, k] += h
            ep = single_point(a, settings)["energy"]
            a.positions[i, k] -= 2 * h
            em = single_point(a, settings)["energy"]
            out[n, k] = -(ep - em) / (2 * h)
    return out


@pytest.mark.parametrize("name", ["diamond", "graphene"])
def test_forces_are_minus_energy_gradient(name):
    """Central finite differences (h = 1e-3 Å) agree with tblite forces to ≤ 1e-4 eV/Å."""
    settings = ReferenceSettings()
    atoms = st.build(name, (1, 1, 1) if name == "diamond" else (3, 3, 1))
    atoms.rattle(0.08, seed=4)
    forces = single_point(atoms, settings)["forces"]
    idx = [0, len(atoms) - 1]
    fd = _fd_forces(atoms, settings, idx)
    assert np.abs(forces[idx]).max() > 0.1      # a real test: forces are not zero
    assert np.abs(fd - forces[idx]).max() <= 1e-4


def test_isolated_atom_energies_and_cohesive_energy():
    ref = isolated_atom_energies(["C", "O", "Si"])
    assert set(ref) == {"C", "O", "Si"}
    # spin-restricted GFN1-xTB free atoms (tblite 0.8)
    assert ref["C"] == pytest.approx(-47.3787, abs=1e-3)
    g = st.graphene((3, 3, 1))
    e = single_point(g)["energy"]
    ecoh = (e - len(g) * ref["C"]) / len(g)
    assert -10.5 < ecoh < -8.5          # GFN1-xTB overbinds graphene (PBE: ≈ −7.9 eV/atom)
    # the electronic temperature is a setting of both
    hot = isolated_atom_energies(["C"], ReferenceSettings(electronic_temperature=3000))
    assert hot["C"] != pytest.approx(ref["C"], abs=1e-6)


def test_gfn2_selectable_and_differs():
    h2 = st.h2()
    e1 = single_point(h2, ReferenceSettings("GFN1-xTB"))["energy"]
    e2 = single_point(h2, ReferenceSettings("gfn2"))["energy"]
    assert ReferenceSettings("gfn2").method == "GFN2-xTB"
    assert abs(e1 - e2) > 0.01


def test_scf_failure_is_reported():
    atoms = st.rutile((1, 1, 1))
    atoms.rattle(0.1, seed=1)
    with pytest.raises(SCFError, match="SCF not converged"):
        single_point(atoms, ReferenceSettings(max_iterations=2))


def test_unknown_element_for_method():
    with pytest.raises(HdnnpError, match="'U' is not parametrised in GFN1-xTB"):
        check_elements(["C", "U"], ReferenceSettings())
    with pytest.raises(HdnnpError, match="not parametrised"):
        single_point(Atoms("U", positions=[[0, 0, 0]]))


def test_any_ase_calculator_by_name():
    from ase.build import bulk

    cu = bulk("Cu", "fcc", a=3.6)
    res = single_point(cu, ReferenceSettings(method="emt"))
    from ase.calculators.emt import EMT

    c = cu.copy()
    c.calc = EMT()
    assert res["energy"] == pytest.approx(c.get_potential_energy())
    with pytest.raises(HdnnpError, match="unknown reference method"):
        single_point(cu, ReferenceSettings(method="no-such-code"))
    with pytest.raises(MissingDependencyError, match="optional package"):
        single_point(cu, ReferenceSettings(method="hdnnp_no_such_pkg.calc:Calc"))


def test_settings_roundtrip():
    s = ReferenceSettings(electronic_temperature=500, max_iterations=400)
    assert ReferenceSettings.from_dict(s.to_dict()) == s
    with pytest.raises(HdnnpError):
        ReferenceSettings(electronic_temperature=-1)
