"""The compiled descriptor kernels against independent references.

* values of every Gaussian n2p2 function type with every cutoff type 0-8 (and α) against
  the naive loops of ``test_n2p2_functions`` (the compact types 20-25 use no cutoff
  function; they are checked there), periodic and non-periodic, to 1e-10 relative;
* forces and per-atom virials of the kernels' pair gradient against autograd through the
  tensor path (the GPU path, an independent implementation of the same plan) to 1e-10
  relative, for n2p2, Behler and Chebyshev descriptors;
* one and two threads give bit-identical numbers;
* the hand-written vector exponential (arguments ≤ 0) against ``math.exp``.
"""

from __future__ import annotations

import math

import numba
import numpy as np
import pytest
import torch

from hdnnp.descriptors import BehlerParrinello, Chebyshev
from hdnnp.descriptors.cutoffs import N2P2_CUTOFF_TYPES
from hdnnp.descriptors.n2p2 import N2P2SymmetryFunctions
from hdnnp.model import NeuralNetworkPotential
from hdnnp.neighbours import build_batch
from test_n2p2_functions import SF_CASES, cluster, np_sf, periodic

from conftest import rutile, tio2_cluster
from test_descriptors import BEHLER_FUNCTIONS

GAUSSIAN = [f for f in SF_CASES if f["type"] < 20]
STRUCTURES = {"cluster": cluster, "periodic": periodic}


def rel_close(a, b, rtol):
    a, b = np.asarray(a), np.asarray(b)
    scale = max(1.0, float(np.abs(b).max()))
    assert np.abs(a - b).max() <= rtol * scale, np.abs(a - b).max() / scale


@pytest.mark.parametrize("ctype", sorted(N2P2_CUTOFF_TYPES))
@pytest.mark.parametrize("kind", sorted(STRUCTURES))
def test_gaussian_functions_every_cutoff_match_naive_loops(ctype, kind):
    alpha = 0.0 if ctype in (0, 2, 3) else 0.25
    d = N2P2SymmetryFunctions(["H", "O"], GAUSSIAN, cutoff_type=ctype, cutoff_alpha=alpha)
    atoms = STRUCTURES[kind]()
    assert_features_match_naive_loops(d, atoms, ctype, alpha)


def assert_features_match_naive_loops(d, atoms, ctype, alpha):
    """Every feature of ``d`` on ``atoms`` against the naive loops, 1e-10 relative;
    returns the feature matrix."""
    batch = build_batch([atoms], d.elements, d.cutoff)
    g = d(batch).numpy()
    sym = np.array(atoms.get_chemical_symbols())
    for col_el in d.elements:
        rows = sym == col_el
        specs = [f for f in d.functions if f["center"] == col_el]
        assert len(specs) == d.n_features(col_el)
        for c, spec in enumerate(specs):
            rel_close(g[rows, c], np_sf(atoms, spec, ctype, alpha)[rows], 1e-10)
    return g


def model_for(descriptor, seed=0):
    torch.manual_seed(seed)
    return NeuralNetworkPotential(descriptor, hidden=(6, 5), activation="tanh")


DESCRIPTORS = {
    "n2p2-cut1": (lambda: N2P2SymmetryFunctions(["H", "O"], SF_CASES, cutoff_type=1),
                  STRUCTURES),
    "n2p2-cut7": (lambda: N2P2SymmetryFunctions(["H", "O"], SF_CASES, cutoff_type=7,
                                                cutoff_alpha=0.3), STRUCTURES),
    "behler": (lambda: BehlerParrinello(["O", "Ti"], BEHLER_FUNCTIONS),
               {"cluster": tio2_cluster, "periodic": rutile}),
    "chebyshev": (lambda: Chebyshev(["O", "Ti"], radial_rc=5.5, radial_order=8,
                                    angular_rc=4.5, angular_order=5),
                  {"cluster": tio2_cluster, "periodic": rutile}),
}


