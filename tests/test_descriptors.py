"""Descriptor values against naive loops, pair Jacobians against autograd."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hdnnp.descriptors import (
    BehlerParrinello,
    Chebyshev,
    CutoffFunction,
    default_behler_functions,
    default_descriptor,
    descriptor_from_config,
)
from hdnnp.descriptors.chebyshev import type_spins
from hdnnp.errors import HdnnpError
from hdnnp.neighbours import build_batch

from conftest import rutile, tio2_cluster
from naive import behler as naive_behler
from naive import chebyshev as naive_chebyshev

ELEMENTS = ["O", "Ti"]

BEHLER_FUNCTIONS = [
    {"type": "G1", "center": "Ti", "neighbours": ["O"], "rc": 4.5},
    {"type": "G2", "center": "Ti", "neighbours": ["O"], "rc": 5.0, "eta": 0.8, "rs": 1.9},
    {"type": "G2", "center": "O", "neighbours": ["Ti"], "rc": 5.0, "eta": 0.3, "rs": 0.0},
    {"type": "G2", "center": "O", "neighbours": ["O"], "rc": 5.5, "eta": 0.5, "rs": 2.5},
    {"type": "G3", "center": "O", "neighbours": ["O"], "rc": 5.0, "kappa": 1.7},
    {"type": "G4", "center": "Ti", "neighbours": ["O", "O"], "rc": 5.0, "eta": 0.01,
     "lambda": 1, "zeta": 2},
    {"type": "G4", "center": "O", "neighbours": ["Ti", "O"], "rc": 4.5, "eta": 0.05,
     "lambda": -1, "zeta": 1},
    {"type": "G5", "center": "Ti", "neighbours": ["Ti", "O"], "rc": 5.5, "eta": 0.02,
     "lambda": -1, "zeta": 4},
    {"type": "G5", "center": "O", "neighbours": ["Ti", "Ti"], "rc": 5.0, "eta": 0.0,
     "lambda": 1, "zeta": 1},
]


def behler_descriptor():
    return BehlerParrinello(ELEMENTS, BEHLER_FUNCTIONS)


def chebyshev_descriptor():
    return Chebyshev(ELEMENTS, radial_rc=5.5, radial_order=8, angular_rc=4.5, angular_order=5)


STRUCTURES = {"periodic": rutile, "cluster": tio2_cluster}


@pytest.mark.parametrize("kind", ["periodic", "cluster"])
def test_behler_matches_naive_loops(kind):
    atoms = STRUCTURES[kind]()
    d = behler_descriptor()
    g = d(build_batch([atoms], ELEMENTS, d.cutoff)).numpy()
    ref = naive_behler(atoms, d.functions, ELEMENTS)
    for i, row in enumerate(ref):
        n = len(row)
        np.testing.assert_allclose(g[i, :n], row, rtol=1e-10, atol=1e-12)
        assert np.all(g[i, n:] == 0)


@pytest.mark.parametrize("kind", ["periodic", "cluster"])
def test_chebyshev_matches_naive_loops(kind):
    atoms = STRUCTURES[kind]()
    d = chebyshev_descriptor()
    g = d(build_batch([atoms], ELEMENTS, d.cutoff)).numpy()
    ref = np.array(naive_chebyshev(atoms, ELEMENTS, 5.5, 8, 4.5, 5, d.spins))
    np.testing.assert_allclose(g, ref, rtol=1e-10, atol=1e-10)


def test_chebyshev_single_species_has_no_weighted_copy():
    from ase.build import bulk

    atoms = bulk("Si", "diamond", a=5.43, cubic=True)
    atoms.rattle(0.05, seed=1)
    d = Chebyshev(["Si"], 5.0, 6, 4.0, 3)
    assert d.n_features("Si") == 7 + 4
    g = d(build_batch([atoms], ["Si"], d.cutoff)).numpy()
    ref = np.array(naive_chebyshev(atoms, ["Si"], 5.0, 6, 4.0, 3, d.spins))
    np.testing.assert_allclose(g, ref, rtol=1e-10, atol=1e-10)


def test_aenet_type_spins():
    assert type_spins(1) == [0.0]
    assert type_spins(2) == [-1.0, 1.0]
    assert type_spins(3) == [-1.0, 0.0, 1.0]
    assert type_spins(4) == [-2.0, -1.0, 1.0, 2.0]


def test_chebyshev_tio2_setup_has_44_features():
    d = Chebyshev(ELEMENTS, 8.0, 16, 6.5, 4)
    assert d.n_features("Ti") == d.n_features("O") == 2 * (17 + 5)


@pytest.mark.parametrize("make", [behler_descriptor, chebyshev_descriptor])
@pytest.mark.parametrize("kind", ["periodic", "cluster"])
def test_pair_jacobian_equals_autograd(make, kind):
    atoms = STRUCTURES[kind]()
    d = make()
    batch = build_batch([atoms, rutile(seed=5)], ELEMENTS, d.cutoff)
    g0, jac = d.features_and_jacobian(batch)
    vec = batch.pair_vectors().clone().requires_grad_(True)
    g = d(batch, vec)
    np.testing.assert_allclose(g0.numpy(), g.detach().numpy(), rtol=1e-12, atol=1e-12)
    w = torch.randn(g.shape, generator=torch.Generator().manual_seed(0), dtype=g.dtype)
    (expected,) = torch.autograd.grad((g * w).sum(), vec)
    got = jac.pair_gradient(w)
    np.testing.assert_allclose(got.numpy(), expected.numpy(), rtol=1e-9, atol=1e-11)


def test_config_round_trip_and_errors():
    for d in (behler_descriptor(), chebyshev_descriptor()):
        d2 = descriptor_from_config(d.to_config())
        assert d2.to_config() == d.to_config()
    with pytest.raises(HdnnpError, match="unknown descriptor kind"):
        descriptor_from_config({"kind": "bessel"})
    with pytest.raises(HdnnpError, match="lambda"):
        BehlerParrinello(["C"], [{"type": "G4", "center": "C", "neighbours": ["C", "C"],
                                  "rc": 5, "eta": 0, "lambda": 0.5, "zeta": 1}])
    with pytest.raises(HdnnpError, match="neighbour element"):
        BehlerParrinello(["C"], [{"type": "G2", "center": "C", "neighbours": ["H"], "rc": 5,
                                  "eta": 1}])


def test_default_generators():
    funcs = default_behler_functions(ELEMENTS, 6.0, n_radial=6, n_angular=4)
    d = BehlerParrinello(ELEMENTS, funcs)
    # 6 G2 per element pair (2 neighbours) + 4 angular per neighbour pair (3 pairs)
    assert d.n_features("O") == 6 * 2 + 4 * 3
    assert max(f["rc"] for f in funcs) == 6.0
    c = default_descriptor("chebyshev", ELEMENTS, 8.0, 8)
    assert (c.radial_order, c.angular_order, c.radial_rc, c.angular_rc) == (16, 4, 8.0, 6.5)
    with pytest.raises(HdnnpError):
        default_descriptor("soap", ELEMENTS, 5.0)


@pytest.mark.parametrize("kind", ["hard", "cos", "tanhu", "tanh", "exp", "poly1", "poly2",
                                  "poly3", "poly4"])
def test_cutoff_functions_vanish_at_rc_and_are_smooth(kind):
    alpha = 0.0 if kind in ("tanhu", "tanh") else 0.2
    fc = CutoffFunction(kind, 5.0, alpha)
    r = torch.linspace(0.01, 6.0, 600, dtype=torch.float64, requires_grad=True)
    f = fc(r)
    if f.requires_grad:  # the hard cutoff is piecewise constant
        (df,) = torch.autograd.grad(f.sum(), r)
        assert torch.isfinite(df).all()
    assert float(f[r.detach() >= 5.0].abs().max()) == 0.0
    if kind != "hard":
        assert float(fc(torch.tensor([4.999999], dtype=torch.float64))) < 1e-4
    if alpha:
        inner = r.detach() < alpha * 5.0
        assert torch.allclose(f[inner], torch.ones_like(f[inner]))
    # cos cutoff with alpha=0 is Behler's 0.5*(cos(pi r/rc)+1)
    c = CutoffFunction("cos", 5.0)
    x = torch.tensor([1.3, 2.5], dtype=torch.float64)
    assert torch.allclose(c(x), 0.5 * (torch.cos(np.pi * x / 5.0) + 1))
