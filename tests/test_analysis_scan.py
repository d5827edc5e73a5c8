"""Scaling scans (thesis §5.1.1) against analytic Lennard-Jones and EMT answers."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.calculators.lj import LennardJones

from hdnnp.analysis.scan import (
    energy_per_atom_stats,
    parse_factors,
    scale_structure,
    scaling_scan,
)
from hdnnp.errors import HdnnpError


def lj(**kw):
    # rc far out: the energy shift at the cutoff (ASE's default) is negligible (~1e-11 eV)
    return LennardJones(sigma=1.0, epsilon=1.0, rc=50.0, **kw)


def test_lennard_jones_dimer_minimum_and_depth():
    # V(r) = 4ε[(σ/r)^12 - (σ/r)^6]: minimum at r = 2^(1/6) σ with V = -ε, i.e. -ε/2 per atom
    dimer = Atoms("Ar2", positions=[[0, 0, 0], [0, 0, 1.0]])
    factors = np.linspace(-0.05, 0.25, 301)
    scan = scaling_scan(lj(), dimer, factors)
    assert scan.minimum() == pytest.approx(2 ** (1 / 6) - 1, abs=0.0011)
    assert np.nanmin(scan.energy_per_atom) == pytest.approx(-0.5, abs=1e-5)
    r = 1.0 + factors
    expected = 0.5 * 4 * (r ** -12 - r ** -6)
    np.testing.assert_allclose(scan.energy_per_atom, expected, atol=1e-9)
    assert scan.reference_energy_per_atom is None and scan.extrapolation is None
    assert scan.energy_kind == "total"
    assert dimer.positions[1, 2] == 1.0 and dimer.calc is None  # input untouched


def test_reference_calculator_and_isolated_atom_energies():
    # the "model" is a deliberately different LJ; isolated-atom energies shift both curves
    dimer = Atoms("Ar2", positions=[[0, 0, 0], [0, 0, 1.12]])
    factors = [-0.05, 0.0, 0.05]
    scan = scaling_scan(lj(), dimer, factors, reference_calculator=LennardJones(
        sigma=1.0, epsilon=2.0, rc=50.0), reference_energies={"Ar": -0.25})
    assert scan.energy_kind == "cohesive"
    r = 1.12 * (1.0 + np.array(factors))
    v = 4 * (r ** -12 - r ** -6)
    np.testing.assert_allclose(scan.energy_per_atom, 0.5 * v + 0.25, atol=1e-9)
    np.testing.assert_allclose(scan.reference_energy_per_atom, v + 0.25, atol=1e-9)
    own = scaling_scan(lj(), dimer, factors, reference_calculator=lj(),
                       reference_energies={"Ar": -0.25},
                       reference_method_atom_energies={"Ar": 1.0})
    np.testing.assert_allclose(own.reference_energy_per_atom, 0.5 * v - 1.0, atol=1e-9)
    np.testing.assert_allclose(own.energy_per_atom, 0.5 * v + 0.25, atol=1e-9)
    d = scan.to_dict()
    assert json.loads(json.dumps(d))["factors"] == pytest.approx(factors)
    assert d["reference_energies_eV"] == {"Ar": -0.25}


def test_emt_copper_minimum_near_equilibrium_lattice_constant():
    # EMT copper: fcc equilibrium lattice constant 3.59 Å (ASE's EMT parameters).  From
    # a = 3.59 · 1.05 the minimum must lie at f = 1/1.05 - 1 = -0.0476.
    atoms = bulk("Cu", "fcc", a=3.59 * 1.05, cubic=True)
    scan = scaling_scan(EMT(), atoms, np.linspace(-0.1, 0.1, 81))
    assert scan.minimum() == pytest.approx(1 / 1.05 - 1, abs=0.006)
    # volume scales as (1+f)^3
    assert scale_structure(atoms, 0.1).get_volume() == pytest.approx(
        atoms.get_volume() * 1.1 ** 3)


def test_failed_reference_points_become_nan_with_a_warning():
    class Flaky(LennardJones):
        def calculate(self, atoms=None, properties=("energy",), system_changes=None):
            if atoms is not None and atoms.get_distance(0, 1) < 1.0:
                raise RuntimeError("SCF did not converge")
            super().calculate(atoms, properties, system_changes or ["positions"])

    dimer = Atoms("Ar2", positions=[[0, 0, 0], [0, 0, 1.0]])
    with pytest.warns(UserWarning, match="reference calculation failed"):
        scan = scaling_scan(lj(), dimer, [-0.05, 0.05], reference_calculator=Flaky(
            sigma=1.0, epsilon=1.0, rc=50.0))
    assert np.isnan(scan.reference_energy_per_atom[0])
    assert np.isfinite(scan.reference_energy_per_atom[1])


def test_hdnnp_calculator_scan_reports_extrapolation(tmp_path):
    import torch

    from hdnnp.calculator import Calculator
    from hdnnp.descriptors import Chebyshev
    from hdnnp.model import NeuralNetworkPotential
    from hdnnp.neighbours import build_batch

    torch.manual_seed(0)
    model = NeuralNetworkPotential(Chebyshev(["Cu"], 4.0, 3, 3.0, 1), hidden=(3,),
                                   reference_energies={"Cu": -2.0})
    atoms = bulk("Cu", "fcc", a=3.6)
    # training range = the features of the unscaled crystal: any scaling extrapolates
    batch = build_batch([atoms], model.elements, model.cutoff)
    g = model.descriptor(batch, batch.pair_vectors()).detach()
    net = model.networks["Cu"]
    net.feature_min.copy_(g.min(0).values)
    net.feature_max.copy_(g.max(0).values)
    calc = Calculator(model, extrapolation="ignore")
    scan = scaling_scan(calc, atoms, [-0.05, 0.0, 0.05])
    assert scan.reference_energies == {"Cu": -2.0}  # the model's own by default
    assert list(scan.extrapolation > 0) == [True, False, True]
    a0 = atoms.copy()
    a0.calc = calc
    assert scan.energy_per_atom[1] == pytest.approx(a0.get_potential_energy() / 1 + 2.0)


def test_parse_factors():
    np.testing.assert_allclose(parse_factors("-0.1:0.1:21"), np.linspace(-0.1, 0.1, 21))
    np.testing.assert_allclose(parse_factors("-0.1, 0 ,0.1"), [-0.1, 0.0, 0.1])
    np.testing.assert_allclose(parse_factors("0.02"), [0.02])
    for bad in ("a:b:c", "-0.1:0.1", "0:1:0", "", "-1.5,0", "nan"):
        with pytest.raises(HdnnpError):
            parse_factors(bad)


def test_scan_errors():
    with pytest.raises(HdnnpError):
        scaling_scan(EMT(), bulk("Cu"), [])
    with pytest.raises(HdnnpError, match="greater than -1"):
        scaling_scan(EMT(), bulk("Cu"), [-1.0])
    with pytest.raises(HdnnpError, match="no isolated-atom reference energy for Cu"):
        scaling_scan(EMT(), bulk("Cu"), [0.0], reference_energies={"Au": 1.0})


def test_energy_per_atom_stats_and_plot(tmp_path):
    from ase.calculators.singlepoint import SinglePointCalculator

    structures = []
    for e, n in ((-10.0, 2), (-9.0, 3), (-4.0, 1)):
        a = Atoms("H" * n, positions=np.arange(3 * n).reshape(n, 3), cell=[10] * 3)
        a.calc = SinglePointCalculator(a, energy=e)
        structures.append(a)
    s = energy_per_atom_stats(structures, {"H": -1.0})
    # per atom: -5+1, -3+1, -4+1 → -4, -2, -3
    assert s == {"max": -2.0, "mean": -3.0, "min": -4.0, "n": 3}
    dimer = Atoms("Ar2", positions=[[0, 0, 0], [0, 0, 1.1]])
    scan = scaling_scan(lj(), dimer, [-0.05, 0.0, 0.05], reference_calculator=lj())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = scan.plot(tmp_path / "scan.png", training_max=s["max"], training_mean=s["mean"])
    assert out.read_bytes()[:4] == b"\x89PNG"
