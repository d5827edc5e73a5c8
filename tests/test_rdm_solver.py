"""The exact two-electron solver and UHF (hdnnp.rdm): known answers in atomic units."""

from __future__ import annotations

import numpy as np
import pytest

from hdnnp.errors import HdnnpError
from hdnnp.rdm.hartree_fock import solve_uhf
from hdnnp.rdm.potentials import PotentialFamily, system_coefficients
from hdnnp.rdm.solver import (
    Grid,
    dense_two_electron_hamiltonian,
    kinetic_energy_from_rdm,
    solve_ground_state,
)


def _paper_system(index: int = 3, grid: Grid | None = None):
    grid = grid or Grid()
    fam = PotentialFamily()
    a, b = system_coefficients(0, index, fam)
    return fam.evaluate(grid.x, a, b), grid


@pytest.mark.parametrize("omega", [1.0, 0.6])
def test_non_interacting_harmonic_oscillator_matches_the_analytic_limit(omega):
    # two electrons in the lowest orbital of V = ½ω²x²: E = 2·ω/2, n = 2 φ0², T = E/2
    grid = Grid(161, 8.0 / np.sqrt(omega), 7)
    x = grid.x
    gs = solve_ground_state(0.5 * omega**2 * x**2, grid, interaction=0.0)
    assert abs(gs.energy - omega) / omega < 1e-6
    phi0 = (omega / np.pi) ** 0.25 * np.exp(-omega * x**2 / 2)
    n_exact = 2 * phi0**2
    assert np.max(np.abs(gs.density - n_exact)) / n_exact.max() < 1e-6
    e = gs.energies()
    assert abs(e["kinetic"] - omega / 2) / (omega / 2) < 1e-6
    assert abs(e["external"] - omega / 2) / (omega / 2) < 1e-6
    assert abs(e["interaction"]) == 0.0
    occ, orbitals = gs.natural_orbitals()
    assert abs(occ[0] - 1.0) < 1e-10 and np.all(np.abs(occ[1:]) < 1e-10)
    assert np.max(np.abs(np.abs(orbitals[:, 0]) - phi0)) / phi0.max() < 1e-6


def test_stencil_order_shows_in_the_harmonic_oscillator_error():
    # the error falls by 2^p when the spacing halves (p = 2, 4 for 3-, 5-point stencils)
    for stencil, order in ((3, 2), (5, 4)):
        errors = []
        for points in (41, 81):
            grid = Grid(points, 8.0, stencil)
            gs = solve_ground_state(0.5 * grid.x**2, grid, interaction=0.0)
            errors.append(abs(gs.energy - 1.0))
        ratio = errors[0] / errors[1]
        assert 0.8 * 2**order < ratio < 1.25 * 2**order, (stencil, ratio)


@pytest.mark.parametrize("stencil", [3, 7])
def test_interacting_ground_state_matches_a_dense_diagonalisation(stencil):
    grid = Grid(14, 5.0, stencil)
    rng = np.random.default_rng(4)
    v = 0.05 * grid.x**2 + rng.uniform(-0.5, 0.5, grid.points)
    gs = solve_ground_state(v, grid)
    h = dense_two_electron_hamiltonian(v, grid)
    vals, vecs = np.linalg.eigh(h)
    assert abs(gs.energy - vals[0]) < 1e-10
    psi = vecs[:, 0].reshape(grid.points, grid.points) / grid.dx
    gamma = 2 * psi @ psi.T * grid.dx
    assert np.max(np.abs(gs.rdm - gamma)) < 1e-9
    assert np.max(np.abs(gs.density - np.diag(gamma))) < 1e-9


