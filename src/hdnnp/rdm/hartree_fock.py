r"""Unrestricted Hartree–Fock for one ↑ and one ↓ electron on the solver's grid (atomic
units: Hartree, bohr).

With one electron per spin, exchange cancels each electron's self-Hartree term, so the
UHF equations are

.. math::

    \Big[-\tfrac12 \partial_x^2 + V(x) + \int w(x, x')\, n_{\bar\sigma}(x')\,dx'\Big]
    \phi_\sigma = \varepsilon_\sigma \phi_\sigma, \qquad n_\sigma = |\phi_\sigma|^2,

:math:`w = 1/(|x-x'| + 1)` and :math:`\bar\sigma` the other spin.  They are solved by
minimising the UHF energy directly (L-BFGS on the two unnormalised orbitals, analytic
gradient; the plain self-consistent iteration oscillates for nearly degenerate double
wells) from two spin-asymmetric starts, so that a broken-symmetry solution is found where
it is lower; otherwise the result is the restricted one
(:math:`\phi_\uparrow = \phi_\downarrow`).  The spin-summed UHF 1-RDM is
:math:`\gamma^\mathrm{UHF}(x, x') = \sum_\sigma \phi_\sigma(x)\phi_\sigma(x')`, trace 2
— the input of the paper's "UHF-fed" functional (Wetherell et al., Faraday Discuss. 224,
265 (2020)).  Total energy
:math:`E = \sum_\sigma \langle\phi_\sigma|h|\phi_\sigma\rangle
+ \iint n_\uparrow w\, n_\downarrow`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hdnnp.errors import HdnnpError
from hdnnp.rdm.solver import Grid, kinetic_matrix, softened_coulomb

__all__ = ["UHFResult", "solve_uhf"]


@dataclass
class UHFResult:
    orbitals: np.ndarray   #: (2, N): φ↑, φ↓ with ∫φ² dx = 1 (bohr^-1/2)
    energy: float          #: Hartree
    iterations: int
    dx: float

    @property
    def density(self) -> np.ndarray:
        return np.sum(self.orbitals**2, axis=0)

    @property
    def rdm(self) -> np.ndarray:
        return self.orbitals.T @ self.orbitals


def solve_uhf(potential: np.ndarray, grid: Grid | None = None, interaction: float = 1.0
              ) -> UHFResult:
    """UHF ground state by direct minimisation of E[φ↑, φ↓] (module docstring); ``grid``
    defaults to the paper's (62 points on [-15, 15] bohr, 7-point stencil)."""
    grid = grid or Grid()
    v = np.asarray(potential, dtype=float)
    if v.shape != (grid.points,) or not np.all(np.isfinite(v)):
        raise HdnnpError(f"UHF: the potential must be {grid.points} finite values")
    return _minimise(v, grid, interaction)


def _minimise(potential, grid: Grid, interaction: float) -> UHFResult:
    """Direct minimisation of E[φ↑, φ↓] (L-BFGS, analytic gradient)."""
    from scipy.optimize import minimize

    v = np.asarray(potential, dtype=float)
    dx, n_pts = grid.dx, grid.points
    h = kinetic_matrix(n_pts, dx, grid.stencil).toarray() + np.diag(v)
    m = interaction * softened_coulomb(grid.x) * dx * dx

    def energy(z):
        u, d = z[:n_pts], z[n_pts:]
        nu_, nd_ = u @ u * dx, d @ d * dx
        hu, hd = h @ u, h @ d
        eu, ed = u @ hu * dx / nu_, d @ hd * dx / nd_
        pu, pd = u**2 / nu_, d**2 / nd_
        gu, gd = m @ pd, m @ pu
        j = pu @ gu
        grad_u = 2 * dx * (hu - eu * u) / nu_ + (2 * u / nu_) * (gu - dx * j)
        grad_d = 2 * dx * (hd - ed * d) / nd_ + (2 * d / nd_) * (gd - dx * j)
        return eu + ed + j, np.concatenate([grad_u, grad_d])

    _, vec = np.linalg.eigh(h)
    best = None
    for sign in (1.0, -1.0):
        z0 = np.concatenate([vec[:, 0] + 0.5 * sign * vec[:, 1],
                             vec[:, 0] - 0.5 * sign * vec[:, 1]])
        res = minimize(energy, z0, jac=True, method="L-BFGS-B",
                       options={"maxiter": 20000, "gtol": 1e-11, "ftol": 1e-15})
        if best is None or res.fun < best.fun:
            best = res
    u, d = best.x[:n_pts], best.x[n_pts:]
    orbitals = np.stack([u / np.sqrt(u @ u * dx), d / np.sqrt(d @ d * dx)])
    for s in range(2):
        orbitals[s] *= np.sign(orbitals[s][np.argmax(np.abs(orbitals[s]))])
    return UHFResult(orbitals, float(best.fun), int(best.nit), dx)
