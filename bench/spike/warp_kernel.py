"""Spike, NVIDIA Warp: the same algorithm as numba_kernel.py (one Warp thread per centre; Warp
kernels have no dynamic local arrays, so the per-triplet factors live in per-centre rows of
a scratch array)."""

from __future__ import annotations

import numpy as np
import warp as wp
from common import run
from spike_tables import prepare

f64 = wp.float64


@wp.func
def tanh_pos(x: f64) -> f64:
    e = wp.exp(f64(-2.0) * x)
    return (f64(1.0) - e) / (f64(1.0) + e)


@wp.func
def fc_val(r: f64, rc: f64) -> f64:
    t = f64(0.0)
    if r < rc:
        t = tanh_pos(f64(1.0) - r / rc)
    return t * t * t


@wp.func
def fc_der(r: f64, rc: f64) -> f64:
    t = f64(0.0)
    if r < rc:
        t = tanh_pos(f64(1.0) - r / rc)
    return f64(-3.0) * t * t * (f64(1.0) - t * t) / rc


@wp.func
def ipow(x: f64, n: int) -> f64:
    out = f64(1.0)
    y = x
    k = n
    while k > 0:
        if k % 2 == 1:
            out = out * y
        k = k // 2
        y = y * y
    return out


@wp.kernel
def pair_cache(vec: wp.array2d(dtype=f64), etas: wp.array(dtype=f64), rc: f64,
               r: wp.array(dtype=f64), inv_r: wp.array(dtype=f64), u: wp.array2d(dtype=f64),
               fc: wp.array(dtype=f64), dfc: wp.array(dtype=f64), ex: wp.array2d(dtype=f64)):
    p = wp.tid()
    d0 = vec[p, 0]
    d1 = vec[p, 1]
    d2 = vec[p, 2]
    rr = wp.sqrt(d0 * d0 + d1 * d1 + d2 * d2)
    r[p] = rr
    ir = f64(1.0) / rr
    inv_r[p] = ir
    u[p, 0] = d0 * ir
    u[p, 1] = d1 * ir
    u[p, 2] = d2 * ir
    fc[p] = fc_val(rr, rc)
    dfc[p] = fc_der(rr, rc)
    for e in range(etas.shape[0]):
        ex[p, e] = wp.exp(-etas[e] * rr * rr)


@wp.kernel
def centre_kernel(species: wp.array(dtype=int), sp_off: wp.array2d(dtype=int), ns: int,
                  r: wp.array(dtype=f64), inv_r: wp.array(dtype=f64), u: wp.array2d(dtype=f64),
                  fc: wp.array(dtype=f64), dfc: wp.array(dtype=f64), ex: wp.array2d(dtype=f64),
                  rad: wp.array2d(dtype=f64), rad_col: wp.array(dtype=int),
                  rad_off: wp.array2d(dtype=int), etas: wp.array(dtype=f64),
                  gr_off: wp.array3d(dtype=int), g_eta: wp.array2d(dtype=int),
                  g_lz: wp.array2d(dtype=int), lz: wp.array2d(dtype=f64),
                  term_i: wp.array2d(dtype=int), term_pref: wp.array(dtype=f64), rc: f64,
                  g: wp.array2d(dtype=f64), de_dg: wp.array2d(dtype=f64),
                  grad: wp.array2d(dtype=f64), scratch: wp.array2d(dtype=f64), mode: int):
    i = wp.tid()
    c = species[i]
    rc2 = rc * rc
    if mode == 1:
        for p in range(sp_off[i, 0], sp_off[i, ns]):
            grad[p, 0] = f64(0.0)
            grad[p, 1] = f64(0.0)
            grad[p, 2] = f64(0.0)
    for s in range(ns):
        k0 = rad_off[c, s]
        k1 = rad_off[c, s + 1]
        for p in range(sp_off[i, s], sp_off[i, s + 1]):
            acc = f64(0.0)
            rp = r[p]
            fp = fc[p]
            dfp = dfc[p]
            for k in range(k0, k1):
                eta = rad[k, 0]
                x = rp - rad[k, 1]
                col = rad_col[k]
                ge = wp.exp(-eta * x * x)
                if mode == 0:
                    g[i, col] = g[i, col] + ge * fp
                else:
                    acc = acc + de_dg[i, col] * ge * (dfp - f64(2.0) * eta * x * fp)
            if mode == 1:
                for x3 in range(3):
                    grad[p, x3] = grad[p, x3] + acc * u[p, x3]
    for lo in range(ns):
        for hi in range(lo, ns):
            gi = gr_off[c, lo, hi]
            if gi < 0:
                continue
            e0 = g_eta[gi, 0]
            en = g_eta[gi, 1]
            l0 = g_lz[gi, 0]
            ln = g_lz[gi, 1]
            t0 = g_lz[gi, 2]
            t1 = g_lz[gi, 3]
            for a in range(sp_off[i, lo], sp_off[i, lo + 1]):
                ra = r[a]
                b0 = sp_off[i, hi]
                if lo == hi:
                    b0 = a + 1
                for b in range(b0, sp_off[i, hi + 1]):
                    rb = r[b]
                    cs = u[a, 0] * u[b, 0] + u[a, 1] * u[b, 1] + u[a, 2] * u[b, 2]
                    rjk2 = ra * ra + rb * rb - f64(2.0) * ra * rb * cs
                    if rjk2 >= rc2:
                        continue
                    rjk = wp.sqrt(rjk2)
                    fjk = fc_val(rjk, rc)
                    dfjk = fc_der(rjk, rc)
                    fab = fc[a] * fc[b]
                    fcp = fab * fjk
                    for e in range(en):
                        scratch[i, e] = ex[a, e0 + e] * ex[b, e0 + e] * wp.exp(
                            -etas[e0 + e] * rjk2)
                    for q in range(ln):
                        lam = lz[l0 + q, 0]
                        zeta = int(lz[l0 + q, 1])
                        base = f64(1.0) + lam * cs
                        if base <= f64(0.0):
                            scratch[i, 16 + q] = f64(0.0)
                            scratch[i, 32 + q] = f64(0.0)
                        else:
                            pz = ipow(base, zeta - 1)
                            scratch[i, 16 + q] = pz * base
                            scratch[i, 32 + q] = lam * f64(float(zeta)) * pz
                    if mode == 0:
                        for t in range(t0, t1):
                            col = term_i[t, 2]
                            g[i, col] = g[i, col] + term_pref[t] * scratch[
                                i, 16 + term_i[t, 1]] * scratch[i, term_i[t, 0]] * fcp
                    else:
                        w0 = f64(0.0)
                        w1 = f64(0.0)
                        wc = f64(0.0)
                        for t in range(t0, t1):
                            cc = de_dg[i, term_i[t, 2]] * term_pref[t]
                            ee = scratch[i, term_i[t, 0]]
                            v = cc * scratch[i, 16 + term_i[t, 1]] * ee
                            w0 = w0 + v
                            w1 = w1 + v * etas[e0 + term_i[t, 0]]
                            wc = wc + cc * scratch[i, 32 + term_i[t, 1]] * ee
                        da = w0 * dfc[a] * fc[b] * fjk - f64(2.0) * ra * w1 * fcp
                        db = w0 * fc[a] * dfc[b] * fjk - f64(2.0) * rb * w1 * fcp
                        djk = (w0 * fab * dfjk - f64(2.0) * rjk * w1 * fcp) / rjk
                        dc = wc * fcp
                        ia = inv_r[a]
                        ib = inv_r[b]
                        for x3 in range(3):
                            dx = rb * u[b, x3] - ra * u[a, x3]
                            grad[a, x3] = grad[a, x3] + (da * u[a, x3] - djk * dx
                                                         + dc * (u[b, x3] - cs * u[a, x3]) * ia)
                            grad[b, x3] = grad[b, x3] + (db * u[b, x3] + djk * dx
                                                         + dc * (u[a, x3] - cs * u[b, x3]) * ib)