def test_one_body_density_matrix_properties_on_the_paper_grid():
    v, grid = _paper_system()
    gs = solve_ground_state(v, grid)
    g, n, dx = gs.rdm, gs.density, grid.dx
    assert np.max(np.abs(g - g.T)) < 1e-14                  # hermitian (real symmetric)
    assert abs(np.trace(g) * dx - 2.0) < 1e-10              # trace N = 2
    assert np.max(np.abs(np.diag(g) - n)) < 1e-10           # diag γ = n
    assert abs(np.sum(n) * dx - 2.0) < 1e-10
    occ, orb = gs.natural_orbitals()
    assert occ.min() > -1e-12 and occ.max() <= 1.0 + 1e-12   # per spin-orbital in [0, 1]
    assert abs(2 * occ.sum() - 2.0) < 1e-10
    assert 0.9 < occ[0] < 1.0 and occ[1] > 1e-4             # interacting: correlated
    assert np.allclose(orb.T @ orb * dx, np.eye(grid.points), atol=1e-10)
    e = gs.energies()
    assert abs(e["kinetic"] + e["external"] + e["interaction"] - e["total"]) < 1e-10
    assert e["kinetic"] > 0 and e["interaction"] > 0
    # the wavefunction is exchange symmetric
    assert np.max(np.abs(gs.wavefunction - gs.wavefunction.T)) == 0.0
    assert kinetic_energy_from_rdm(g[None], dx, grid.stencil)[0] == pytest.approx(
        e["kinetic"], abs=1e-14)


@pytest.mark.parametrize("stencil", [3, 5, 7])
@pytest.mark.parametrize("index", [0, 3])
def test_ground_state_matches_the_papers_own_code_idea(index, stencil, capsys):
    """The paper's code iDEA (``iDEA-latest``, a test-only dependency installed without
    its notebook dependencies) on the full N² space of a paper system: same total energy,
    density, 1-RDM and kinetic energy to rounding."""
    idea = pytest.importorskip("iDEA", reason="iDEA-latest is not installed (the README's "
                               "test command installs it: pip install --no-deps "
                               "iDEA-latest==1.1.0)")
    import iDEA.methods.interacting
    import iDEA.methods.non_interacting
    import iDEA.observables

    v, grid = _paper_system(index, Grid(62, 15.0, stencil))
    system = idea.system.System(grid.x, v, idea.interactions.softened_interaction(grid.x),
                                "ud", stencil=stencil)
    state = iDEA.methods.interacting.solve(system, k=0)
    ours = solve_ground_state(v, grid)
    rdm = iDEA.observables.density_matrix(system, state=state)
    kinetic_matrix = iDEA.methods.non_interacting.kinetic_energy_operator(system)
    assert ours.energy == pytest.approx(state.energy, rel=1e-12)
    assert np.max(np.abs(ours.density - iDEA.observables.density(system, state=state))) < 1e-12
    assert np.max(np.abs(ours.rdm - rdm)) < 1e-11
    assert ours.energies()["kinetic"] == pytest.approx(
        float(np.sum(kinetic_matrix * rdm.T) * grid.dx), rel=1e-12)
    capsys.readouterr()  # iDEA prints its progress


def test_uhf_is_variational_and_restricted_for_a_single_well():
    v, grid = _paper_system(0)
    exact = solve_ground_state(v, grid)
    uhf = solve_uhf(v, grid)
    assert exact.energy < uhf.energy < exact.energy + 0.1   # correlation energy > 0
    assert abs(np.trace(uhf.rdm) * grid.dx - 2.0) < 1e-10
    # without interaction UHF is exact
    free = solve_uhf(v, grid, interaction=0.0)
    ref = solve_ground_state(v, grid, interaction=0.0)
    assert abs(free.energy - ref.energy) < 1e-9
    assert np.max(np.abs(free.rdm - ref.rdm)) < 1e-6


def test_bad_input_is_one_line_error():
    grid = Grid(20, 5.0)
    with pytest.raises(HdnnpError, match="shape"):
        solve_ground_state(np.zeros(19), grid)
    with pytest.raises(HdnnpError, match="non-finite"):
        solve_ground_state(np.full(20, np.nan), grid)
    with pytest.raises(HdnnpError, match="stencil"):
        Grid(20, 5.0, 4)
    with pytest.raises(HdnnpError, match="points"):
        Grid(2, 5.0)
