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

**Angular sum in linear time.**  Writing :math:`T_n(x) = \sum_m a_{nm} x^m` and
:math:`(\hat u_j\cdot\hat u_k)^m = \sum_{|\alpha| = m} \frac{m!}{\alpha!}
\hat u_j^\alpha \hat u_k^\alpha` (multinomial theorem),

.. math::

    c^{(3)}_n = \tfrac12\Big[\sum_m a_{nm} \sum_{|\alpha|=m} \tfrac{m!}{\alpha!}
        \big(M^{\alpha}_i\big)^2 - \sum_j f_c(R_{ij})^2\Big],
    \qquad M^\alpha_i = \sum_j f_c(R_{ij})\, \hat u_{ij}^\alpha,

so the triplet sum becomes a sum over pairs (the diagonal :math:`j = k` term uses
:math:`T_n(1) = 1`).  Cost per pair is the number of monomials
:math:`\binom{N^{(3)}+3}{3}` (35 for order 4) instead of the number of neighbours.
The result equals the direct triplet sum to rounding (tested against a naive loop).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from numpy.polynomial import chebyshev as npcheb
from torch.func import jvp

from hdnnp.descriptors.base import Descriptor, GroupOutput, PairGeometry, RadialGroup
from hdnnp.descriptors.cutoffs import CutoffFunction
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


def chebyshev_t(x: torch.Tensor, order: int) -> torch.Tensor:
    """T_0(x) … T_order(x) by the recurrence T_{n+1} = 2x T_n - T_{n-1}; shape [..., order+1]."""
    ts = [torch.ones_like(x)]
    if order > 0:
        ts.append(x)
    for _ in range(2, order + 1):
        ts.append(2.0 * x * ts[-1] - ts[-2])
    return torch.stack(ts, dim=-1)


