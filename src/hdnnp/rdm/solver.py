r"""Exact ground state of two electrons of opposite spin in one dimension (atomic units).

Everything in this package is in **atomic units**: energies in Hartree, lengths in bohr
(not hdnnp's eV/Å; nothing here meets a potential file).

Model (Wetherell, Costamagna, Gatti, Reining, Faraday Discuss. 224, 265 (2020),
arXiv:2005.10672; the iDEA code's softened interaction
:math:`w(x, x') = 1/(|x - x'| + 1)`):

.. math::

    H = -\tfrac12 \partial_1^2 - \tfrac12 \partial_2^2 + V(x_1) + V(x_2)
        + \frac{1}{|x_1 - x_2| + 1}

on a uniform grid :math:`x_i = -L + i\,\Delta x`, :math:`i = 0 \dots N-1`,
:math:`\Delta x = 2L/(N-1)`, with hard walls (the wavefunction vanishes outside the
grid, as in iDEA).  The kinetic operator is the central finite-difference second
derivative of order 2, 4 or 6 (3-, 5- or 7-point stencil; Fornberg's coefficients).

Two electrons of opposite spin in the ground state form a spin singlet, whose spatial
wavefunction is symmetric, :math:`\psi(x_1, x_2) = \psi(x_2, x_1)`.  The Hamiltonian is
built directly in the symmetric subspace, basis :math:`|ii\rangle` and
:math:`(|ij\rangle + |ji\rangle)/\sqrt2` for :math:`i < j` (:math:`N(N+1)/2` states, half
the :math:`N^2` of the product space), so the exchange symmetry holds exactly and the
lowest eigenpair (Lanczos, :func:`scipy.sparse.linalg.eigsh`) is the singlet ground state.
The potential terms are diagonal in that basis because :math:`V(x_1) + V(x_2) + w` is
symmetric under exchange.

Outputs (:class:`GroundState`), with :math:`\sum_{ij} \psi_{ij}^2 \Delta x^2 = 1`:

- density :math:`n(x) = 2 \int \psi(x, y)^2 dy`, :math:`\int n\,dx = 2`;
- spin-summed one-body reduced density matrix (1-RDM)
  :math:`\gamma(x, x') = 2 \int \psi(x, y) \psi(x', y)\,dy`, so :math:`\gamma(x, x) = n(x)`
  and :math:`\operatorname{tr}\gamma = \int \gamma(x, x)\,dx = N = 2`;
- natural orbitals :math:`\phi_k` and occupations from the eigenproblem of
  :math:`\gamma\,\Delta x`.  **Convention**: ``occupations`` are *per spin-orbital*,
  :math:`f_k = \lambda_k / 2 \in [0, 1]` where :math:`\lambda_k \in [0, 2]` are the
  eigenvalues of the spin-summed :math:`\gamma\,\Delta x`; each natural spatial orbital
  carries two spin-orbitals (↑, ↓) of occupation :math:`f_k`, so
  :math:`2 \sum_k f_k = \operatorname{tr}\gamma = 2`;
- energies: total (the eigenvalue), kinetic from the 1-RDM
  :math:`T = -\tfrac12 \int \partial_x^2 \gamma(x, x')|_{x' = x}\,dx`, external
  :math:`\int V n\,dx`, interaction :math:`\iint w\,\psi^2\,dx_1 dx_2`; they add up to
  the total.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import ArpackNoConvergence, eigsh

from hdnnp.errors import HdnnpError

__all__ = [
    "STENCILS",
    "Grid",
    "GroundState",
    "dense_two_electron_hamiltonian",
    "kinetic_energy_from_rdm",
    "kinetic_matrix",
    "natural_orbitals",
    "second_derivative_matrix",
    "softened_coulomb",
    "solve_ground_state",
]

#: Central finite-difference coefficients of d²/dx² (times Δx²) by number of points:
#: orders 2, 4 and 6 (Fornberg, Math. Comp. 51, 699 (1988)).
STENCILS: dict[int, tuple[float, ...]] = {
    3: (1.0, -2.0, 1.0),
    5: (-1 / 12, 4 / 3, -5 / 2, 4 / 3, -1 / 12),
    7: (1 / 90, -3 / 20, 3 / 2, -49 / 18, 3 / 2, -3 / 20, 1 / 90),
}


@dataclass(frozen=True)
class Grid:
    """Uniform grid of ``points`` points on [-half_width, half_width] (bohr), hard walls.

    The paper's grid: ``Grid(62, 15.0)`` (Δx = 30/61 ≈ 0.49 bohr).
    """

    points: int = 62
    half_width: float = 15.0
    stencil: int = 7

    def __post_init__(self):
        if int(self.points) != self.points or self.points < 4:
            raise HdnnpError(f"grid points must be an integer >= 4, got {self.points}")
        if not (np.isfinite(self.half_width) and self.half_width > 0):
            raise HdnnpError(f"grid half width must be > 0 bohr, got {self.half_width}")
        if self.stencil not in STENCILS:
            raise HdnnpError(f"stencil must be one of {sorted(STENCILS)} points, "
                             f"got {self.stencil}")

    @property
    def x(self) -> np.ndarray:
        return np.linspace(-self.half_width, self.half_width, self.points)

    @property
    def dx(self) -> float:
        return 2.0 * self.half_width / (self.points - 1)


def second_derivative_matrix(points: int, dx: float, stencil: int = 7) -> sp.csr_matrix:
    """Sparse d²/dx² (bohr⁻²) on ``points`` grid points, zero boundary values outside."""
    if stencil not in STENCILS:
        raise HdnnpError(f"stencil must be one of {sorted(STENCILS)} points, got {stencil}")
    coeffs = STENCILS[stencil]
    half = len(coeffs) // 2
    offsets = list(range(-half, half + 1))
    diags = [np.full(points - abs(k), c) for k, c in zip(offsets, coeffs)]
    return (sp.diags(diags, offsets, shape=(points, points)) / dx**2).tocsr()


def kinetic_matrix(points: int, dx: float, stencil: int = 7) -> sp.csr_matrix:
    """One-electron kinetic operator -½ d²/dx² (Hartree) as a sparse matrix."""
    return (-0.5 * second_derivative_matrix(points, dx, stencil)).tocsr()


def softened_coulomb(x: np.ndarray, strength: float = 1.0, softening: float = 1.0):
    """w(x, x') = strength / (|x − x'| + softening) (Hartree; iDEA's softened interaction)."""
    return strength / (np.abs(x[:, None] - x[None, :]) + softening)


@lru_cache(maxsize=8)
def _symmetric_basis(points: int, dx: float, stencil: int):
    """Pair indices (i ≤ j), the isometry P from the symmetric subspace to the product
    space, and the kinetic part Pᵀ (T⊗1 + 1⊗T) P (all fixed for a grid)."""
    i, j = np.triu_indices(points)
    m = len(i)
    rows = np.concatenate([i * points + j, j * points + i])
    cols = np.concatenate([np.arange(m), np.arange(m)])
    vals = np.where(i == j, 0.5, 1.0 / np.sqrt(2.0))  # diagonal pairs appear twice
    proj = sp.csr_matrix((np.concatenate([vals, vals]), (rows, cols)),
                         shape=(points * points, m))
    t = kinetic_matrix(points, dx, stencil)
    eye = sp.identity(points, format="csr")
    t2 = sp.kron(t, eye, format="csr") + sp.kron(eye, t, format="csr")
    k_sym = (proj.T @ t2 @ proj).tocsr()
    k_sym.eliminate_zeros()
    return i, j, proj, k_sym


@dataclass
class GroundState:
    """The singlet ground state and what follows from it (atomic units; see module doc)."""

    grid: Grid
    potential: np.ndarray       #: V(x), Hartree
    wavefunction: np.ndarray    #: ψ(x1, x2), symmetric, Σψ²Δx² = 1 (bohr⁻¹)
    energy: float               #: total energy (Hartree)
    interaction: float          #: interaction strength used (1: the paper)

    @property
    def density(self) -> np.ndarray:
        """n(x) = 2∫ψ(x, y)² dy (bohr⁻¹), ∫n dx = 2."""
        return 2.0 * np.sum(self.wavefunction**2, axis=1) * self.grid.dx

    @property
    def rdm(self) -> np.ndarray:
        """Spin-summed 1-RDM γ(x, x') = 2∫ψ(x, y)ψ(x', y) dy (bohr⁻¹), trace ∫γ(x,x)dx = 2."""
        psi = self.wavefunction
        return 2.0 * (psi @ psi.T) * self.grid.dx

    def natural_orbitals(self) -> tuple[np.ndarray, np.ndarray]:
        """(occupations per spin-orbital f_k ∈ [0, 1], descending; orbitals φ_k(x) as
        columns, ∫φ_k² dx = 1)."""
        return natural_orbitals(self.rdm, self.grid.dx)

    def energies(self) -> dict[str, float]:
        """Total, kinetic (from γ), external and interaction energies (Hartree)."""
        g = self.grid
        psi = self.wavefunction
        n = self.density
        w = softened_coulomb(g.x, self.interaction)
        return {
            "total": float(self.energy),
            "kinetic": kinetic_energy_from_rdm(self.rdm, g.dx, g.stencil),
            "external": float(np.sum(self.potential * n) * g.dx),
            "interaction": float(np.sum(w * psi**2) * g.dx**2),
        }


def natural_orbitals(rdm: np.ndarray, dx: float) -> tuple[np.ndarray, np.ndarray]:
    """Eigen-decomposition of the spin-summed γ·Δx: occupations per spin-orbital λ/2
    (descending) and orbitals normalised to ∫φ² dx = 1 (sign: largest |φ| positive).
    ``rdm`` may be one (N, N) matrix or a stack (..., N, N)."""
    rdm = np.asarray(rdm, dtype=float)
    sym = 0.5 * (rdm + np.swapaxes(rdm, -1, -2)) * dx
    lam, vec = np.linalg.eigh(sym)
    lam, vec = lam[..., ::-1], vec[..., ::-1]
    idx = np.argmax(np.abs(vec), axis=-2)[..., None, :]
    sign = np.sign(np.take_along_axis(vec, idx, axis=-2))
    sign[sign == 0] = 1.0
    return lam / 2.0, vec * sign / np.sqrt(dx)


def kinetic_energy_from_rdm(rdm: np.ndarray, dx: float, stencil: int = 7):
    """T = -½ ∫ ∂²_x γ(x, x')|_{x'=x} dx (Hartree) with the same finite-difference
    stencil as the solver; ``rdm`` one (N, N) matrix (returns a float) or a stack."""
    rdm = np.asarray(rdm, dtype=float)
    d2 = second_derivative_matrix(rdm.shape[-1], dx, stencil).toarray()
    t = -0.5 * np.einsum("ij,...ji->...", d2, rdm) * dx
    return float(t) if t.ndim == 0 else t


def solve_ground_state(potential: np.ndarray, grid: Grid = Grid(), interaction: float = 1.0,
                       tol: float = 0.0) -> GroundState:
    """Lowest singlet eigenpair of the two-electron Hamiltonian (module docstring).

    ``potential``: V(x) on ``grid.x`` (Hartree); ``interaction``: strength of the softened
    Coulomb repulsion (0: non-interacting electrons); ``tol``: ARPACK's relative accuracy
    (0: machine precision).  The Lanczos start vector is fixed, so a result is
    reproducible bit for bit on one machine.
    """
    v = np.asarray(potential, dtype=float)
    if v.shape != (grid.points,):
        raise HdnnpError(f"the potential has shape {v.shape}, the grid {grid.points} points")
    if not np.all(np.isfinite(v)):
        raise HdnnpError("the external potential has non-finite values")
    i, j, _, k_sym = _symmetric_basis(grid.points, grid.dx, grid.stencil)
    x = grid.x
    diag = v[i] + v[j] + interaction / (np.abs(x[i] - x[j]) + 1.0)
    h = k_sym + sp.diags(diag)
    v0 = np.ones(len(i))
    try:
        vals, vecs = eigsh(h, k=1, which="SA", v0=v0, tol=tol, ncv=min(len(i), 24),
                           maxiter=20000)
    except ArpackNoConvergence as exc:  # pragma: no cover - ARPACK is robust here
        raise HdnnpError(f"Lanczos did not converge ({exc})") from None
    c = vecs[:, 0]
    psi = np.zeros((grid.points, grid.points))
    off = np.where(i == j, 1.0, 1.0 / np.sqrt(2.0))
    psi[i, j] = c * off
    psi[j, i] = c * off
    psi /= np.sqrt(np.sum(psi**2)) * grid.dx
    if psi[np.unravel_index(np.argmax(np.abs(psi)), psi.shape)] < 0:
        psi = -psi
    return GroundState(grid, v, psi, float(vals[0]), float(interaction))


def dense_two_electron_hamiltonian(potential: np.ndarray, grid: Grid,
                                   interaction: float = 1.0) -> np.ndarray:
    """The full N²×N² Hamiltonian in the product basis |x1 x2⟩ as a dense array (no
    symmetry used): an independent reference for small grids (tests)."""
    n = grid.points
    t = kinetic_matrix(n, grid.dx, grid.stencil).toarray()
    eye = np.eye(n)
    x = grid.x
    v = np.asarray(potential, dtype=float)
    pot = (v[:, None] + v[None, :] + interaction * softened_coulomb(x)).ravel()
    return np.kron(t, eye) + np.kron(eye, t) + np.diag(pot)
