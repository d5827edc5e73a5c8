r"""The tensor path of the descriptor engine: the term plan as vectorised torch code.

Evaluates the same :class:`~hdnnp.descriptors.plan.TermPlan` as the compiled kernels, with
one tensor operation per (centre element, neighbour element) bucket of radial records
and per angular group over all of its pairs or triplets, and lets autograd differentiate
it.  It serves three purposes: the GPU path (blocks of centre atoms, so memory stays
bounded), derivatives of higher order (forces that must stay differentiable with respect
to the parameters), and an oracle for the kernels that shares no code with them.

Triplets (i; j, k) of a group are enumerated per centre from the pairs of the group's
elements inside its support, every unordered pair of list entries once; narrow groups
keep :math:`r_{jk} < r_c` only (their terms vanish elsewhere with zero derivative).
Parameters outside an active range are replaced by harmless values before evaluation
("double where") so that no NaN reaches a gradient.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from hdnnp.descriptors.block import DescriptorBlock
from hdnnp.descriptors.cutoffs import N2P2_CUTOFF_TYPES, CutoffFunction, _poly
from hdnnp.neighbours import StructureBatch, segments, triplet_pairs


def _core(code: int, x: torch.Tensor) -> torch.Tensor:
    """Core g(x) of a compact function (kernel subtype code) for 0 <= x < 1."""
    if code >= 10:
        x = (2.0 - x) * x
        code -= 10
    if code == 5:
        return math.e * torch.exp(1.0 / (x * x - 1.0))
    return _poly(f"poly{code}", x)


def compact(x: torch.Tensor, left, right, code: int) -> torch.Tensor:
    """C(x; left, right) (broadcasting), zero outside the open interval (left, right)."""
    centre = 0.5 * (left + right)
    half = 0.5 * (right - left)
    a = (x - centre).abs() / half
    inside = a < 1.0
    a_safe = torch.where(inside, a, torch.zeros_like(a))
    return torch.where(inside, _core(code, a_safe), torch.zeros_like(a))


def _power(base: torch.Tensor, zeta: torch.Tensor) -> torch.Tensor:
    """base**zeta for base >= 0, 0 where base = 0 (no NaN gradient)."""
    pos = base > 0.0
    return torch.where(pos, torch.where(pos, base, torch.ones_like(base)) ** zeta,
                       torch.zeros_like(base))


def _cutoff(plan, k: int) -> CutoffFunction:
    return CutoffFunction(N2P2_CUTOFF_TYPES[int(plan.cut_kind[k])], float(plan.cut_rc[k]),
                          float(plan.cut_alpha[k]))


def _triplets(pc: torch.Tensor, sel_a: torch.Tensor, sel_b: torch.Tensor | None, n: int):
    """Pair-index lists (a, b) of all unordered pairs of list entries with the same centre
    (``sel_b`` None: within ``sel_a``; otherwise one from each), from sorted selections."""
    if sel_b is None:
        ia, ib = triplet_pairs(pc[sel_a], n)
        return sel_a[ia], sel_a[ib]
    if sel_a.numel() == 0 or sel_b.numel() == 0:
        empty = sel_a.new_zeros(0)
        return empty, empty
    ca = pc[sel_a]
    count_b = torch.bincount(pc[sel_b], minlength=n)
    start_b = torch.cumsum(count_b, 0) - count_b
    ia, local = segments(count_b[ca])
    return sel_a[ia], sel_b[start_b[ca][ia] + local]


def _features(descriptor, species: torch.Tensor, pc: torch.Tensor, vectors: torch.Tensor,
              nspec: torch.Tensor) -> torch.Tensor:
    """Features [n, F] of centres with elements ``species``; pair p belongs to centre
    ``pc[p]`` (sorted) and has vector ``vectors[p]`` and neighbour element ``nspec[p]``."""
    plan = descriptor.plan
    S, F = plan.n_species, plan.n_features
    n = species.shape[0]
    dtype, device = vectors.dtype, vectors.device
    g = torch.zeros(n, F, dtype=dtype, device=device)
    if vectors.shape[0] == 0:
        return g
    r = torch.linalg.vector_norm(vectors, dim=-1)
    cs = species[pc]

    def t(x):
        return torch.as_tensor(np.asarray(x), dtype=dtype, device=device)

    def cols(x):
        return torch.as_tensor(np.asarray(x), dtype=torch.long, device=device)

    def scatter(rows, columns, values):
        nonlocal g
        g = g.index_put((rows.unsqueeze(1), columns.unsqueeze(0)), values, accumulate=True)

    # ---------------------------------------------------------------- radial records
    for c in range(S):
        for s in range(S):
            k0, k1 = int(plan.rad_off[c, s]), int(plan.rad_off[c, s + 1])
            if k0 == k1:
                continue
            rmax = float(plan.rad_flt[k0:k1, 3].max())
            with torch.no_grad():
                sel = torch.nonzero((cs == c) & (nspec == s) & (r < rmax)).squeeze(1)
            if sel.numel() == 0:
                continue
            rr, rows = r[sel], pc[sel]
            for k in range(k0, k1):
                kind, arg, col, ncol, col2 = (int(v) for v in plan.rad_int[k])
                q0, q1, w1, _, w2 = (float(v) for v in plan.rad_flt[k])
                if kind == 0:
                    val = (torch.exp(-q0 * (rr - q1) ** 2) * _cutoff(plan, arg)(rr)).unsqueeze(1)
                elif kind == 1:
                    val = (torch.cos(q0 * rr) * _cutoff(plan, arg)(rr)).unsqueeze(1)
                elif kind == 2:
                    val = compact(rr, q0, q1, arg).unsqueeze(1)
                else:
                    x = 2.0 * rr / q0 - 1.0
                    ts = [torch.ones_like(x), x]
                    for _ in range(2, ncol):
                        ts.append(2.0 * x * ts[-1] - ts[-2])
                    val = torch.stack(ts[:ncol], 1) * _cutoff(plan, arg)(rr).unsqueeze(1)
                scatter(rows, cols(range(col, col + ncol)), w1 * val)
                if col2 >= 0:
                    scatter(rows, cols(range(col2, col2 + ncol)), w2 * val)

    # ---------------------------------------------------------------- angular groups
    for c in range(S):
        for lo in range(S):
            for hi in range(lo, S):
                key = (c * S + lo) * S + hi
                for gi in range(int(plan.ang_off[key]), int(plan.ang_off[key + 1])):
                    kind, narrow, cut, e0, en, l0, _, t0, t1, col, col2 = (
                        int(v) for v in plan.grp_int[gi])
                    rmax, w1, rs, w2 = (float(v) for v in plan.grp_flt[gi])
                    with torch.no_grad():
                        inside = (cs == c) & (r < rmax)
                        sel_lo = torch.nonzero(inside & (nspec == lo)).squeeze(1)
                        sel_hi = None if lo == hi else torch.nonzero(inside & (nspec == hi)
                                                                     ).squeeze(1)
                        a, b = _triplets(pc, sel_lo, sel_hi, n)
                        if narrow and a.numel():
                            d = vectors[b].detach() - vectors[a].detach()
                            keep = torch.nonzero((d * d).sum(-1) < rmax * rmax).squeeze(1)
                            a, b = a[keep], b[keep]
                    if a.numel() == 0:
                        continue
                    da, db = vectors[a], vectors[b]
                    ra, rb = r[a], r[b]
                    cos = (da * db).sum(-1) / (ra * rb)
                    rows = pc[a]
                    if kind == 0:
                        ti = plan.term_int[t0:t1]
                        eta_rows = plan.eta_off[c] + e0 + ti[:, 0]
                        eta = t(plan.eta_tab[eta_rows, 0])
                        lam = t(plan.lz_tab[l0 + ti[:, 1], 0])
                        zeta = t(plan.lz_tab[l0 + ti[:, 1], 1])
                        fc = _cutoff(plan, cut)
                        fcp = fc(ra) * fc(rb)
                        s2 = (ra - rs) ** 2 + (rb - rs) ** 2
                        if narrow:
                            rjk = torch.linalg.vector_norm(db - da, dim=-1)
                            fcp = fcp * fc(rjk)
                            s2 = s2 + (rjk - rs) ** 2
                        base = (1.0 + lam * cos.unsqueeze(1)).clamp_min(0.0)
                        val = (t(plan.term_flt[t0:t1]) * _power(base, zeta)
                               * torch.exp(-eta * s2.unsqueeze(1)) * fcp.unsqueeze(1))
                        scatter(rows, cols(ti[:, 2]), val)
                    elif kind == 1:
                        valid = (cos > -1.0) & (cos < 1.0)
                        theta = torch.acos(torch.where(valid, cos, torch.zeros_like(cos)))
                        rjk = torch.linalg.vector_norm(db - da, dim=-1) if narrow else None
                        for k in range(t0, t1):
                            wv, av, tcol, _ = (int(v) for v in plan.term_int[k])
                            w = int(plan.rwin_off[c]) + e0 + wv
                            rl_, rc_ = (float(v) for v in plan.rwin_flt[w])
                            code = int(plan.rwin_int[w])
                            val = compact(ra, rl_, rc_, code) * compact(rb, rl_, rc_, code)
                            if narrow:
                                val = val * compact(rjk, rl_, rc_, code)
                            tl, tr = (float(v) for v in plan.awin_flt[l0 + av])
                            acode = int(plan.awin_int[l0 + av])
                            val = val * compact(theta, tl, tr, acode) * float(plan.term_flt[k])
                            val = torch.where(valid, val, torch.zeros_like(val))
                            scatter(rows, cols([tcol]), val.unsqueeze(1))
                    else:
                        fc = _cutoff(plan, cut)
                        fcp = (fc(ra) * fc(rb)).unsqueeze(1)
                        ts = [torch.ones_like(cos), cos]
                        for _ in range(2, en + 1):
                            ts.append(2.0 * cos * ts[-1] - ts[-2])
                        val = torch.stack(ts[:en + 1], 1) * fcp
                        scatter(rows, cols(range(col, col + en + 1)), w1 * val)
                        if col2 >= 0:
                            scatter(rows, cols(range(col2, col2 + en + 1)), w2 * val)
    return g


def tensor_features(descriptor, batch: StructureBatch, vectors: torch.Tensor) -> torch.Tensor:
    """Features [N, F] of a whole batch by the tensor path (differentiable in ``vectors``)."""
    return _features(descriptor, batch.species, batch.centers, vectors,
                     batch.species[batch.neighbours])


class TensorBlock(DescriptorBlock):
    """A block evaluated by the tensor path; the pair gradient by autograd."""

    def __init__(self, descriptor, batch: StructureBatch, vectors: torch.Tensor,
                 offsets: np.ndarray, i0: int, i1: int):
        p0, p1 = int(offsets[i0]), int(offsets[i1])
        self.centres, self.pairs = slice(i0, i1), slice(p0, p1)
        self._vectors = vectors[p0:p1].detach().clone().requires_grad_(True)
        with torch.enable_grad():
            self._g = _features(descriptor, batch.species[i0:i1], batch.centers[p0:p1] - i0,
                                self._vectors, batch.species[batch.neighbours[p0:p1]])
        self.features = self._g.detach()

    def pair_gradient(self, de_dg: torch.Tensor) -> torch.Tensor:
        if not self._g.requires_grad:
            return torch.zeros_like(self._vectors)
        (grad,) = torch.autograd.grad(self._g, self._vectors, grad_outputs=de_dg.to(self._g),
                                      retain_graph=True)
        return grad
