"""The ASE calculator: protocol, stress, MD, extrapolation warnings."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase.calculators.calculator import PropertyNotImplementedError
from ase.md.verlet import VelocityVerlet
from ase.stress import full_3x3_to_voigt_6_stress
from ase.units import fs, kB

import hdnnp
from hdnnp.calculator import ExtrapolationWarning
from hdnnp.errors import HdnnpError
from hdnnp.neighbours import build_batch
from hdnnp.potential import save_potential

from conftest import rutile, tio2_cluster
from test_model import DESCRIPTORS, make_model


@pytest.fixture
def model_path(tmp_path):
    model = make_model(DESCRIPTORS["chebyshev"]())
    model.reference_energies[:] = torch.tensor([-432.5, -1604.6], dtype=torch.float64)
    # pretend the training data covered the rattled rutile environments generously
    batch = build_batch([rutile(seed=k) for k in range(4)] + [tio2_cluster()], model.elements,
                        model.cutoff)
    g = model.descriptor(batch).detach()
    for k, e in enumerate(model.elements):
        rows = g[batch.species == k]
        span = rows.max(0).values - rows.min(0).values
        model.networks[e].feature_min.copy_(rows.min(0).values - 0.5 * span - 1e-3)
        model.networks[e].feature_max.copy_(rows.max(0).values + 0.5 * span + 1e-3)
    path = tmp_path / "model.json"
    save_potential(model, path)
    return path


def test_properties_follow_ase_protocol(model_path):
    calc = hdnnp.Calculator(model_path, extrapolation="error")
    assert set(calc.implemented_properties) >= {"energy", "free_energy", "forces", "stress",
                                                "energies"}
    atoms = rutile()
    atoms.calc = calc
    e = atoms.get_potential_energy()
    assert atoms.get_potential_energy(force_consistent=True) == e
    assert atoms.get_potential_energies().sum() == pytest.approx(e, rel=1e-13)
    assert atoms.get_forces().shape == (len(atoms), 3)
    stress = atoms.get_stress()
    assert stress.shape == (6,)
    model = hdnnp.load_potential(model_path)
    out = model(build_batch([atoms], model.elements, model.cutoff), stress=True)
    assert e == pytest.approx(float(out["energy"][0].detach()), rel=1e-14)
    np.testing.assert_allclose(stress, full_3x3_to_voigt_6_stress(
        out["stress"][0].detach().numpy()), rtol=1e-12)
    np.testing.assert_allclose(atoms.get_forces().sum(0), 0.0, atol=1e-10)
    assert calc.results["extrapolation_warnings"] == 0


def test_stress_needs_3d_periodicity(model_path):
    atoms = tio2_cluster()
    atoms.calc = hdnnp.Calculator(model_path)
    atoms.get_forces()
    with pytest.raises(PropertyNotImplementedError):
        atoms.get_stress()


def test_nve_md_conserves_energy(model_path):
    atoms = rutile().repeat((1, 1, 2))
    atoms.calc = hdnnp.Calculator(model_path, extrapolation="ignore")
    masses = atoms.get_masses()[:, None]
    rng = np.random.default_rng(0)
    atoms.set_momenta(rng.normal(size=(len(atoms), 3)) * np.sqrt(masses * kB * 300))
    dyn = VelocityVerlet(atoms, timestep=0.25 * fs)
    e0 = atoms.get_total_energy()
    energies = []
    dyn.attach(lambda: energies.append(atoms.get_total_energy()), interval=5)
    dyn.run(60)
    drift = max(abs(e - e0) for e in energies) / len(atoms)
    assert drift < 1e-4  # eV/atom


def test_extrapolation_is_counted_and_reported(model_path):
    squeezed = rutile()
    squeezed.set_cell(squeezed.cell.array * 0.8, scale_atoms=True)
    calc = hdnnp.Calculator(model_path, extrapolation="ignore")
    squeezed.calc = calc
    squeezed.get_potential_energy()
    assert calc.results["extrapolation_warnings"] > 0
    assert len(calc.results["extrapolating_atoms"]) > 0
    assert "1 of 1 calls" in calc.extrapolation_summary()
    warn = hdnnp.Calculator(model_path)
    squeezed.calc = warn
    with pytest.warns(ExtrapolationWarning, match="outside the range"):
        squeezed.get_potential_energy()
    squeezed.calc = hdnnp.Calculator(model_path, extrapolation="error")
    with pytest.raises(HdnnpError, match="extrapolates"):
        squeezed.get_potential_energy()


def test_float32_inference_is_close(model_path):
    atoms = rutile()
    atoms.calc = hdnnp.Calculator(model_path)
    e64, f64 = atoms.get_potential_energy(), atoms.get_forces()
    atoms.calc = hdnnp.Calculator(model_path, dtype="float32")
    e32, f32 = atoms.get_potential_energy(), atoms.get_forces()
    assert abs(e32 - e64) / len(atoms) < 1e-4
    np.testing.assert_allclose(f32, f64, atol=1e-4)


def test_unknown_element_is_a_clear_error(model_path):
    from ase import Atoms

    atoms = Atoms("CO", positions=[[0, 0, 0], [0, 0, 1.2]])
    atoms.calc = hdnnp.Calculator(model_path)
    with pytest.raises(HdnnpError, match="element"):
        atoms.get_potential_energy()