@pytest.mark.parametrize("name", sorted(DESCRIPTORS))
@pytest.mark.parametrize("kind", ["cluster", "periodic"])
def test_kernel_forces_and_virials_match_tensor_path(name, kind):
    make, structures = DESCRIPTORS[name]
    model = model_for(make())
    atoms = structures[kind]()
    batch = build_batch([atoms], model.elements, model.cutoff)
    out = model(batch, forces=True, stress=True, atomic_virials=True)
    ref = model._forward_autograd(batch, forces=True, stress=True)
    rel_close(out["energy"].numpy(), ref["energy"].detach().numpy(), 1e-12)
    rel_close(out["forces"].numpy(), ref["forces"].detach().numpy(), 1e-10)
    rel_close(out["virial"].numpy(), ref["virial"].detach().numpy(), 1e-10)
    rel_close(out["virials"].sum(0).numpy(), out["virial"][0].numpy(), 1e-12)
    assert float(out["forces"].abs().max()) > 1e-4  # the test can fail


@pytest.mark.parametrize("name", ["n2p2-cut1", "chebyshev"])
def test_one_and_two_threads_are_bit_identical(name):
    make, structures = DESCRIPTORS[name]
    model = model_for(make(), seed=3)
    atoms = structures["periodic"]().repeat((2, 2, 1))
    batch = build_batch([atoms], model.elements, model.cutoff)
    before = numba.get_num_threads()
    results = []
    try:
        for threads in (1, min(2, numba.config.NUMBA_NUM_THREADS)):
            numba.set_num_threads(threads)
            out = model(batch, forces=True, stress=True)
            g, jac = model.descriptor.features_and_jacobian(batch)
            results.append((out["energy"].numpy(), out["forces"].numpy(),
                            out["virial"].numpy(), g.numpy(),
                            jac.pair_gradient(torch.ones_like(g)).numpy()))
    finally:
        numba.set_num_threads(before)
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)


def test_vector_exponential_within_one_ulp():
    from hdnnp.descriptors.kernels import _vexp

    x = np.concatenate([np.linspace(-745.0, 0.0, 20001), -np.logspace(-12, 2.5, 5001),
                        -np.abs(np.random.default_rng(0).normal(scale=30.0, size=5000))])
    out, work = np.empty_like(x), np.empty_like(x)
    _vexp(x, out, x.size, work)
    ref = np.array([math.exp(v) if v > -708.0 else 0.0 for v in x])  # 0 below -708
    ulp = np.spacing(np.maximum(ref, np.finfo(float).tiny))
    assert np.all(np.abs(out - ref) <= 1.0 * ulp + 1e-300)


def test_vector_arccos_within_two_ulp():
    """The vectorised arccos of the compact angular functions against libm, over the three
    ranges of its rational approximation and their borders."""
    from hdnnp.descriptors.kernels import _vacos

    rng = np.random.default_rng(1)
    x = np.concatenate([np.linspace(-1.0, 1.0, 200001), rng.uniform(-1.0, 1.0, 20000),
                        1.0 - np.logspace(-16, -1, 2001), -1.0 + np.logspace(-16, -1, 2001),
                        np.nextafter(0.5, [0.0, 1.0]), np.nextafter(-0.5, [0.0, -1.0]),
                        [0.5, -0.5, 0.0, 1.0, -1.0]])
    out = np.empty_like(x)
    _vacos(x, out, x.size)
    ref = np.array([math.acos(v) for v in x])
    assert np.all(np.abs(out - ref) <= 2.0 * np.spacing(np.maximum(ref, 1e-300)))


def overlapping_windows() -> list[dict]:
    """Compact families as the SCAN-type potentials use them: overlapping radial windows
    and, per neighbour pair, overlapping leg × angular windows (narrow and wide, symmetric
    and asymmetric), so that every triplet is seen by several windows of one group."""
    out = []
    legs = [(0.0, 2.5), (1.2, 3.7), (2.4, 4.4)]
    angles = [(c - 40.0, c + 40.0) if c in (0, 180) else
              (max(c - 40.0, 0.0), min(c + 40.0, 180.0)) for c in range(0, 181, 60)]
    for c in ("H", "O"):
        for n in ("H", "O"):
            for rl in (0.0, 1.0, 2.0, 3.0):
                out.append({"type": 20, "center": c, "neighbours": [n], "rl": rl,
                            "rc": rl + 2.0, "subtype": "p2"})
        for t, sub in ((22, "p2"), (21, "p3a")):
            for a, b in (("H", "H"), ("H", "O"), ("O", "O")):
                for rl, rr in legs:
                    for al, ar in angles:
                        out.append({"type": t, "center": c, "neighbours": [a, b], "rl": rl,
                                    "rc": rr, "angle_left": al, "angle_right": ar,
                                    "subtype": sub})
    return out


