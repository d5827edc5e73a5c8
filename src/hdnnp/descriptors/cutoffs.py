r"""Cutoff functions :math:`f_c(r)` that take atomic interactions smoothly to zero at
:math:`r_c`.

All functions have the form used by n2p2 (Singraber et al., J. Chem. Theory Comput.
15, 1827 (2019); n2p2 documentation "Cutoff functions"), with an optional inner
cutoff :math:`r_{ci} = \alpha r_c` below which :math:`f_c = 1`:

.. math::

    f_c(r) = \begin{cases} 1 & r < r_{ci} \\ f(x), \; x = \frac{r - r_{ci}}{r_c - r_{ci}}
             & r_{ci} \le r < r_c \\ 0 & r \ge r_c \end{cases}

========  ===================================================  ===========
name      :math:`f(x)`                                          n2p2 type
========  ===================================================  ===========
hard      :math:`1`                                             0
cos       :math:`\tfrac12[\cos(\pi x) + 1]`                     1
tanhu     :math:`\tanh^3(1 - r/r_c)` (no inner cutoff)          2
tanh      :math:`c\,\tanh^3(1 - r/r_c)`, :math:`f_c(0) = 1`     3
exp       :math:`\exp(1 - 1/(1 - x^2))`                          4
poly1     :math:`(2x - 3)x^2 + 1`                               5
poly2     :math:`((15 - 6x)x - 10)x^3 + 1`                      6
poly3     :math:`(x(x(20x - 70) + 84) - 35)x^4 + 1`             7
poly4     :math:`(x(x((315 - 70x)x - 540) + 420) - 126)x^5 + 1` 8
========  ===================================================  ===========

with :math:`c = [(e + e^{-1})/(e - e^{-1})]^3` for ``tanh``.  ``hard``, ``tanhu`` and
``tanh`` ignore :math:`\alpha`, as n2p2 does (these definitions were checked against
n2p2's ``CutoffFunction`` and ``CoreFunction``).  ``cos`` with :math:`\alpha = 0` is
Behler's cosine cutoff (J. Chem. Phys. 134, 074106 (2011), eq. 4; thesis eq. 2.71), the
one ænet uses.  Distances in Å.

The functions are written with torch operations only, so reverse- and forward-mode
automatic differentiation give exact derivatives; arguments outside the active range
are replaced by a harmless value before evaluation ("double where") so that no NaN
leaks into gradients.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from hdnnp.errors import HdnnpError

#: n2p2 ``cutoff_type`` number -> name used here.
N2P2_CUTOFF_TYPES = {
    0: "hard",
    1: "cos",
    2: "tanhu",
    3: "tanh",
    4: "exp",
    5: "poly1",
    6: "poly2",
    7: "poly3",
    8: "poly4",
}

_TANH_PRE = ((math.e + 1.0 / math.e) / (math.e - 1.0 / math.e)) ** 3


def _poly(kind: str, x: torch.Tensor) -> torch.Tensor:
    if kind == "poly1":
        return (2.0 * x - 3.0) * x * x + 1.0
    if kind == "poly2":
        return ((15.0 - 6.0 * x) * x - 10.0) * x**3 + 1.0
    if kind == "poly3":
        return (x * (x * (20.0 * x - 70.0) + 84.0) - 35.0) * x**4 + 1.0
    # poly4
    return (x * (x * ((315.0 - 70.0 * x) * x - 540.0) + 420.0) - 126.0) * x**5 + 1.0


@dataclass(frozen=True)
class CutoffFunction:
    """A cutoff function of type ``kind`` with outer radius ``rc`` (Å) and inner
    cutoff ``alpha * rc``."""

    kind: str = "cos"
    rc: float = 6.0
    alpha: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in N2P2_CUTOFF_TYPES.values():
            raise HdnnpError(
                f"unknown cutoff function {self.kind!r}; known: "
                + ", ".join(N2P2_CUTOFF_TYPES.values())
            )
        if not self.rc > 0:
            raise HdnnpError(f"cutoff radius must be positive, got {self.rc}")
        if not 0.0 <= self.alpha < 1.0:
            raise HdnnpError(f"inner cutoff parameter alpha must be in [0, 1), got {self.alpha}")

    def __call__(self, r: torch.Tensor) -> torch.Tensor:
        """Evaluate :math:`f_c(r)` elementwise.

        Types with :math:`f(0) = 1`, :math:`f(1) = 0` and vanishing slope at both ends
        (cos, poly1-4, and tanh³ at :math:`r_c`) are evaluated on the argument clamped to
        its active range, which gives the exact piecewise definition and its derivative
        with fewer operations than masking.
        """
        rc = self.rc
        if self.kind in ("tanhu", "tanh"):
            t = torch.tanh((1.0 - r / rc).clamp_min(0.0))
            f = t * t * t
            return _TANH_PRE * f if self.kind == "tanh" else f
        if self.kind == "hard":
            return torch.where(r < rc, torch.ones_like(r), torch.zeros_like(r))
        rci = self.alpha * rc
        if self.kind == "exp":
            inside = r < rc
            active = inside & (r >= rci)
            rs = torch.where(active, r, torch.full_like(r, 0.5 * (rci + rc)))
            x = (rs - rci) / (rc - rci)
            # 1 - x^2 can round to 0 just below r_c: guard the division (f -> 0 there)
            t = 1.0 - x * x
            pos = t > 0.0
            f = torch.where(pos, torch.exp(1.0 - 1.0 / torch.where(pos, t, torch.ones_like(t))),
                            torch.zeros_like(t))
            outer = torch.where(inside, torch.ones_like(r), torch.zeros_like(r))
            return torch.where(active, f, outer)
        x = ((r - rci) / (rc - rci)).clamp(0.0, 1.0)
        if self.kind == "cos":
            return 0.5 * (torch.cos(math.pi * x) + 1.0)
        return _poly(self.kind, x)

    def to_config(self) -> dict:
        return {"kind": self.kind, "rc": float(self.rc), "alpha": float(self.alpha)}

    @classmethod
    def from_config(cls, cfg: dict) -> CutoffFunction:
        return cls(kind=str(cfg.get("kind", "cos")), rc=float(cfg["rc"]),
                   alpha=float(cfg.get("alpha", 0.0)))
