r"""ænet's Chebyshev descriptor (Artrith, Urban and Ceder, Phys. Rev. B 96, 014112 (2017)).

The radial and angular distribution functions around atom *i* are expanded in
Chebyshev polynomials :math:`T_n`; the expansion coefficients are the features
(ænet ``sfbasis.f90``, basis type ``Chebyshev``).  Lengths in Å, features
dimensionless.

.. math::

    c^{(2)}_n = \sum_{j} T_n\!\left(\frac{2 R_{ij}}{R_c^{(2)}} - 1\right) f_c^{(2)}(R_{ij}),
    \qquad n = 0 \dots N^{(2)},

    c^{(3)}_n = \sum_{j<k} T_n(\cos\theta_{ijk})\, f_c^{(3)}(R_{ij})\, f_c^{(3)}(R_{ik}),
    \qquad n = 0 \dots N^{(3)},

with the cosine cutoff :math:`f_c(R) = \tfrac12[\cos(\pi R/R_c) + 1]`.  For more than
one species a second, species-weighted copy is appended, in which every neighbour
carries its "type spin" :math:`s_j` (radial: :math:`s_j`; angular: :math:`s_j s_k`).
ænet assigns spins ``-n/2 … n/2`` in element order, skipping 0 for an even number of
species (two species: -1, +1).  Feature order per atom, as in ænet:
radial, angular, weighted radial, weighted angular.

On the engine (:mod:`hdnnp.descriptors.engine`) the radial expansion is one radial record
per centre element and the angular one a Chebyshev group per element pair; the kernels
evaluate :math:`T_n` and :math:`T_n'` by their recurrences per pair and per triplet.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from hdnnp.descriptors.cutoffs import CutoffFunction
from hdnnp.descriptors.engine import Descriptor
from hdnnp.descriptors.plan import AngularTerm, RadialTerm
from hdnnp.errors import HdnnpError


def type_spins(n_types: int) -> list[float]:
    """ænet's species weights ("type spins") for ``n_types`` species."""
    spins = []
    s = -(n_types // 2)
    for _ in range(n_types):
        if s == 0 and n_types % 2 == 0:
            s += 1
        spins.append(float(s))
        s += 1
    return spins


class Chebyshev(Descriptor):
    """ænet Chebyshev descriptor.

    Example (ænet's TiO2 setup of the shared benchmark)::

        >>> d = Chebyshev(["O", "Ti"], radial_rc=8.0, radial_order=16,
        ...               angular_rc=6.5, angular_order=4)
        >>> d.n_features("Ti")
        44
    """

    kind = "chebyshev"

    def __init__(self, elements: Sequence[str], radial_rc: float, radial_order: int,
                 angular_rc: float, angular_order: int, spins: Sequence[float] | None = None):
        super().__init__(elements)
        if radial_order < 0 or angular_order < 0:
            raise HdnnpError("Chebyshev orders must be >= 0")
        if not (radial_rc > 0 and angular_rc > 0):
            raise HdnnpError("Chebyshev cutoffs must be positive")
        self.radial_rc, self.radial_order = float(radial_rc), int(radial_order)
        self.angular_rc, self.angular_order = float(angular_rc), int(angular_order)
        n_types = len(self.elements)
        self.spins = [float(s) for s in spins] if spins is not None else type_spins(n_types)
        if len(self.spins) != n_types:
            raise HdnnpError("need one type spin per element")
        self.multi = n_types > 1
        nr, na = self.radial_order + 1, self.angular_order + 1
        names = [f"radial T{n}" for n in range(nr)] + [f"angular T{n}" for n in range(na)]
        if self.multi:
            names += [f"radial T{n} (species-weighted)" for n in range(nr)]
            names += [f"angular T{n} (species-weighted)" for n in range(na)]
        for e in self.elements:
            self.feature_names[e] = list(names)
        spin = np.array(self.spins)
        ones = np.ones(n_types)
        rcut = CutoffFunction("cos", self.radial_rc)
        acut = CutoffFunction("cos", self.angular_rc)
        radial = [RadialTerm(c, None, "cheb", self.radial_rc, 0.0, 0, nr, cutoff=rcut,
                             weights=ones, col2=nr + na if self.multi else -1, weights2=spin)
                  for c in range(n_types)]
        angular = [AngularTerm(c, None, "cheb", cutoff=acut, order=self.angular_order, col=nr,
                               weights=np.outer(ones, ones),
                               col2=2 * nr + na if self.multi else -1,
                               weights2=np.outer(spin, spin))
                   for c in range(n_types)]
        self._set_terms(radial, angular)

    def to_config(self) -> dict:
        return {"kind": self.kind, "elements": list(self.elements),
                "radial_rc": self.radial_rc, "radial_order": self.radial_order,
                "angular_rc": self.angular_rc, "angular_order": self.angular_order,
                "spins": list(self.spins)}

    @classmethod
    def from_config(cls, cfg: dict) -> Chebyshev:
        return cls(cfg["elements"], cfg["radial_rc"], cfg["radial_order"], cfg["angular_rc"],
                   cfg["angular_order"], cfg.get("spins"))