@pytest.mark.parametrize("kind", sorted(STRUCTURES))
def test_overlapping_compact_windows_match_naive_loops_and_tensor_path(kind):
    d = N2P2SymmetryFunctions(["H", "O"], overlapping_windows(), cutoff_type=1)
    atoms = STRUCTURES[kind]()
    batch = build_batch([atoms], d.elements, d.cutoff)
    g = assert_features_match_naive_loops(d, atoms, 1, 0.0)
    assert np.count_nonzero(g) > 0.3 * g.size  # the windows see the structure
    model = model_for(d, seed=5)
    out = model(batch, forces=True, stress=True)
    ref = model._forward_autograd(batch, forces=True, stress=True)
    rel_close(out["forces"].numpy(), ref["forces"].detach().numpy(), 1e-10)
    rel_close(out["virial"].numpy(), ref["virial"].detach().numpy(), 1e-10)
    gk, jac = d.features_and_jacobian(batch)
    rel_close(gk.numpy(), g, 1e-12)
    w = torch.from_numpy(np.random.default_rng(0).normal(size=g.shape))
    vec = batch.pair_vectors().clone().requires_grad_(True)
    (expected,) = torch.autograd.grad((d(batch, vec) * w).sum(), vec)  # the tensor path
    rel_close(jac.pair_gradient(w).numpy(), expected.numpy(), 1e-10)


def test_blocks_share_one_triplet_store_and_a_handed_on_block_says_so():
    """Blocks of one evaluate() reuse one store; the earlier block is released when the
    next takes it, and its pair gradient is refused rather than computed from the next
    block's triplets."""
    d = N2P2SymmetryFunctions(["H", "O"], SF_CASES, cutoff_type=1)
    atoms = periodic().repeat((2, 2, 2))
    batch = build_batch([atoms], d.elements, d.cutoff)
    blocks = d.evaluate(batch, budget=2000.0)
    first = next(blocks)
    first_grad = first.pair_gradient(torch.ones_like(first.features))
    second = next(blocks)
    assert second.centres.start == first.centres.stop
    with pytest.raises(RuntimeError, match="released"):
        first.pair_gradient(torch.ones_like(first.features))
    # the same numbers as a block with a store of its own
    alone = next(d.evaluate(batch, budget=2000.0))
    np.testing.assert_array_equal(alone.pair_gradient(torch.ones_like(alone.features)),
                                  first_grad)
    assert float(first_grad.abs().max()) > 0.0


def test_single_kernel_blocks_give_the_same_bits_in_any_block_size(monkeypatch):
    """Energy + forces on the CPU run features, networks and pair gradient in one kernel
    per block (hdnnp.network_kernels), without a triplet store; the block size must not
    change a bit, and such blocks refuse the two-pass pair gradient."""
    from hdnnp.descriptors import engine

    make, structures = DESCRIPTORS["n2p2-cut1"]
    model = model_for(make(), seed=4)
    batch = build_batch([structures["periodic"]().repeat((2, 2, 2))], model.elements,
                        model.cutoff)
    whole = model(batch, forces=True, stress=True)
    monkeypatch.setattr(engine, "BLOCK_TRIPLETS_WITHOUT_STORE", 2000.0)
    assert len(list(model.descriptor.evaluate(batch, first_pass=False))) > 3
    split = model(batch, forces=True, stress=True)
    for key in ("energy", "forces", "virial", "features"):
        np.testing.assert_array_equal(whole[key].numpy(), split[key].numpy(), err_msg=key)
    block = next(model.descriptor.evaluate(batch, first_pass=False))
    with pytest.raises(RuntimeError, match="without its first pass"):
        block.pair_gradient(torch.ones(1, 1))