def _arr(a, dtype):
    return wp.array(np.ascontiguousarray(a), dtype=dtype, device="cpu")


def _caches(t):
    if "w" not in t:
        prepare(t)
        p = t["vec_sorted"].shape[0]
        n = len(t["species"])
        ne = t["etas"].shape[0]
        w = {"vec": _arr(t["vec_sorted"], f64), "etas": _arr(t["etas"], f64),
             "r": wp.zeros(p, dtype=f64), "inv_r": wp.zeros(p, dtype=f64),
             "u": wp.zeros((p, 3), dtype=f64), "fc": wp.zeros(p, dtype=f64),
             "dfc": wp.zeros(p, dtype=f64), "ex": wp.zeros((p, ne), dtype=f64),
             "species": _arr(t["species"].astype(np.int32), int),
             "sp_off": _arr(t["sp_off"].astype(np.int32), int),
             "rad": _arr(t["rad_t"][:, :2], f64),
             "rad_col": _arr(t["rad_t"][:, 2].astype(np.int32), int),
             "rad_off": _arr(t["rad_off"].astype(np.int32), int),
             "gr_off": _arr(t["gr_off"].astype(np.int32), int),
             "g_eta": _arr(t["g_eta"].astype(np.int32), int),
             "g_lz": _arr(t["g_lz"].astype(np.int32), int), "lz": _arr(t["lz"], f64),
             "term_i": _arr(t["terms"][:, [0, 1, 3]].astype(np.int32), int),
             "term_pref": _arr(t["terms"][:, 2], f64),
             "scratch": wp.zeros((n, 48), dtype=f64)}
        t["w"] = w
    w = t["w"]
    wp.launch(pair_cache, dim=t["vec_sorted"].shape[0], device="cpu",
              inputs=[w["vec"], w["etas"], f64(t["rc"]), w["r"], w["inv_r"], w["u"], w["fc"],
                      w["dfc"], w["ex"]])


def _kernel(t, g, de_dg, grad, mode):
    w = t["w"]
    wp.launch(centre_kernel, dim=len(t["species"]), device="cpu",
              inputs=[w["species"], w["sp_off"], 2, w["r"], w["inv_r"], w["u"], w["fc"],
                      w["dfc"], w["ex"], w["rad"], w["rad_col"], w["rad_off"], w["etas"],
                      w["gr_off"], w["g_eta"], w["g_lz"], w["lz"], w["term_i"],
                      w["term_pref"], f64(t["rc"]), g, de_dg, grad, w["scratch"], mode])


def features(t):
    _caches(t)
    g = wp.zeros((len(t["species"]), t["nf"]), dtype=f64, device="cpu")
    _kernel(t, g, wp.zeros((1, 1), dtype=f64), wp.zeros((1, 3), dtype=f64), 0)
    return g.numpy()


def gradient(t, de_dg):
    grad = wp.zeros(t["vec_sorted"].shape, dtype=f64, device="cpu")
    _kernel(t, wp.zeros((1, 1), dtype=f64), _arr(de_dg, f64), grad, 1)
    out = np.empty(t["vec_sorted"].shape)
    out[t["perm"]] = grad.numpy()
    return out


if __name__ == "__main__":
    wp.config.quiet = True
    wp.init()
    run("warp (cpu)", features, gradient)
