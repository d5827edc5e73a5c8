"""Spike, Numba: the common spike algorithm (see README.md in this folder).

Pairs are sorted by (centre, neighbour species); kernel 1 fills per-pair caches (r, 1/r,
unit vector, cutoff value and slope, exp(-eta r^2) for every angular eta), kernel 2 walks
each centre's pairs and triplets for the values (mode 0) or the pair gradient (mode 1)."""

from __future__ import annotations

import math
import sys

import numba as nb
import numpy as np
from common import run
from spike_tables import prepare


@nb.njit(cache=True, inline="always", fastmath={"contract"})
def _tanh_pos(x):
    # tanh for x >= 0 from one exp; expm1 where 1 - e^{-2x} would cancel
    if x < 0.01:
        e = math.expm1(2.0 * x)
        return e / (e + 2.0)
    e = math.exp(-2.0 * x)
    return (1.0 - e) / (1.0 + e)


@nb.njit(cache=True, inline="always", fastmath={"contract"})
def _fc(r, rc):
    t = _tanh_pos(1.0 - r / rc) if r < rc else 0.0
    return t * t * t, -3.0 * t * t * (1.0 - t * t) / rc


@nb.njit(cache=True, inline="always", fastmath={"contract"})
def _ipow(x, n):
    out = 1.0
    while n:
        if n & 1:
            out *= x
        n >>= 1
        x *= x
    return out


@nb.njit(parallel=True, cache=True, fastmath={"contract"})
def pair_cache(vec, etas, rc, r, inv_r, u, fc, dfc, ex):
    for p in nb.prange(vec.shape[0]):
        d0, d1, d2 = vec[p, 0], vec[p, 1], vec[p, 2]
        rr = math.sqrt(d0 * d0 + d1 * d1 + d2 * d2)
        r[p] = rr
        ir = 1.0 / rr
        inv_r[p] = ir
        u[p, 0], u[p, 1], u[p, 2] = d0 * ir, d1 * ir, d2 * ir
        fc[p], dfc[p] = _fc(rr, rc)
        for e in range(etas.shape[0]):
            ex[p, e] = math.exp(-etas[e] * rr * rr)


