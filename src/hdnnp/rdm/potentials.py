r"""The paper's family of random external potentials (atomic units: Hartree, bohr).

Wetherell, Costamagna, Gatti, Reining, Faraday Discuss. 224, 265 (2020):

.. math::

    V(x) = D x^{10} + F \sum_{n=1}^{3} \big[a_n \cos(n\pi x/L) + b_n \sin(n\pi x/L)\big],

:math:`L = 15` bohr, :math:`D = 10^{-11}` Ha bohr⁻¹⁰, :math:`F = 0.1` Ha,
:math:`a_n, b_n \sim U[-10, 10]`.  The :math:`x^{10}` term confines the electrons
(:math:`V(\pm 15) \approx 5.8` Ha); the Fourier terms vary the shape.

System ``i`` of a data set with seed ``s`` draws its six coefficients from
``numpy.random.default_rng(SeedSequence([s, i]))``: the result depends only on (s, i),
not on how many workers ran or in which order chunks were done.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from hdnnp.errors import HdnnpError

__all__ = ["PotentialFamily", "system_coefficients"]


@dataclass(frozen=True)
class PotentialFamily:
    """Parameters of the random potential family (defaults: the paper's)."""

    L: float = 15.0            #: period length (bohr)
    D: float = 1e-11           #: confinement strength (Ha bohr⁻¹⁰)
    F: float = 0.1             #: Fourier amplitude scale (Ha)
    amplitude: float = 10.0    #: a_n, b_n ~ U[-amplitude, amplitude]
    harmonics: int = 3         #: n = 1 .. harmonics

    def __post_init__(self):
        for name in ("L", "amplitude"):
            if not (np.isfinite(getattr(self, name)) and getattr(self, name) > 0):
                raise HdnnpError(f"potential family: {name} must be > 0")
        if self.harmonics < 1:
            raise HdnnpError("potential family: harmonics must be >= 1")

    def to_dict(self) -> dict:
        return asdict(self)

    def evaluate(self, x: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """V(x) (Hartree) for cosine coefficients ``a`` and sine coefficients ``b``
        (shape (..., harmonics)); returns shape (..., len(x))."""
        x = np.asarray(x, dtype=float)
        k = np.arange(1, self.harmonics + 1)[:, None] * np.pi * x[None, :] / self.L
        a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
        return self.D * x**10 + self.F * (a @ np.cos(k) + b @ np.sin(k))


def system_coefficients(seed: int, index: int, family: PotentialFamily = PotentialFamily()):
    """(a, b) of system ``index`` of a data set with ``seed`` (see module docstring)."""
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), int(index)]))
    ab = rng.uniform(-family.amplitude, family.amplitude, size=2 * family.harmonics)
    return ab[: family.harmonics], ab[family.harmonics:]