def _multi_indices(order: int) -> list[tuple[int, int, int]]:
    out = []
    for m in range(order + 1):
        for ax in range(m, -1, -1):
            for ay in range(m - ax, -1, -1):
                out.append((ax, ay, m - ax - ay))
    return out


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
        if radial_rc <= 0 or angular_rc <= 0:
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
        self.rad_cols = torch.arange(0, nr)
        self.ang_cols = torch.arange(nr, nr + na)
        self.rad_cols_w = torch.arange(nr + na, 2 * nr + na)
        self.ang_cols_w = torch.arange(2 * nr + na, 2 * (nr + na))
        spin_t = torch.tensor(self.spins, dtype=torch.float64)

        rcut = CutoffFunction("cos", self.radial_rc)
        order, rc = self.radial_order, self.radial_rc

        def radial_fn(r):
            return chebyshev_t(2.0 * r / rc - 1.0, order) * rcut(r).unsqueeze(-1)

        for c in range(n_types):
            outputs = [GroupOutput(self.rad_cols)]
            if self.multi:
                outputs.append(GroupOutput(self.rad_cols_w, spin_t))
            self.radial_groups.append(RadialGroup(center=c, neighbour=None, cutoff=self.radial_rc,
                                                  fn=radial_fn, outputs=outputs))

        # angular moment machinery
        self._acut = CutoffFunction("cos", self.angular_rc)
        alphas = _multi_indices(self.angular_order)
        self._alpha = torch.tensor(alphas, dtype=torch.long)  # [A, 3]
        degree = [sum(a) for a in alphas]
        multinom = [math.factorial(sum(a)) / (math.factorial(a[0]) * math.factorial(a[1])
                                               * math.factorial(a[2])) for a in alphas]
        coeff = np.zeros((na, na))  # a_nm: T_n(x) = sum_m a_nm x^m
        for n in range(na):
            c = npcheb.cheb2poly([0.0] * n + [1.0])
            coeff[n, : len(c)] = c
        # B[n, alpha] = a_{n,|alpha|} * m!/alpha!
        self._b = torch.tensor(
            [[coeff[n, degree[k]] * multinom[k] for k in range(len(alphas))] for n in range(na)],
            dtype=torch.float64)
        self._spin = spin_t

    # ----------------------------------------------------------- angular terms
    def extra_cutoffs(self) -> list[float]:
        return [self.angular_rc]

    def extra_angular_cutoffs(self) -> list[float]:
        return [self.angular_rc]

    def extra_vector_columns(self) -> list[int]:
        cols = self.ang_cols.tolist()
        if self.multi:
            cols += self.ang_cols_w.tolist()
        return cols

    def _angular_pairs(self, geom: PairGeometry) -> torch.Tensor:
        return torch.nonzero(geom.distances < self.angular_rc).squeeze(1)

    def _weighted_monomials(self, d: torch.Tensor):
        """(f_c(r) û^α [P, A], f_c(r)^2 [P]) for pair vectors d."""
        r = torch.linalg.vector_norm(d, dim=-1)
        u = d / r.unsqueeze(-1)
        w = self._acut(r)
        pw = [torch.ones_like(u)]
        for _ in range(self.angular_order):
            pw.append(pw[-1] * u)
        powers = torch.stack(pw, dim=1)  # [P, order+1, 3]
        al = self._alpha.to(d.device)
        mono = powers[:, al[:, 0], 0] * powers[:, al[:, 1], 1] * powers[:, al[:, 2], 2]
        return w.unsqueeze(-1) * mono, w * w

    def _moments(self, geom, pairs, wmono, w2, spin):
        n = geom.n_atoms
        rows = geom.centers[pairs]
        s = spin[geom.neighbour_species[pairs]] if spin is not None else None
        wm = wmono * s.unsqueeze(-1) if s is not None else wmono
        d2 = w2 * s * s if s is not None else w2
        m = torch.zeros(n, wmono.shape[1], dtype=wmono.dtype, device=wmono.device)
        m = m.index_add(0, rows, wm)
        diag = torch.zeros(n, dtype=wmono.dtype, device=wmono.device).index_add(0, rows, d2)
        return m, diag

    def _angular_values(self, m, diag, b):
        # G_n = 1/2 (sum_alpha B[n, alpha] M_alpha^2 - diag)
        return 0.5 * ((m * m) @ b.T - diag.unsqueeze(-1))

    def extra_features(self, geom: PairGeometry) -> torch.Tensor:
        dtype, device = geom.vectors.dtype, geom.vectors.device
        g = torch.zeros(geom.n_atoms, self.max_features, dtype=dtype, device=device)
        pairs = self._angular_pairs(geom)
        if pairs.numel() == 0:
            return g
        wmono, w2 = self._weighted_monomials(geom.vectors[pairs])
        b = self._b.to(dtype=dtype, device=device)
        m, diag = self._moments(geom, pairs, wmono, w2, None)
        g = g.index_copy(1, self.ang_cols.to(device), self._angular_values(m, diag, b))
        if self.multi:
            spin = self._spin.to(dtype=dtype, device=device)
            m, diag = self._moments(geom, pairs, wmono, w2, spin)
            g = g.index_copy(1, self.ang_cols_w.to(device), self._angular_values(m, diag, b))
        return g

    def extra_jacobian(self, geom: PairGeometry, acc) -> torch.Tensor:
        dtype, device = geom.vectors.dtype, geom.vectors.device
        g = torch.zeros(geom.n_atoms, self.max_features, dtype=dtype, device=device)
        pairs = self._angular_pairs(geom)
        if pairs.numel() == 0:
            return g
        d = geom.vectors[pairs]
        wmono, w2 = self._weighted_monomials(d)
        dmono, dw2 = [], []
        for c in range(3):
            e = torch.zeros_like(d)
            e[:, c] = 1.0
            _, (tm, tw) = jvp(self._weighted_monomials, (d,), (e,))
            dmono.append(tm)
            dw2.append(tw)
        dmono = torch.stack(dmono, -1)  # [P, A, 3]
        dw2 = torch.stack(dw2, -1)  # [P, 3]
        b = self._b.to(dtype=dtype, device=device)
        rows = geom.centers[pairs]
        variants = [(None, self.ang_cols)]
        if self.multi:
            variants.append((self._spin.to(dtype=dtype, device=device), self.ang_cols_w))
        for spin, cols in variants:
            m, diag = self._moments(geom, pairs, wmono, w2, spin)
            g = g.index_copy(1, cols.to(device), self._angular_values(m, diag, b))
            s = spin[geom.neighbour_species[pairs]] if spin is not None else torch.ones_like(w2)
            # dG_n/dd_p = s_p sum_alpha B[n,alpha] M_{i alpha} d(w u^alpha)/dd_p - s_p^2 w dw/dd_p
            jac = torch.einsum("na,pac->pnc", b, m[rows].unsqueeze(-1) * dmono)
            jac = jac * s.view(-1, 1, 1)
            jac = jac - 0.5 * (s * s).view(-1, 1, 1) * dw2.unsqueeze(1)
            acc.add_vector(pairs, cols.to(device), jac)
        return g

    # ----------------------------------------------------------- serialisation
    def to_config(self) -> dict:
        return {"kind": self.kind, "elements": list(self.elements),
                "radial_rc": self.radial_rc, "radial_order": self.radial_order,
                "angular_rc": self.angular_rc, "angular_order": self.angular_order,
                "spins": list(self.spins)}

    @classmethod
    def from_config(cls, cfg: dict) -> Chebyshev:
        return cls(cfg["elements"], cfg["radial_rc"], cfg["radial_order"], cfg["angular_rc"],
                   cfg["angular_order"], cfg.get("spins"))