@nb.njit(parallel=True, cache=True, fastmath={"contract"})
def centre_kernel(species, sp_off, ns, r, inv_r, u, fc, dfc, ex, rad, rad_off, etas, gr_off,
                  g_eta, g_lz, lz, terms, rc, g, de_dg, grad, mode):
    n = species.shape[0]
    rc2 = rc * rc
    for i in nb.prange(n):
        c = species[i]
        eloc = np.empty(16)
        aloc = np.empty(16)
        daloc = np.empty(16)
        if mode == 1:
            for p in range(sp_off[i, 0], sp_off[i, ns]):
                grad[p, 0] = 0.0
                grad[p, 1] = 0.0
                grad[p, 2] = 0.0
        # radial
        for s in range(ns):
            k0, k1 = rad_off[c, s], rad_off[c, s + 1]
            for p in range(sp_off[i, s], sp_off[i, s + 1]):
                acc = 0.0
                rp, fp, dfp = r[p], fc[p], dfc[p]
                for k in range(k0, k1):
                    eta, rs, col = rad[k, 0], rad[k, 1], int(rad[k, 2])
                    x = rp - rs
                    e = math.exp(-eta * x * x)
                    if mode == 0:
                        g[i, col] += e * fp
                    else:
                        acc += de_dg[i, col] * e * (dfp - 2.0 * eta * x * fp)
                if mode == 1:
                    grad[p, 0] += acc * u[p, 0]
                    grad[p, 1] += acc * u[p, 1]
                    grad[p, 2] += acc * u[p, 2]
        # angular
        for lo in range(ns):
            for hi in range(lo, ns):
                gi = gr_off[c, lo, hi]
                if gi < 0:
                    continue
                e0, en = g_eta[gi, 0], g_eta[gi, 1]
                l0, ln = g_lz[gi, 0], g_lz[gi, 1]
                t0, t1 = g_lz[gi, 2], g_lz[gi, 3]
                for a in range(sp_off[i, lo], sp_off[i, lo + 1]):
                    ra, ua0, ua1, ua2 = r[a], u[a, 0], u[a, 1], u[a, 2]
                    b0 = a + 1 if lo == hi else sp_off[i, hi]
                    for b in range(b0, sp_off[i, hi + 1]):
                        rb = r[b]
                        cos = ua0 * u[b, 0] + ua1 * u[b, 1] + ua2 * u[b, 2]
                        rjk2 = ra * ra + rb * rb - 2.0 * ra * rb * cos
                        if rjk2 >= rc2:
                            continue
                        rjk = math.sqrt(rjk2)
                        fjk, dfjk = _fc(rjk, rc)
                        fab = fc[a] * fc[b]
                        fcp = fab * fjk
                        for e in range(en):
                            eloc[e] = ex[a, e0 + e] * ex[b, e0 + e] * math.exp(
                                -etas[e0 + e] * rjk2)
                        for q in range(ln):
                            lam, zeta = lz[l0 + q, 0], int(lz[l0 + q, 1])
                            base = 1.0 + lam * cos
                            if base <= 0.0:
                                aloc[q] = 0.0
                                daloc[q] = 0.0
                            else:
                                pz = _ipow(base, zeta - 1)
                                aloc[q] = pz * base
                                daloc[q] = lam * zeta * pz
                        if mode == 0:
                            for t in range(t0, t1):
                                g[i, int(terms[t, 3])] += (terms[t, 2] * aloc[int(terms[t, 1])]
                                                           * eloc[int(terms[t, 0])] * fcp)
                        else:
                            w0, w1, wc = 0.0, 0.0, 0.0
                            for t in range(t0, t1):
                                cc = de_dg[i, int(terms[t, 3])] * terms[t, 2]
                                ee = eloc[int(terms[t, 0])]
                                v = cc * aloc[int(terms[t, 1])] * ee
                                w0 += v
                                w1 += v * etas[e0 + int(terms[t, 0])]
                                wc += cc * daloc[int(terms[t, 1])] * ee
                            da = w0 * dfc[a] * fc[b] * fjk - 2.0 * ra * w1 * fcp
                            db = w0 * fc[a] * dfc[b] * fjk - 2.0 * rb * w1 * fcp
                            djk = (w0 * fab * dfjk - 2.0 * rjk * w1 * fcp) / rjk
                            dc = wc * fcp
                            ia, ib = inv_r[a], inv_r[b]
                            for x in range(3):
                                dx = rb * u[b, x] - ra * u[a, x]  # d_ik - d_ij
                                grad[a, x] += (da * u[a, x] - djk * dx
                                               + dc * (u[b, x] - cos * u[a, x]) * ia)
                                grad[b, x] += (db * u[b, x] + djk * dx
                                               + dc * (u[a, x] - cos * u[b, x]) * ib)


def _caches(t):
    if "r" not in t:
        prepare(t)
        p = t["vec_sorted"].shape[0]
        ne = t["etas"].shape[0]
        t.update(r=np.empty(p), inv_r=np.empty(p), u=np.empty((p, 3)), fc=np.empty(p),
                 dfc=np.empty(p), ex=np.empty((p, ne)))
    pair_cache(t["vec_sorted"], t["etas"], t["rc"], t["r"], t["inv_r"], t["u"], t["fc"],
               t["dfc"], t["ex"])


def _kernel(t, g, de_dg, grad, mode):
    centre_kernel(t["species"], t["sp_off"], 2, t["r"], t["inv_r"], t["u"], t["fc"], t["dfc"],
                  t["ex"], t["rad_t"], t["rad_off"], t["etas"], t["gr_off"], t["g_eta"],
                  t["g_lz"], t["lz"], t["terms"], t["rc"], g, de_dg, grad, mode)


def features(t):
    _caches(t)
    g = np.zeros((t["species"].shape[0], t["nf"]))
    _kernel(t, g, np.zeros((1, 1)), np.zeros((1, 3)), 0)
    return g


def gradient(t, de_dg):
    grad = np.empty_like(t["vec_sorted"])
    _kernel(t, np.zeros((1, 1)), de_dg, grad, 1)
    out = np.empty_like(grad)
    out[t["perm"]] = grad
    return out


if __name__ == "__main__":
    nb.set_num_threads(int(sys.argv[1]) if len(sys.argv) > 1 else 1)
    run(f"numba {nb.get_num_threads()} thread(s)", features, gradient)
