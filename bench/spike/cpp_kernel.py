"""Spike, C++/OpenMP through ctypes (compiled here with g++; flags from argv[2])."""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from common import run
from spike_tables import prepare

HERE = Path(__file__).resolve().parent


def build(flags: str) -> ctypes.CDLL:
    so = Path("/tmp") / f"spike_{abs(hash(flags))}.so"
    subprocess.run(f"g++ {flags} -fopenmp -shared -fPIC {HERE / 'cpp_kernel.cpp'} -o {so}",
                   shell=True, check=True)
    return ctypes.CDLL(str(so))


def ptr(a):
    return a.ctypes.data_as(ctypes.c_void_p)


LIB = None


def _caches(t):
    if "r" not in t:
        prepare(t)
        p = t["vec_sorted"].shape[0]
        ne = t["etas"].shape[0]
        t.update(r=np.empty(p), inv_r=np.empty(p), u=np.empty((p, 3)), fc=np.empty(p),
                 dfc=np.empty(p), ex=np.empty((p, ne)))
        for k in ("rad_t", "terms", "lz", "etas"):
            t[k] = np.ascontiguousarray(t[k], dtype=np.float64)
    i64, f64 = ctypes.c_int64, ctypes.c_double
    LIB.pair_cache(i64(t["vec_sorted"].shape[0]), ptr(t["vec_sorted"]),
                   i64(t["etas"].shape[0]), ptr(t["etas"]), f64(t["rc"]), ptr(t["r"]),
                   ptr(t["inv_r"]), ptr(t["u"]), ptr(t["fc"]), ptr(t["dfc"]), ptr(t["ex"]))


def _kernel(t, g, de_dg, grad, mode):
    i64, f64 = ctypes.c_int64, ctypes.c_double
    LIB.centre_kernel(
        i64(len(t["species"])), ptr(t["species"]), ptr(t["sp_off"]), i64(2), ptr(t["r"]),
        ptr(t["inv_r"]), ptr(t["u"]), ptr(t["fc"]), ptr(t["dfc"]), ptr(t["ex"]),
        i64(t["etas"].shape[0]), ptr(t["rad_t"]), ptr(t["rad_off"]), ptr(t["etas"]),
        ptr(t["gr_off"]), ptr(t["g_eta"]), ptr(t["g_lz"]), ptr(t["lz"]), ptr(t["terms"]),
        f64(t["rc"]), i64(t["nf"]), ptr(g), ptr(de_dg), ptr(grad), i64(mode))


def features(t):
    _caches(t)
    g = np.zeros((t["species"].shape[0], t["nf"]))
    _kernel(t, g, np.zeros((1, 1)), np.zeros((1, 3)), 0)
    return g


def gradient(t, de_dg):
    grad = np.empty_like(t["vec_sorted"])
    _kernel(t, np.zeros((1, 1)), np.ascontiguousarray(de_dg), grad, 1)
    out = np.empty_like(grad)
    out[t["perm"]] = grad
    return out


if __name__ == "__main__":
    threads = int(sys.argv[1]) if len(sys.argv) > 1 else 1
    flags = sys.argv[2] if len(sys.argv) > 2 else "-O3 -march=native"
    os.environ["OMP_NUM_THREADS"] = str(threads)
    LIB = build(flags)
    run(f"C++ ({flags}) {threads} thread(s)", features, gradient)
