"""Shared set-up of the kernel-technology spike (bench/spike): the n2p2 water potential's
types 2 and 3 as flat parameter tables, the 1080-atom structure's pair list, and a check
of every candidate against hdnnp's autograd engine."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from hdnnp.n2p2 import load_n2p2_potential
from hdnnp.n2p2.data import read_input_data
from hdnnp.neighbours import build_batch

WATER = Path(__file__).resolve().parents[3] / "shared" / "data" / "n2p2" / "H2O_RPBE-D3"


def tables(model):
    """Radial rows (centre, neighbour, eta, rs, column) and angular rows (centre, a, b, eta,
    lambda, zeta, rs, column) of the water potential; every function shares rc."""
    d = model.descriptor
    idx = {e: k for k, e in enumerate(d.elements)}
    col = {e: 0 for e in d.elements}
    rad, ang = [], []
    for f in d.functions:
        c = idx[f["center"]]
        k = col[f["center"]]
        col[f["center"]] += 1
        nb = sorted(idx[e] for e in f["neighbours"])
        if f["type"] == 2:
            rad.append((c, nb[0], f["eta"], f["rs"], k))
        else:
            ang.append((c, nb[0], nb[1], f["eta"], f["lambda"], f["zeta"], f["rs"], k))
    rc = d.functions[0]["rc"]
    return np.array(rad, dtype=np.float64), np.array(ang, dtype=np.float64), rc


def setup():
    model = load_n2p2_potential(WATER)
    (atoms,) = read_input_data(WATER / "large-1080.data", input_nn=WATER)
    batch = build_batch([atoms], model.elements, model.cutoff)
    vec = batch.pair_vectors().numpy().copy()
    centers = batch.centers.numpy()
    counts = np.bincount(centers, minlength=len(atoms))
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    species = batch.species.numpy().astype(np.int64)
    nspec = species[batch.neighbours.numpy()]
    rad, ang, rc = tables(model)
    return model, batch, dict(species=species, offsets=offsets, vec=vec, nspec=nspec,
                              rad=rad, ang=ang, rc=rc,
                              neighbours=batch.neighbours.numpy().astype(np.int64))


def network_gradient(model, batch, g):
    """Energy and ∂E/∂G of the networks for features g (numpy [N, F])."""
    gt = torch.from_numpy(g).requires_grad_(True)
    e = model.atomic_energies(gt, batch.species)
    (de_dg,) = torch.autograd.grad(e.sum(), gt)
    return float(e.detach().sum()), de_dg.numpy()


def forces(de_dd, centers, neighbours, n):
    f = np.zeros((n, 3))
    np.add.at(f, centers, de_dd)
    np.add.at(f, neighbours, -de_dd)
    return f


def reference(model, batch):
    out = model(batch, forces=True)
    return out["features"].detach().numpy(), out["forces"].detach().numpy()


def run(name, features_fn, gradient_fn, repeats=7):
    """Time features + networks + pair gradient (no neighbour list) and compare."""
    model, batch, t = setup()
    g_ref, f_ref = reference(model, batch)
    n = batch.n_total_atoms
    times = []
    for _ in range(repeats + 1):
        t0 = time.perf_counter()
        g = features_fn(t)
        _, de_dg = network_gradient(model, batch, g)
        de_dd = gradient_fn(t, de_dg)
        times.append(time.perf_counter() - t0)
    f = forces(de_dd, batch.centers.numpy(), t["neighbours"], n)
    err_g = float(np.abs(g - g_ref).max() / np.abs(g_ref).max())
    err_f = float(np.abs(f - f_ref).max())
    med = float(np.median(times[1:]))
    print(f"{name}: {med / n * 1e6:.1f} us/atom (first call {times[0] / n * 1e6:.0f}), "
          f"max rel feature error {err_g:.2e}, max force error {err_f:.2e} eV/A")
    return med / n * 1e6
