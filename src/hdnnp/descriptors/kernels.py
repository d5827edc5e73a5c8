r"""Compiled kernels of the descriptor engine (Numba, CPU).

Why Numba: measured on the n2p2 water benchmark against a C++/OpenMP extension and NVIDIA
Warp running the same algorithm (``bench/spike``, ``docs/benchmarks.md``), Numba with FMA
contraction came within ~10 % of g++ ``-O3 -march=native`` on one thread and scaled the
same to two, installs from wheels with no compiler on the user's machine and caches its
machine code (``cache=True``); Warp's CPU backend was slower and runs on one thread.

The kernels interpret a :class:`~hdnnp.descriptors.plan.TermPlan` (flat tables of every
radial record and angular group of a descriptor) over one *block*: a set of centre atoms
with their pairs, sorted by centre and then by neighbour element.  Per centre *i*:

1. :func:`pair_cache` computes once per pair the distance, its inverse, the unit vector,
   every cutoff function with its slope, the Gaussians :math:`e^{-\eta (r - r_s)^2}` of the
   centre element's angular groups and the compact radial windows with their slopes;
2. :func:`features` sums the radial terms, then for every angular group enumerates the
   pairs of list entries (a, b) of the right elements (narrow functions keep only
   :math:`r_{jk} < r_c`, without a branch), stores the triplet's expensive factors (cos θ,
   :math:`r_{jk}`, :math:`f_c(r_{jk})`, the Gaussians) in a per-block store, and sums the
   terms;
3. :func:`pair_gradient` walks the stored triplets again and contracts the analytic
   derivative of every term with :math:`c_f = \partial E/\partial G_{if}` into
   :math:`\partial E/\partial\mathbf d_p` of the two pairs: per triplet the terms reduce to
   four scalars

   .. math:: A_{ij} = \sum_f c_f \frac{\partial T_f}{\partial r_{ij}},\;
             A_{ik},\; A_{jk},\; A_{\cos} = \sum_f c_f \frac{\partial T_f}{\partial\cos\theta},

   and one vector step per triplet (:func:`_triplet_vectors`) gives the pair gradients;
4. :func:`jacobian` gives, for training, the features and the derivative of every
   reachable function with respect to every pair vector (one row per pair, columns of the
   centre/neighbour element pair only).

Each centre writes only its own feature row and its own pairs' gradients, so the results
are the same to the last bit for any number of threads.  FMA contraction is the only
fast-math flag (no reassociation).  Lengths in Å.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

_FM = {"contract"}
_jit = nb.njit(cache=True, fastmath=_FM, inline="always")
_kernel = nb.njit(cache=True, fastmath=_FM, parallel=True)
_serial = nb.njit(cache=True, fastmath=_FM)
#: helpers that work on whole rows or groups: compiled once each and called, not inlined
#: (inlining them into every kernel made the first compilation of a fresh install take
#: ~6 minutes; a call per group and centre costs nothing measurable)
_call = nb.njit(cache=True, fastmath=_FM)

# record kinds (see plan.py)
RK_GAUSS, RK_COS, RK_COMPACT, RK_CHEB = 0, 1, 2, 3
AK_GAUSS, AK_COMPACT, AK_CHEB = 0, 1, 2
# n2p2 cutoff type numbers
CUT_HARD, CUT_COS, CUT_TANHU, CUT_TANH, CUT_EXP = 0, 1, 2, 3, 4
_TANH_PRE = ((math.e + 1.0 / math.e) / (math.e - 1.0 / math.e)) ** 3
#: centres per parallel work item
CHUNK = 8


# ------------------------------------------------------------------ elementary functions
@_jit
def _tanh_pos(x):
    """tanh(x) for x >= 0 from one exp (libm's tanh is ~5x slower); expm1 where
    1 - e^{-2x} would cancel."""
    if x < 0.01:
        e = math.expm1(2.0 * x)
        return e / (e + 2.0)
    e = math.exp(-2.0 * x)
    return (1.0 - e) / (1.0 + e)


@_jit
def _poly_core(n, x):
    """Polynomial cores of cutoff types 5-8 (n = 1..4) and their slopes, 0 <= x <= 1."""
    if n == 1:
        return (2.0 * x - 3.0) * x * x + 1.0, (6.0 * x - 6.0) * x
    if n == 2:
        x2 = x * x
        return ((15.0 - 6.0 * x) * x - 10.0) * x2 * x + 1.0, ((60.0 - 30.0 * x) * x - 30.0) * x2
    if n == 3:
        x3 = x * x * x
        return ((x * (x * (20.0 * x - 70.0) + 84.0) - 35.0) * x3 * x + 1.0,
                (x * (x * (140.0 * x - 420.0) + 420.0) - 140.0) * x3)
    x4 = x * x * x * x
    return ((x * (x * ((315.0 - 70.0 * x) * x - 540.0) + 420.0) - 126.0) * x4 * x + 1.0,
            (x * (x * ((2520.0 - 630.0 * x) * x - 3780.0) + 2520.0) - 630.0) * x4)


@_jit
def _exp_core(x):
    """exp(1 - 1/(1 - x^2)) and its slope for 0 <= x < 1 (0 where 1 - x^2 rounds to 0)."""
    t = 1.0 - x * x
    if t <= 0.0:
        return 0.0, 0.0
    f = math.exp(1.0 - 1.0 / t)
    return f, -2.0 * x * f / (t * t)


@_jit
def cutoff(kind, rc, alpha, r):
    """n2p2 cutoff function f_c(r) of type ``kind`` and its slope (see cutoffs.py)."""
    if r >= rc:
        return 0.0, 0.0
    if kind == CUT_HARD:
        return 1.0, 0.0
    if kind == CUT_TANHU or kind == CUT_TANH:
        t = _tanh_pos(1.0 - r / rc)
        pre = _TANH_PRE if kind == CUT_TANH else 1.0
        return pre * t * t * t, -3.0 * pre * t * t * (1.0 - t * t) / rc
    rci = alpha * rc
    if r < rci:
        return 1.0, 0.0
    w = 1.0 / (rc - rci)
    x = (r - rci) * w
    if kind == CUT_COS:
        return 0.5 * (math.cos(math.pi * x) + 1.0), -0.5 * math.pi * w * math.sin(math.pi * x)
    if kind == CUT_EXP:
        f, d = _exp_core(x)
        return f, d * w
    f, d = _poly_core(kind - 4, x)
    return f, d * w


@_jit
def compact(sub, left, right, y):
    """C(y; left, right) of subtype ``sub`` (1-4: p1-p4, 5: e; +10: asymmetric) and
    dC/dy; zero outside the open interval (left, right)."""
    centre = 0.5 * (left + right)
    half = 0.5 * (right - left)
    dy = y - centre
    a = abs(dy) / half
    if a >= 1.0:
        return 0.0, 0.0
    sgn = 1.0 / half if dy >= 0.0 else -1.0 / half
    base = sub % 10
    if sub >= 10:  # asymmetric: x -> (2 - x) x
        da = 2.0 - 2.0 * a
        a = (2.0 - a) * a
        sgn *= da
    if base == 5:
        f, d = _exp_core(a)
    else:
        f, d = _poly_core(base, a)
    return f, d * sgn


@_jit
def _ipow(x, n):
    out = 1.0
    while n:
        if n & 1:
            out *= x
        n >>= 1
        x *= x
    return out


@_jit
def angular_factor(lam, zeta, izeta, cos):
    """(1 + λ cos θ)^ζ and its derivative with respect to cos θ; 0 where 1 + λ cos ≤ 0.
    ``izeta`` > 0: ζ is that integer (repeated multiplication instead of pow)."""
    base = 1.0 + lam * cos
    if base <= 0.0:
        return 0.0, 0.0
    if izeta > 0:
        pz = _ipow(base, izeta - 1)
    else:
        pz = base ** (zeta - 1.0)
    return pz * base, lam * zeta * pz


@_jit
def _chebyshev(x, n, t, dt):
    """T_0..T_n(x) and their derivatives into t, dt (recurrences)."""
    t[0] = 1.0
    dt[0] = 0.0
    if n >= 1:
        t[1] = x
        dt[1] = 1.0
    for k in range(2, n + 1):
        t[k] = 2.0 * x * t[k - 1] - t[k - 2]
        dt[k] = 2.0 * t[k - 1] + 2.0 * x * dt[k - 1] - dt[k - 2]


# ------------------------------------------------------------------ per-pair quantities
@_call
def _compact_capacity(plan, gi, i, lo, hi, sp_off, cw):
    """Triplet-store slots of compact group ``gi`` at centre i: per radial window, the
    pairs of list entries with both legs inside it."""
    col0 = plan.grp_int[gi, 3]
    cap = 0
    for wv in range(plan.grp_int[gi, 4]):
        n_lo = 0
        for p in range(sp_off[i, lo], sp_off[i, lo + 1]):
            n_lo += cw[p, col0 + wv] != 0.0
        if lo == hi:
            cap += n_lo * (n_lo - 1) // 2
        else:
            n_hi = 0
            for p in range(sp_off[i, hi], sp_off[i, hi + 1]):
                n_hi += cw[p, col0 + wv] != 0.0
            cap += n_lo * n_hi
    return cap


@_kernel
def pair_cache(plan, centre_species, pair_offsets, vectors, nspec, r, inv_r, u, fc, dfc, ex,
               cw, dcw, sp_off, capacity):
    """Per-pair caches of a block and, per centre, the triplet-store capacity it needs."""
    n = centre_species.shape[0]
    ns = plan.n_species
    for i in nb.prange(n):
        c = centre_species[i]
        p0, p1 = pair_offsets[i], pair_offsets[i + 1]
        for s in range(ns + 1):
            sp_off[i, s] = p0
        for p in range(p0, p1):
            sp_off[i, nspec[p] + 1] += 1
        for s in range(ns):
            sp_off[i, s + 1] += sp_off[i, s] - p0
        e0, e1 = plan.eta_off[c], plan.eta_off[c + 1]
        w0, w1 = plan.rwin_off[c], plan.rwin_off[c + 1]
        for p in range(p0, p1):
            d0, d1, d2 = vectors[p, 0], vectors[p, 1], vectors[p, 2]
            rr = math.sqrt(d0 * d0 + d1 * d1 + d2 * d2)
            ir = 1.0 / rr
            r[p] = rr
            inv_r[p] = ir
            u[p, 0], u[p, 1], u[p, 2] = d0 * ir, d1 * ir, d2 * ir
            for k in range(plan.cut_kind.shape[0]):
                fc[p, k], dfc[p, k] = cutoff(plan.cut_kind[k], plan.cut_rc[k], plan.cut_alpha[k],
                                             rr)
            for e in range(e0, e1):
                x = rr - plan.eta_tab[e, 1]
                ex[p, e - e0] = math.exp(-plan.eta_tab[e, 0] * x * x)
            for w in range(w0, w1):
                cw[p, w - w0], dcw[p, w - w0] = compact(plan.rwin_int[w], plan.rwin_flt[w, 0],
                                                        plan.rwin_flt[w, 1], rr)
        # triplet store: every group's pairs of list entries inside its support (+1 slack)
        cap = 1
        for lo in range(ns):
            for hi in range(lo, ns):
                key = (c * ns + lo) * ns + hi
                for gi in range(plan.ang_off[key], plan.ang_off[key + 1]):
                    if plan.grp_int[gi, 0] == AK_COMPACT:
                        cap += _compact_capacity(plan, gi, i, lo, hi, sp_off, cw)
                        continue
                    rmax = plan.grp_flt[gi, 0]
                    n_lo = 0
                    for p in range(sp_off[i, lo], sp_off[i, lo + 1]):
                        n_lo += r[p] < rmax
                    if lo == hi:
                        cap += n_lo * (n_lo - 1) // 2
                    else:
                        n_hi = 0
                        for p in range(sp_off[i, hi], sp_off[i, hi + 1]):
                            n_hi += r[p] < rmax
                        cap += n_lo * n_hi
        capacity[i] = cap


# ------------------------------------------------------------------ radial terms
@_jit
def _radial_value(kind, arg, q0, q1, ncol, r, fcv, dfcv, t, dt):
    """Values (t[0..ncol)) and r-derivatives (dt) of one radial record at distance r;
    fcv/dfcv: the pair's cutoff values (indexed by ``arg`` for cutoff-based kinds)."""
    if kind == RK_GAUSS:
        x = r - q1
        e = math.exp(-q0 * x * x)
        f, df = fcv[arg], dfcv[arg]
        t[0] = e * f
        dt[0] = e * (df - 2.0 * q0 * x * f)
    elif kind == RK_COS:
        cs, sn = math.cos(q0 * r), math.sin(q0 * r)
        f, df = fcv[arg], dfcv[arg]
        t[0] = cs * f
        dt[0] = cs * df - q0 * sn * f
    elif kind == RK_COMPACT:
        t[0], dt[0] = compact(arg, q0, q1, r)
    else:  # Chebyshev series T_n(2r/rc - 1) f_c(r)
        f, df = fcv[arg], dfcv[arg]
        _chebyshev(2.0 * r / q0 - 1.0, ncol - 1, t, dt)
        for m in range(ncol):
            dt[m] = dt[m] * (2.0 / q0) * f + t[m] * df
            t[m] = t[m] * f


# ------------------------------------------------------------------ vectorised helpers
_LOG2E = 1.4426950408889634
_LN2_HI = 6.93147180369123816490e-01
_LN2_LO = 1.90821492927058770002e-10
_MAGIC = 6755399441055744.0  # 1.5 * 2**52: adding it rounds to an integer in the mantissa
_MAGIC_BITS = 0x4338000000000000


@_call
def _vexp(x, out, n, work):
    r"""out[:n] = exp(x[:n]) for x ≤ 0, in loops the compiler vectorises.

    Hand-written because Numba's ``math.exp`` is a scalar libm call (the PyPI llvmlite has
    no vector math library) and the Gaussians are the largest cost of most potentials:
    :math:`e^x = 2^k e^r`, :math:`k = \mathrm{round}(x/\ln 2)`, :math:`r = x - k\ln 2`
    (Cody–Waite split of ln 2), :math:`e^r` by its Taylor polynomial of degree 13
    (|r| ≤ ln2/2: truncation 4e-18), :math:`2^k` built in the exponent bits.  Within 1 ulp
    of libm (tested); 0 below -708.
    """
    for t in range(n):
        v = min(max(x[t], -708.0), 0.0)
        y = v * _LOG2E + _MAGIC
        work[t] = y
        k = y - _MAGIC
        r = v - k * _LN2_HI - k * _LN2_LO
        out[t] = 1.0 + r * (1.0 + r * (0.5 + r * (1.6666666666666666e-01 + r * (
            4.1666666666666664e-02 + r * (8.3333333333333332e-03 + r * (
                1.3888888888888889e-03 + r * (1.9841269841269841e-04 + r * (
                    2.4801587301587302e-05 + r * (2.7557319223985893e-06 + r * (
                        2.7557319223985888e-07 + r * (2.5052108385441720e-08 + r * (
                            2.0876756987868100e-09 + r * 1.6059043836821613e-10))))))))))))
    bits = work[:n].view(np.int64)
    for t in range(n):
        bits[t] = (bits[t] - _MAGIC_BITS + 1023) << 52
    for t in range(n):
        out[t] = out[t] * work[t] if x[t] > -708.0 else 0.0


@_call
def _cutoff_rows(kind, rc, alpha, r, f, df, n, w1, w2):
    """f[:n], df[:n] = the cutoff function and its slope at r[:n] (vectorised for the
    tanh types, which need an exp)."""
    if kind == CUT_TANHU or kind == CUT_TANH:
        inv = 1.0 / rc
        pre = _TANH_PRE if kind == CUT_TANH else 1.0
        for t in range(n):
            w1[t] = -2.0 * max(1.0 - r[t] * inv, 0.0)
        _vexp(w1, w2, n, f)
        for t in range(n):
            x = -0.5 * w1[t]
            e = w2[t]
            x2 = x * x
            # tanh from exp(-2x); its series where 1 - e^{-2x} would cancel
            th = ((1.0 - e) / (1.0 + e) if x >= 0.01 else
                  x * (1.0 - x2 * (0.3333333333333333 - x2 * (0.13333333333333333
                                                               - x2 * 0.05396825396825397))))
            th2 = th * th
            f[t] = pre * th2 * th
            df[t] = -3.0 * pre * th2 * (1.0 - th2) * inv
    else:
        for t in range(n):
            f[t], df[t] = cutoff(kind, rc, alpha, r[t])


@_call
def _power_rows(lam, zeta, izeta, cs, a_out, da_out, n, derivative):
    """a_out[:n] = (1 + λ cos)^ζ (0 where 1 + λ cos ≤ 0) and, if ``derivative``, da_out =
    d/dcos; repeated multiplication for the usual integer ζ."""
    for t in range(n):
        base = max(1.0 + lam * cs[t], 0.0)
        if izeta == 1:
            pz = 1.0
        elif izeta == 2:
            pz = base
        elif izeta == 4:
            pz = base * base * base
        elif izeta > 0:
            pz = _ipow(base, izeta - 1)
        else:
            pz = base ** (zeta - 1.0) if base > 0.0 else 0.0
        a_out[t] = pz * base
        if derivative:
            da_out[t] = lam * zeta * pz if base > 0.0 else 0.0


# fdlibm e_acos.c: acos(x) = π/2 - (x + x R(x²)) for |x| < 1/2 and
# 2 (s + s R(z)), z = (1 - |x|)/2, s = √z (π minus that for x < 0) otherwise, R = P/Q
_PIO2_HI = 1.57079632679489655800e+00
_PIO2_LO = 6.12323399573676603587e-17
_PI = 3.14159265358979311600e+00
_PS = (1.66666666666666657415e-01, -3.25565818622400915405e-01, 2.01212532134862925881e-01,
       -4.00555345006794114027e-02, 7.91534994289814532176e-04, 3.47933107596021167570e-05)
_QS = (-2.40339491173441421878e+00, 2.02094576023350569471e+00, -6.88283971605453293030e-01,
       7.70381505559019352791e-02)


@_call
def _vacos(x, out, n):
    r"""out[:n] = arccos(x[:n]) for |x| ≤ 1 in a loop the compiler vectorises (Numba's
    ``math.acos`` is a scalar libm call, ≈ 23 ns, the largest single cost of the compact
    angular functions).  The rational approximation and the three ranges of fdlibm's
    ``__ieee754_acos`` (Sun Microsystems, 1993), both branches computed and one selected;
    the residual :math:`(z - s^2)/(2s)` of the square root replaces fdlibm's split of s.
    Within 2 ulp of libm (tested)."""
    p0, p1, p2, p3, p4, p5 = _PS
    q1, q2, q3, q4 = _QS
    for t in range(n):
        v = x[t]
        av = abs(v)
        small = av < 0.5
        z = v * v if small else (1.0 - av) * 0.5
        pp = z * (p0 + z * (p1 + z * (p2 + z * (p3 + z * (p4 + z * p5)))))
        qq = 1.0 + z * (q1 + z * (q2 + z * (q3 + z * q4)))
        rr = pp / qq
        sq = math.sqrt(z)
        c = (z - sq * sq) / (sq + sq) if sq > 0.0 else 0.0
        w = rr * sq + c
        big = 2.0 * (sq + w) if v > 0.0 else _PI - 2.0 * (sq + (rr * sq - _PIO2_LO))
        out[t] = _PIO2_HI - (v - (_PIO2_LO - v * rr)) if small else big


@_call
def _compact_rows(sub, left, right, y, n, f, df, derivative):
    """f[:n] = C(y[:n]; left, right) of subtype ``sub`` (as :func:`compact`) and, if
    ``derivative``, df = dC/dy, without branches on y for the polynomial subtypes: the
    scaled distance is clamped to 1, where every polynomial core and its slope vanish
    exactly."""
    base = sub % 10
    if base == 5:
        for t in range(n):
            f[t], df[t] = compact(sub, left, right, y[t])
        return
    centre = 0.5 * (left + right)
    half = 0.5 * (right - left)
    asym = sub >= 10
    for t in range(n):
        dy = y[t] - centre
        a = min(abs(dy) / half, 1.0)
        sgn = (1.0 if dy >= 0.0 else -1.0) / half
        if asym:
            sgn *= 2.0 - 2.0 * a
            a = (2.0 - a) * a
        v, d = _poly_core(base, a)
        f[t] = v
        if derivative:
            df[t] = d * sgn


@nb.njit(cache=True, fastmath={"contract", "reassoc"})
def _dot(x, y, n):
    """Σ_t x[t] y[t] (vectorised reduction)."""
    acc = 0.0
    for t in range(n):
        acc += x[t] * y[t]
    return acc


# ------------------------------------------------------------------ angular groups
@_jit
def _store_pair(tidx, tval, k, a, b, ua0, ua1, ua2, ra2, tra, rb, u):
    """Store the list entries (a, b) in slot k with cos θ = û_a·û_b and
    r_jk² = r_a² + r_b² - 2 r_a r_b cos θ (tval rows 0, 1); returns r_jk²."""
    cs = ua0 * u[b, 0] + ua1 * u[b, 1] + ua2 * u[b, 2]
    rjk2 = ra2 + rb * rb - tra * rb * cs
    tidx[0, k] = a
    tidx[1, k] = b
    tval[0, k] = cs
    tval[1, k] = rjk2
    return rjk2


@_call
def _enumerate(plan, gi, i, lo, hi, sp_off, r, u, tidx, tval, slot):
    """Store the pairs of list entries (a, b) of group ``gi`` from ``slot``: both legs inside
    the group's support and, for narrow groups, r_jk < r_max (kept without a branch).
    Writes tidx[0/1] = (a, b) and tval[0/1] = (cos θ, r_jk²); returns the count."""
    rmax = plan.grp_flt[gi, 0]
    rmax2 = rmax * rmax
    wide = plan.grp_int[gi, 1] == 0
    bb0, b1 = sp_off[i, hi], sp_off[i, hi + 1]
    same = lo == hi
    n_t = 0
    for a in range(sp_off[i, lo], sp_off[i, lo + 1]):
        ra = r[a]
        if ra >= rmax:
            continue
        ua0, ua1, ua2 = u[a, 0], u[a, 1], u[a, 2]
        ra2 = ra * ra
        tra = 2.0 * ra
        for b in range(a + 1 if same else bb0, b1):
            rb = r[b]
            rjk2 = _store_pair(tidx, tval, slot + n_t, a, b, ua0, ua1, ua2, ra2, tra, rb, u)
            n_t += (rb < rmax) & (wide | (rjk2 < rmax2))
    return n_t


@_call
def _enumerate_compact(plan, gi, i, lo, hi, sp_off, win_base, cw, r, u, tidx, tval, slot,
                       lst):
    """Window-major store of compact group ``gi``: for each radial window, the pairs of
    list entries (a, b) with both legs inside it (narrow: and r_jk below its right edge),
    so that a triplet is visited only by the functions that can see it.  Writes
    tidx[0/1] = (a, b), tval[0/1] = (cos θ, r_jk²) and tval[3] = the window's first term
    (terms are sorted by radial window, then by angular window); returns the count."""
    col0 = plan.grp_int[gi, 3]
    wide = plan.grp_int[gi, 1] == 0
    same = lo == hi
    k0 = plan.grp_int[gi, 7]
    n_t = 0
    for wv in range(plan.grp_int[gi, 4]):
        col = col0 + wv
        while plan.term_int[k0, 0] != wv:
            k0 = plan.term_int[k0, 3]
        right = plan.rwin_flt[win_base + col, 1]
        right2 = right * right
        n_a = 0
        for a in range(sp_off[i, lo], sp_off[i, lo + 1]):
            if cw[a, col] != 0.0:
                lst[n_a] = a
                n_a += 1
        n_b = n_a
        if not same:
            for b in range(sp_off[i, hi], sp_off[i, hi + 1]):
                if cw[b, col] != 0.0:
                    lst[n_b] = b
                    n_b += 1
        for x in range(n_a):
            a = lst[x]
            ra = r[a]
            ua0, ua1, ua2 = u[a, 0], u[a, 1], u[a, 2]
            ra2 = ra * ra
            tra = 2.0 * ra
            for y in range(x + 1 if same else n_a, n_b):
                b = lst[y]
                rjk2 = _store_pair(tidx, tval, slot + n_t, a, b, ua0, ua1, ua2, ra2, tra, r[b],
                                   u)
                tval[3, slot + n_t] = k0
                n_t += wide | (rjk2 < right2)
    return n_t


@_jit
def _pair_vectors(out, oa, ob, a, b, ra, rb, ia, ib, u, cos, djk, dra, drb, dcos):
    r"""Add the gradient of a triplet term with respect to d_a = d_ij (at out[oa:oa+3]) and
    d_b = d_ik (at out[ob:ob+3]):

    .. math::
        \frac{\partial}{\partial\mathbf d_{ij}} = A_{ij}\hat u_{ij}
            - A_{jk}\,\frac{\mathbf d_{ik} - \mathbf d_{ij}}{r_{jk}}
            + A_{\cos}\frac{\hat u_{ik} - \cos\theta\,\hat u_{ij}}{r_{ij}}

    and j ↔ k with :math:`+A_{jk}`; ``djk`` is :math:`A_{jk}/r_{jk}`.
    """
    for x in range(3):
        ua, ub = u[a, x], u[b, x]
        dx = rb * ub - ra * ua
        out[oa + x] += dra * ua - djk * dx + dcos * ia * (ub - cos * ua)
        out[ob + x] += drb * ub + djk * dx + dcos * ib * (ua - cos * ub)


@_call
def _gauss_fill(plan, gi, eta_base, fc, ex, tidx, tval, s0, n, work):
    """Pass 1 store of a Gaussian group's triplets (vectorised phases): r_jk, f_c(r_jk) and
    its slope (narrow groups), and every Gaussian E_e = e^{-η_e[(r_ij-r_s)^2 + (r_ik-r_s)^2
    (+ (r_jk-r_s)^2)]} (the leg factors come from the pair cache)."""
    narrow = plan.grp_int[gi, 1] != 0
    cut = plan.grp_int[gi, 2]
    e0, en = plan.grp_int[gi, 3], plan.grp_int[gi, 4]
    rs = plan.grp_flt[gi, 2]
    ia, ib = tidx[0, s0:s0 + n], tidx[1, s0:s0 + n]
    rjk = tval[1, s0:s0 + n]
    w0, w1 = work[0], work[1]
    if narrow:
        for t in range(n):
            rjk[t] = math.sqrt(rjk[t])
        _cutoff_rows(plan.cut_kind[cut], plan.cut_rc[cut], plan.cut_alpha[cut], rjk,
                     tval[2, s0:s0 + n], tval[3, s0:s0 + n], n, w0, w1)
    for e in range(en):
        ev = tval[4 + e, s0:s0 + n]
        if narrow:
            eta = plan.eta_tab[eta_base + e0 + e, 0]
            for t in range(n):
                x = rjk[t] - rs
                w0[t] = -eta * x * x
            _vexp(w0, ev, n, w1)
            for t in range(n):
                ev[t] *= ex[ia[t], e0 + e] * ex[ib[t], e0 + e]
        else:
            for t in range(n):
                ev[t] = ex[ia[t], e0 + e] * ex[ib[t], e0 + e]


@_call
def _gauss_values(plan, gi, fc, tidx, tval, s0, n, g_row, work):
    """Pass 1 sums of a Gaussian group: G_f += pref_f Σ_t A_q(t) E_e(t) f_c f_c (f_c)."""
    narrow = plan.grp_int[gi, 1] != 0
    cut = plan.grp_int[gi, 2]
    l0, ln = plan.grp_int[gi, 5], plan.grp_int[gi, 6]
    t0, t1 = plan.grp_int[gi, 7], plan.grp_int[gi, 8]
    ia, ib = tidx[0, s0:s0 + n], tidx[1, s0:s0 + n]
    fcp = work[0]
    for t in range(n):
        fcp[t] = fc[ia[t], cut] * fc[ib[t], cut]
    if narrow:
        fjk = tval[2, s0:s0 + n]
        for t in range(n):
            fcp[t] *= fjk[t]
    cs = tval[0, s0:s0 + n]
    for q in range(ln):
        aq = work[2 + q]
        _power_rows(plan.lz_tab[l0 + q, 0], plan.lz_tab[l0 + q, 1], int(plan.lz_tab[l0 + q, 2]),
                    cs, aq, aq, n, False)
        for t in range(n):
            aq[t] *= fcp[t]
    for k in range(t0, t1):
        g_row[plan.term_int[k, 2]] += plan.term_flt[k] * _dot(
            work[2 + plan.term_int[k, 1]], tval[4 + plan.term_int[k, 0], s0:s0 + n], n)


@_call
def _gauss_gradient(plan, gi, eta_base, fc, dfc, r, inv_r, u, tidx, tval, s0, n, coef, grad,
                    work):
    """Pass 2 of a Gaussian group: per triplet W0 = Σ_f c_f A E, W1 = Σ_f c_f η_f A E,
    Wc = Σ_f c_f A' E (vectorised over triplets), then the four scalar derivatives and
    the pair vectors."""
    narrow = plan.grp_int[gi, 1] != 0
    cut = plan.grp_int[gi, 2]
    e0 = plan.grp_int[gi, 3]
    l0, ln = plan.grp_int[gi, 5], plan.grp_int[gi, 6]
    t0, t1 = plan.grp_int[gi, 7], plan.grp_int[gi, 8]
    rs = plan.grp_flt[gi, 2]
    cs = tval[0, s0:s0 + n]
    w_0, w_1, w_c = work[0], work[1], work[2]
    for t in range(n):
        w_0[t] = 0.0
        w_1[t] = 0.0
        w_c[t] = 0.0
    for q in range(ln):
        _power_rows(plan.lz_tab[l0 + q, 0], plan.lz_tab[l0 + q, 1], int(plan.lz_tab[l0 + q, 2]),
                    cs, work[3 + 2 * q], work[4 + 2 * q], n, True)
    for k in range(t0, t1):
        ck = coef[k - t0]
        if ck == 0.0:
            continue
        e = plan.term_int[k, 0]
        cke = ck * plan.eta_tab[eta_base + e0 + e, 0]
        aq, daq = work[3 + 2 * plan.term_int[k, 1]], work[4 + 2 * plan.term_int[k, 1]]
        ev = tval[4 + e, s0:s0 + n]
        for t in range(n):
            v = aq[t] * ev[t]
            w_0[t] += ck * v
            w_1[t] += cke * v
            w_c[t] += ck * daq[t] * ev[t]
    for t in range(n):
        a, b = tidx[0, s0 + t], tidx[1, s0 + t]
        ra, rb = r[a], r[b]
        fa, fb, dfa, dfb = fc[a, cut], fc[b, cut], dfc[a, cut], dfc[b, cut]
        w0, w1 = w_0[t], w_1[t]
        fab = fa * fb
        djk = 0.0
        if narrow:
            rjk, fjk, dfjk = tval[1, s0 + t], tval[2, s0 + t], tval[3, s0 + t]
            fcp = fab * fjk
            dra = w0 * dfa * fb * fjk - 2.0 * (ra - rs) * w1 * fcp
            drb = w0 * fa * dfb * fjk - 2.0 * (rb - rs) * w1 * fcp
            djk = (w0 * fab * dfjk - 2.0 * (rjk - rs) * w1 * fcp) / rjk
        else:
            fcp = fab
            dra = w0 * dfa * fb - 2.0 * (ra - rs) * w1 * fcp
            drb = w0 * fa * dfb - 2.0 * (rb - rs) * w1 * fcp
        _pair_vectors(grad, 3 * a, 3 * b, a, b, ra, rb, inv_r[a], inv_r[b], u, cs[t], djk, dra,
                      drb, w_c[t] * fcp)


@_call
def _enumerate_any(plan, gi, c, i, lo, hi, sp_off, cw, r, u, tidx, tval, slot, lst):
    """Store group ``gi``'s triplets of centre i (compact groups window-major)."""
    if plan.grp_int[gi, 0] == AK_COMPACT:
        return _enumerate_compact(plan, gi, i, lo, hi, sp_off, plan.rwin_off[c], cw, r, u, tidx,
                                  tval, slot, lst)
    return _enumerate(plan, gi, i, lo, hi, sp_off, r, u, tidx, tval, slot)


@_jit
def _compact_triplet(plan, gi, win_base, cw, dcw, tval, t, a, b):
    """θ (radians; -1 where |cos θ| = 1: no contribution, as in n2p2) and r_jk of stored
    triplet t (written to its store), the first and past-the-last term of its radial
    window, and that window at both legs and (narrow) at r_jk with slopes (the training
    Jacobian's per-triplet path; the force path does this vectorised in
    :func:`_compact_values`)."""
    narrow = plan.grp_int[gi, 1]
    cs = tval[0, t]
    theta = tval[2, t] = math.acos(cs) if -1.0 < cs < 1.0 else -1.0
    rjk = tval[1, t] = math.sqrt(tval[1, t]) if narrow else 0.0
    k = int(tval[3, t])
    col = plan.grp_int[gi, 3] + plan.term_int[k, 0]
    ya, yb, dya, dyb = cw[a, col], cw[b, col], dcw[a, col], dcw[b, col]
    yjk, dyjk = 1.0, 0.0
    if narrow:
        w = win_base + col
        yjk, dyjk = compact(plan.rwin_int[w], plan.rwin_flt[w, 0], plan.rwin_flt[w, 1], rjk)
    return theta, rjk, k, plan.term_int[k, 3], ya, yb, dya, dyb, yjk, dyjk


@_jit
def _angular_window(plan, gi, kk, theta):
    """(stop, C(θ), dC/dθ) of term kk's angular window: stop where θ lies left of it (the
    later terms of a radial window have windows further right)."""
    w = plan.grp_int[gi, 5] + plan.term_int[kk, 1]
    left, right = plan.awin_flt[w, 0], plan.awin_flt[w, 1]
    if theta <= left:
        return True, 0.0, 0.0
    if theta >= right:
        return False, 0.0, 0.0
    v, d = compact(plan.awin_int[w], left, right, theta)
    return False, v, d


@_jit
def _segment_end(tval, s0, s, n):
    """End of the run of stored triplets from s that share one radial window."""
    e = s + 1
    while e < n and tval[3, s0 + e] == tval[3, s0 + s]:
        e += 1
    return e


@_call
def _compact_values(plan, gi, win_base, cw, tidx, tval, s0, n, g_row, work):
    """Pass 1 of a compact group (vectorised over each radial window's contiguous run of
    triplets): θ by :func:`_vacos`, the radial product C(r_ij) C(r_ik) (C(r_jk)), then
    per term G_f += w_f Σ_t C_a(θ_t) × product."""
    narrow = plan.grp_int[gi, 1] != 0
    col0, l0 = plan.grp_int[gi, 3], plan.grp_int[gi, 5]
    cs, rjk, th = tval[0, s0:s0 + n], tval[1, s0:s0 + n], tval[2, s0:s0 + n]
    _vacos(cs, th, n)
    for t in range(n):
        if not -1.0 < cs[t] < 1.0:
            th[t] = -1.0
        rjk[t] = math.sqrt(rjk[t]) if narrow else 0.0
    prod, av, unused = work[0], work[1], work[2]
    s = 0
    while s < n:
        e = _segment_end(tval, s0, s, n)
        k0 = int(tval[3, s0 + s])
        col = col0 + plan.term_int[k0, 0]
        w = win_base + col
        for t in range(s, e):
            y = cw[tidx[0, s0 + t], col] * cw[tidx[1, s0 + t], col]
            if narrow:
                y *= compact(plan.rwin_int[w], plan.rwin_flt[w, 0], plan.rwin_flt[w, 1], rjk[t])[0]
            prod[t - s] = y if th[t] >= 0.0 else 0.0
        for kk in range(k0, plan.term_int[k0, 3]):
            q = l0 + plan.term_int[kk, 1]
            _compact_rows(plan.awin_int[q], plan.awin_flt[q, 0], plan.awin_flt[q, 1], th[s:e],
                          e - s, av, unused, False)
            g_row[plan.term_int[kk, 2]] += plan.term_flt[kk] * _dot(prod, av, e - s)
        s = e


@_call
def _compact_gradient(plan, gi, win_base, cw, dcw, r, inv_r, u, tidx, tval, s0, n, coef, grad,
                      work):
    """Pass 2 of a compact group: per radial-window run W_a = Σ_f c_f C_a(θ) and W_θ =
    Σ_f c_f C_a'(θ) (vectorised), then per triplet the four scalar derivatives and the pair
    vectors."""
    narrow = plan.grp_int[gi, 1] != 0
    col0, l0, t0 = plan.grp_int[gi, 3], plan.grp_int[gi, 5], plan.grp_int[gi, 7]
    th = tval[2, s0:s0 + n]
    wa, wd, av, dav = work[0], work[1], work[2], work[3]
    s = 0
    while s < n:
        e = _segment_end(tval, s0, s, n)
        m = e - s
        k0 = int(tval[3, s0 + s])
        col = col0 + plan.term_int[k0, 0]
        w = win_base + col
        for t in range(m):
            wa[t] = 0.0
            wd[t] = 0.0
        for kk in range(k0, plan.term_int[k0, 3]):
            ck = coef[kk - t0]
            if ck == 0.0:
                continue
            q = l0 + plan.term_int[kk, 1]
            _compact_rows(plan.awin_int[q], plan.awin_flt[q, 0], plan.awin_flt[q, 1], th[s:e], m,
                          av, dav, True)
            for t in range(m):
                wa[t] += ck * av[t]
                wd[t] += ck * dav[t]
        for t in range(s, e):
            s_a, s_d = wa[t - s], wd[t - s]
            if th[t] < 0.0 or (s_a == 0.0 and s_d == 0.0):
                continue
            a, b = tidx[0, s0 + t], tidx[1, s0 + t]
            ya, yb, dya, dyb = cw[a, col], cw[b, col], dcw[a, col], dcw[b, col]
            yjk, dyjk, rjk = 1.0, 0.0, 1.0
            if narrow:
                rjk = tval[1, s0 + t]
                yjk, dyjk = compact(plan.rwin_int[w], plan.rwin_flt[w, 0], plan.rwin_flt[w, 1],
                                    rjk)
            if ya * yb == 0.0 or (yjk == 0.0 and dyjk == 0.0):
                continue
            cs = tval[0, s0 + t]
            _pair_vectors(grad, 3 * a, 3 * b, a, b, r[a], r[b], inv_r[a], inv_r[b], u, cs,
                          s_a * ya * yb * dyjk / rjk, s_a * dya * yb * yjk, s_a * ya * dyb * yjk,
                          -s_d * ya * yb * yjk / math.sqrt(1.0 - cs * cs))
        s = e


@_call
def _group_values(plan, gi, eta_base, win_base, fc, ex, cw, tidx, tval, slot, n_t, g_row,
                  t_buf, dt_buf, work):
    """Pass 1 of group ``gi``: feature sums over its stored triplets; fills the store."""
    kind = plan.grp_int[gi, 0]
    if kind == AK_GAUSS:
        _gauss_fill(plan, gi, eta_base, fc, ex, tidx, tval, slot, n_t, work)
        _gauss_values(plan, gi, fc, tidx, tval, slot, n_t, g_row, work)
        return
    if kind == AK_COMPACT:
        _compact_values(plan, gi, win_base, cw, tidx, tval, slot, n_t, g_row, work)
        return
    # Chebyshev T_n(cos θ) f_c(r_ij) f_c(r_ik), plain and species-weighted copies
    cut, order = plan.grp_int[gi, 2], plan.grp_int[gi, 4]
    col, col2 = plan.grp_int[gi, 9], plan.grp_int[gi, 10]
    for t in range(slot, slot + n_t):
        a, b = tidx[0, t], tidx[1, t]
        fcp = fc[a, cut] * fc[b, cut]
        _chebyshev(tval[0, t], order, t_buf, dt_buf)
        w1, w2 = plan.grp_flt[gi, 1] * fcp, plan.grp_flt[gi, 3] * fcp
        for m in range(order + 1):
            g_row[col + m] += w1 * t_buf[m]
            if col2 >= 0:
                g_row[col2 + m] += w2 * t_buf[m]


@_call
def _group_coefficients(plan, gi, c_row, coef):
    """c_f × prefactor of every term of group ``gi`` (Chebyshev: per order, both copies);
    False if all vanish."""
    any_c = False
    if plan.grp_int[gi, 0] == AK_CHEB:
        order = plan.grp_int[gi, 4]
        col, col2 = plan.grp_int[gi, 9], plan.grp_int[gi, 10]
        for m in range(order + 1):
            coef[m] = plan.grp_flt[gi, 1] * c_row[col + m]
            if col2 >= 0:
                coef[m] += plan.grp_flt[gi, 3] * c_row[col2 + m]
            any_c |= coef[m] != 0.0
    else:
        t0, t1 = plan.grp_int[gi, 7], plan.grp_int[gi, 8]
        for k in range(t0, t1):
            coef[k - t0] = c_row[plan.term_int[k, 2]] * plan.term_flt[k]
            any_c |= coef[k - t0] != 0.0
    return any_c


@_call
def _group_gradient(plan, gi, eta_base, win_base, fc, dfc, cw, dcw, r, inv_r, u, tidx, tval,
                    slot, n_t, c_row, grad, coef, t_buf, dt_buf, work):
    """Pass 2 of group ``gi``: the terms' derivatives contracted with c_row = ∂E/∂G_i, added
    to the pair gradients (flat [3 P]) of its stored triplets."""
    kind = plan.grp_int[gi, 0]
    if not _group_coefficients(plan, gi, c_row, coef):
        return
    if kind == AK_GAUSS:
        _gauss_gradient(plan, gi, eta_base, fc, dfc, r, inv_r, u, tidx, tval, slot, n_t, coef,
                        grad, work)
        return
    if kind == AK_COMPACT:
        _compact_gradient(plan, gi, win_base, cw, dcw, r, inv_r, u, tidx, tval, slot, n_t, coef,
                          grad, work)
        return
    cut, order = plan.grp_int[gi, 2], plan.grp_int[gi, 4]  # Chebyshev
    for t in range(slot, slot + n_t):
        a, b = tidx[0, t], tidx[1, t]
        cs = tval[0, t]
        _chebyshev(cs, order, t_buf, dt_buf)
        sv = 0.0
        sd = 0.0
        for m in range(order + 1):
            sv += coef[m] * t_buf[m]
            sd += coef[m] * dt_buf[m]
        fa, fb = fc[a, cut], fc[b, cut]
        _pair_vectors(grad, 3 * a, 3 * b, a, b, r[a], r[b], inv_r[a], inv_r[b], u, cs, 0.0,
                      sv * dfc[a, cut] * fb, sv * fa * dfc[b, cut], sd * fa * fb)


@_call
def _group_jacobian(plan, gi, c, eta_base, win_base, fc, dfc, ex, cw, dcw, r, inv_r, u, nspec,
                    tidx, tval, slot, n_t, g_row, jv, jv_off, a_loc, da_loc, t_buf, dt_buf,
                    work):
    """Values and per-function pair-vector derivatives of group ``gi`` (training)."""
    kind = plan.grp_int[gi, 0]
    t0, t1 = plan.grp_int[gi, 7], plan.grp_int[gi, 8]
    rs = plan.grp_flt[gi, 2]
    e0, cut = plan.grp_int[gi, 3], plan.grp_int[gi, 2]
    l0, ln = plan.grp_int[gi, 5], plan.grp_int[gi, 6]
    narrow = plan.grp_int[gi, 1] != 0
    ns = plan.n_species
    if kind == AK_GAUSS:
        _gauss_fill(plan, gi, eta_base, fc, ex, tidx, tval, slot, n_t, work)
        _gauss_values(plan, gi, fc, tidx, tval, slot, n_t, g_row, work)
    for t in range(slot, slot + n_t):
        a, b = tidx[0, t], tidx[1, t]
        cs = tval[0, t]
        ra, rb, ia, ib = r[a], r[b], inv_r[a], inv_r[b]
        pos_a = plan.vcol_pos[c * ns + nspec[a]]
        pos_b = plan.vcol_pos[c * ns + nspec[b]]
        oa, ob = jv_off[a], jv_off[b]
        if kind == AK_GAUSS:
            fa, fb, dfa, dfb = fc[a, cut], fc[b, cut], dfc[a, cut], dfc[b, cut]
            fjk, dfjk, rjk = 1.0, 0.0, 1.0
            if narrow:
                rjk, fjk, dfjk = tval[1, t], tval[2, t], tval[3, t]
            fab = fa * fb
            fcp = fab * fjk
            for q in range(ln):
                a_loc[q], da_loc[q] = angular_factor(plan.lz_tab[l0 + q, 0],
                                                     plan.lz_tab[l0 + q, 1],
                                                     int(plan.lz_tab[l0 + q, 2]), cs)
            for k in range(t0, t1):
                col = plan.term_int[k, 2]
                eta = plan.eta_tab[eta_base + e0 + plan.term_int[k, 0], 0]
                pe = plan.term_flt[k] * tval[4 + plan.term_int[k, 0], t]
                v = pe * a_loc[plan.term_int[k, 1]]
                dra = v * (dfa * fb * fjk - 2.0 * eta * (ra - rs) * fcp)
                drb = v * (fa * dfb * fjk - 2.0 * eta * (rb - rs) * fcp)
                djk = v * (fab * dfjk - 2.0 * eta * (rjk - rs) * fcp) / rjk if narrow else 0.0
                _pair_vectors(jv, oa + 3 * pos_a[col], ob + 3 * pos_b[col], a, b, ra, rb, ia, ib,
                              u, cs, djk, dra, drb, pe * da_loc[plan.term_int[k, 1]] * fcp)
        elif kind == AK_COMPACT:
            theta, rjk, k, nxt, ya, yb, dya, dyb, yjk, dyjk = _compact_triplet(
                plan, gi, win_base, cw, dcw, tval, t, a, b)
            if theta < 0.0 or ya * yb == 0.0 or (yjk == 0.0 and dyjk == 0.0):
                continue
            dth_dcos = -1.0 / math.sqrt(1.0 - cs * cs)
            for kk in range(k, nxt):
                stop, av, dav = _angular_window(plan, gi, kk, theta)
                if stop:
                    break
                if av == 0.0 and dav == 0.0:
                    continue
                col = plan.term_int[kk, 2]
                av *= plan.term_flt[kk]
                dav *= plan.term_flt[kk]
                g_row[col] += av * ya * yb * yjk
                djk = av * ya * yb * dyjk / rjk if dyjk != 0.0 else 0.0
                _pair_vectors(jv, oa + 3 * pos_a[col], ob + 3 * pos_b[col], a, b, ra, rb, ia,
                              ib, u, cs, djk, av * dya * yb * yjk, av * ya * dyb * yjk,
                              dav * ya * yb * yjk * dth_dcos)
        else:
            order = plan.grp_int[gi, 4]
            _chebyshev(cs, order, t_buf, dt_buf)
            fa, fb, dfa, dfb = fc[a, cut], fc[b, cut], dfc[a, cut], dfc[b, cut]
            for copy in range(2):
                col = plan.grp_int[gi, 9 + copy]
                if col < 0:
                    continue
                w = plan.grp_flt[gi, 1 + 2 * copy]
                for m in range(order + 1):
                    tv = w * t_buf[m]
                    g_row[col + m] += tv * fa * fb
                    _pair_vectors(jv, oa + 3 * pos_a[col + m], ob + 3 * pos_b[col + m], a, b, ra,
                                  rb, ia, ib, u, cs, 0.0, tv * dfa * fb, tv * fa * dfb,
                                  w * dt_buf[m] * fa * fb)


# ------------------------------------------------------------------ passes
@_call
def _chunk_scratch(plan, tstart, chunk, n):
    """Per-work-item scratch: small per-group vectors and rows as long as the largest
    triplet store of its centres."""
    cap = 1
    for i in range(chunk * CHUNK, min(n, (chunk + 1) * CHUNK)):
        cap = max(cap, tstart[i + 1] - tstart[i])
    return np.empty((5, plan.max_local)), np.empty((4 + 2 * plan.max_lz, cap))


@_call
def _chunk_list(sp_off, chunk, n):
    """Per-work-item list of pair indices as long as the largest pair list of its
    centres."""
    m = 1
    for i in range(chunk * CHUNK, min(n, (chunk + 1) * CHUNK)):
        m = max(m, sp_off[i, sp_off.shape[1] - 1] - sp_off[i, 0])
    return np.empty(m, dtype=np.int64)


@_call
def _radial_pass(plan, i, c, sp_off, r, u, fc, dfc, buf, g_row, c_row, coef, grad, jr, jr_off,
                 mode):
    """Radial records of centre i: values (mode 0), gradient into ``grad`` (1), or values
    and ∂G/∂r into the Jacobian rows ``jr`` (2)."""
    ns = plan.n_species
    for s in range(ns):
        pos = plan.rcol_pos[c * ns + s]
        for k in range(plan.rad_off[c, s], plan.rad_off[c, s + 1]):
            ncol, col, col2 = plan.rad_int[k, 3], plan.rad_int[k, 2], plan.rad_int[k, 4]
            w1, w2, rmax = plan.rad_flt[k, 2], plan.rad_flt[k, 4], plan.rad_flt[k, 3]
            if mode == 1:
                any_c = False
                for m in range(ncol):
                    coef[m] = w1 * c_row[col + m] + (w2 * c_row[col2 + m] if col2 >= 0 else 0.0)
                    any_c |= coef[m] != 0.0
                if not any_c:
                    continue
            for p in range(sp_off[i, s], sp_off[i, s + 1]):
                if r[p] >= rmax:
                    continue
                _radial_value(plan.rad_int[k, 0], plan.rad_int[k, 1], plan.rad_flt[k, 0],
                              plan.rad_flt[k, 1], ncol, r[p], fc[p], dfc[p], buf[0], buf[1])
                if mode == 1:
                    acc = 0.0
                    for m in range(ncol):
                        acc += coef[m] * buf[1, m]
                    for x in range(3):
                        grad[3 * p + x] += acc * u[p, x]
                    continue
                for m in range(ncol):
                    g_row[col + m] += w1 * buf[0, m]
                    if col2 >= 0:
                        g_row[col2 + m] += w2 * buf[0, m]
                    if mode == 2:
                        jr[jr_off[p] + pos[col + m]] += w1 * buf[1, m]
                        if col2 >= 0:
                            jr[jr_off[p] + pos[col2 + m]] += w2 * buf[1, m]


@_call
def centre_features(plan, i, c, sp_off, r, u, fc, dfc, ex, cw, tidx, tval, slot, counts, lst,
                    g_row, buf, work, no_f, no_i):
    """Pass 1 of centre i (element c): its radial sums, then every angular group's
    triplets stored from ``slot`` on (their numbers into ``counts``) and summed, into
    ``g_row``.  ``buf``, ``work``, ``lst`` are scratch (:func:`_chunk_scratch`,
    :func:`_chunk_list`); ``no_f``, ``no_i`` empty arrays."""
    ns = plan.n_species
    _radial_pass(plan, i, c, sp_off, r, u, fc, dfc, buf, g_row, no_f, no_f, no_f, no_f, no_i, 0)
    kg = 0
    for lo in range(ns):
        for hi in range(lo, ns):
            key = (c * ns + lo) * ns + hi
            for gi in range(plan.ang_off[key], plan.ang_off[key + 1]):
                n_t = _enumerate_any(plan, gi, c, i, lo, hi, sp_off, cw, r, u, tidx, tval, slot,
                                     lst)
                _group_values(plan, gi, plan.eta_off[c], plan.rwin_off[c], fc, ex, cw, tidx,
                              tval, slot, n_t, g_row, buf[0], buf[1], work)
                counts[kg] = n_t
                slot += n_t
                kg += 1


@_call
def centre_gradient(plan, i, c, sp_off, r, inv_r, u, fc, dfc, cw, dcw, tidx, tval, slot, counts,
                    c_row, grad, coef, buf, work, no_f, no_i):
    """Pass 2 of centre i: ∂E/∂d_p of its pairs (overwritten in the flat ``grad``) from
    c_row = ∂E/∂G_i and the triplets :func:`centre_features` stored from ``slot`` on."""
    ns = plan.n_species
    for p in range(3 * sp_off[i, 0], 3 * sp_off[i, ns]):
        grad[p] = 0.0
    _radial_pass(plan, i, c, sp_off, r, u, fc, dfc, buf, no_f, c_row, coef, grad, no_f, no_i, 1)
    kg = 0
    for lo in range(ns):
        for hi in range(lo, ns):
            key = (c * ns + lo) * ns + hi
            for gi in range(plan.ang_off[key], plan.ang_off[key + 1]):
                n_t = counts[kg]
                _group_gradient(plan, gi, plan.eta_off[c], plan.rwin_off[c], fc, dfc, cw, dcw, r,
                                inv_r, u, tidx, tval, slot, n_t, c_row, grad, coef, buf[0],
                                buf[1], work)
                slot += n_t
                kg += 1


@_kernel
def features(plan, centre_species, r, u, fc, dfc, ex, cw, dcw, sp_off, tstart, tidx, tval,
             tcount, g):
    """Pass 1: feature rows g [n_centres, F] (zeroed by the caller) and the triplet store
    (per centre from ``tstart``; ``tcount[i, k]`` triplets of its k-th angular group)."""
    n = centre_species.shape[0]
    no_f = np.zeros(0)
    no_i = np.zeros(0, dtype=np.int64)
    for chunk in nb.prange((n + CHUNK - 1) // CHUNK):
        buf, work = _chunk_scratch(plan, tstart, chunk, n)
        lst = _chunk_list(sp_off, chunk, n)
        for i in range(chunk * CHUNK, min(n, (chunk + 1) * CHUNK)):
            centre_features(plan, i, centre_species[i], sp_off, r, u, fc, dfc, ex, cw, tidx,
                            tval, tstart[i], tcount[i], lst, g[i], buf, work, no_f, no_i)


@_kernel
def pair_gradient(plan, centre_species, r, inv_r, u, fc, dfc, ex, cw, dcw, sp_off, tstart,
                  tidx, tval, tcount, de_dg, grad):
    """Pass 2: ∂E/∂d_p (flat [3 P], overwritten) from c = ∂E/∂G [n_centres, F]."""
    n = centre_species.shape[0]
    no_f = np.zeros(0)
    no_i = np.zeros(0, dtype=np.int64)
    for chunk in nb.prange((n + CHUNK - 1) // CHUNK):
        buf, work = _chunk_scratch(plan, tstart, chunk, n)
        coef = np.empty(plan.max_local)
        for i in range(chunk * CHUNK, min(n, (chunk + 1) * CHUNK)):
            centre_gradient(plan, i, centre_species[i], sp_off, r, inv_r, u, fc, dfc, cw, dcw,
                            tidx, tval, tstart[i], tcount[i], de_dg[i], grad, coef, buf, work,
                            no_f, no_i)


@_kernel
def jacobian(plan, centre_species, nspec, r, inv_r, u, fc, dfc, ex, cw, dcw, sp_off, tstart,
             tidx, tval, g, jr, jr_off, jv, jv_off):
    """Features g and the pair Jacobian for training: for pair p (neighbour element s of a
    centre of element c), ``jr[jr_off[p] + k]`` is ∂G/∂r_p of the k-th radial column the
    element pair reaches and ``jv[jv_off[p] + 3 k : +3]`` the full ∂G/∂d_p of its k-th
    angular column (rows zeroed by the caller; jv_off = -1: no angular row)."""
    n = centre_species.shape[0]
    ns = plan.n_species
    no_f = np.zeros(0)
    for chunk in nb.prange((n + CHUNK - 1) // CHUNK):
        buf, work = _chunk_scratch(plan, tstart, chunk, n)
        lst = _chunk_list(sp_off, chunk, n)
        for i in range(chunk * CHUNK, min(n, (chunk + 1) * CHUNK)):
            c = centre_species[i]
            g_row = g[i]
            _radial_pass(plan, i, c, sp_off, r, u, fc, dfc, buf, g_row, no_f, no_f, no_f, jr,
                         jr_off, 2)
            slot = tstart[i]
            for lo in range(ns):
                for hi in range(lo, ns):
                    key = (c * ns + lo) * ns + hi
                    for gi in range(plan.ang_off[key], plan.ang_off[key + 1]):
                        n_t = _enumerate_any(plan, gi, c, i, lo, hi, sp_off, cw, r, u, tidx,
                                             tval, slot, lst)
                        _group_jacobian(plan, gi, c, plan.eta_off[c], plan.rwin_off[c], fc, dfc,
                                        ex, cw, dcw, r, inv_r, u, nspec, tidx, tval, slot, n_t,
                                        g_row, jv, jv_off, buf[2], buf[3], buf[0], buf[1], work)
                        slot += n_t


# ------------------------------------------------------------------ assembly
@_kernel
def pair_vectors(positions, cells, structure_index, centres, neighbours, shifts, out):
    """out[p] = x_j - x_i + S_p h (Å) for every pair p = (i, j), in parallel over pairs."""
    for p in nb.prange(centres.shape[0]):
        i, j = centres[p], neighbours[p]
        s = structure_index[i]
        s0, s1, s2 = shifts[p, 0], shifts[p, 1], shifts[p, 2]
        for x in range(3):
            out[p, x] = (positions[j, x] - positions[i, x]) + (
                s0 * cells[s, 0, x] + s1 * cells[s, 1, x] + s2 * cells[s, 2, x])


@_serial
def scatter_pair_gradient(de_dd, pair_centres, neighbours, pair_structure, vectors, forces,
                          virial):
    """Forces F_a -= Σ_{p: i(p)=a} g_p ... (F = -∂E/∂x with d_p = x_j - x_i + S h):
    F_i += g_p, F_j -= g_p; and the per-structure strain derivative Σ_p g_p ⊗ d_p
    (``virial`` may be empty).  Serial, so the sums have one fixed order."""
    want_virial = virial.shape[0] > 0
    for p in range(de_dd.shape[0]):
        i, j = pair_centres[p], neighbours[p]
        for x in range(3):
            forces[i, x] += de_dd[p, x]
            forces[j, x] -= de_dd[p, x]
        if want_virial:
            s = pair_structure[p]
            for x in range(3):
                for y in range(3):
                    virial[s, x, y] += de_dd[p, x] * vectors[p, y]
