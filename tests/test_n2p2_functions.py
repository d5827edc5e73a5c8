"""n2p2 building blocks against independent evaluations of the published formulas.

Cutoff types 0-8 (with the inner cutoff α), all activations, and every symmetry-function
type (2, 3, 9, 12, 13, 20-25) are compared with straightforward numpy/loop
implementations written here from the n2p2 documentation; derivatives are checked with
central finite differences.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.data import atomic_numbers

from hdnnp.activations import N2P2_ACTIVATIONS, activation
from hdnnp.descriptors import descriptor_from_config
from hdnnp.descriptors.cutoffs import N2P2_CUTOFF_TYPES, CutoffFunction
from hdnnp.descriptors.n2p2 import N2P2SymmetryFunctions
from hdnnp.neighbours import build_batch

E = math.e


@pytest.fixture(autouse=True, scope="module")
def _single_thread():
    """One torch thread: on a shared, busy machine a second thread mostly waits."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


# ----------------------------------------------------------------- references
def np_cutoff(r: float, kind: int, rc: float, alpha: float) -> float:
    """n2p2 cutoff function f_c(r) (n2p2 docs, "Cutoff functions")."""
    if r >= rc:
        return 0.0
    if kind == 0:
        return 1.0
    if kind == 2:
        return math.tanh(1.0 - r / rc) ** 3
    if kind == 3:
        return ((E + 1 / E) / (E - 1 / E)) ** 3 * math.tanh(1.0 - r / rc) ** 3
    rci = alpha * rc
    if r < rci:
        return 1.0
    x = (r - rci) / (rc - rci)
    if kind == 1:
        return 0.5 * (math.cos(math.pi * x) + 1.0)
    if kind == 4:
        return math.exp(1.0 - 1.0 / (1.0 - x * x))
    return np_core(f"p{kind - 4}", x)


def np_core(sub: str, x: float) -> float:
    """Core functions in expanded form, in extended precision (no cancellation error)."""
    if sub != "e":
        x = np.longdouble(x)
    if sub.endswith("a"):
        x = (2.0 - x) * x
        sub = sub[:-1]
    if sub == "p1":
        return float(2 * x**3 - 3 * x**2 + 1)
    if sub == "p2":
        return float(-6 * x**5 + 15 * x**4 - 10 * x**3 + 1)
    if sub == "p3":
        return float(20 * x**7 - 70 * x**6 + 84 * x**5 - 35 * x**4 + 1)
    if sub == "p4":
        return float(-70 * x**9 + 315 * x**8 - 540 * x**7 + 420 * x**6 - 126 * x**5 + 1)
    assert sub == "e"
    return math.exp(1.0 - 1.0 / (1.0 - x * x))


def np_compact(x: float, left: float, right: float, sub: str) -> float:
    c, w = 0.5 * (left + right), 0.5 * (right - left)
    a = abs(x - c) / w
    return np_core(sub, a) if a < 1.0 else 0.0


def neighbour_list(atoms: Atoms, rc: float):
    """All (index, element, vector) within rc of every atom, images by brute force."""
    pos = atoms.get_positions()
    images = [np.zeros(3)]
    if atoms.pbc.any():
        rng = range(-2, 3)
        images = [np.array([a, b, c]) @ atoms.cell.array for a in rng for b in rng for c in rng]
    out = []
    sym = atoms.get_chemical_symbols()
    for i in range(len(atoms)):
        nb = []
        for j in range(len(atoms)):
            for s in images:
                d = pos[j] + s - pos[i]
                r = np.linalg.norm(d)
                if 1e-9 < r < rc:
                    nb.append((sym[j], d))
        out.append(nb)
    return out


def np_sf(atoms: Atoms, f: dict, ctype: int, alpha: float) -> np.ndarray:
    """Symmetry function ``f`` of every atom (0 for atoms of other elements), by loops."""
    t, rc = f["type"], f["rc"]
    z = atomic_numbers
    out = np.zeros(len(atoms))
    nbl = neighbour_list(atoms, rc)
    sym = atoms.get_chemical_symbols()
    for i in range(len(atoms)):
        if sym[i] != f["center"]:
            continue
        nb = nbl[i]
        total = 0.0
        if t in (2, 12, 20, 23):
            for el, d in nb:
                r = np.linalg.norm(d)
                if t in (2, 20) and el != f["neighbours"][0]:
                    continue
                w = z[el] if t in (12, 23) else 1.0
                if t in (2, 12):
                    total += w * math.exp(-f["eta"] * (r - f["rs"]) ** 2) * np_cutoff(
                        r, ctype, rc, alpha)
                else:
                    total += w * np_compact(r, f["rl"], rc, f["subtype"])
        else:
            for j in range(len(nb)):
                for k in range(j + 1, len(nb)):
                    (ej, dj), (ek, dk) = nb[j], nb[k]
                    if t in (3, 9, 21, 22):
                        e1, e2 = f["neighbours"]
                        if not ((ej == e1 and ek == e2) or (ej == e2 and ek == e1)):
                            continue
                    w = z[ej] * z[ek] if t in (13, 24, 25) else 1.0
                    rij, rik = np.linalg.norm(dj), np.linalg.norm(dk)
                    rjk = np.linalg.norm(dk - dj)
                    cos = float(np.dot(dj, dk) / (rij * rik))
                    if t in (3, 9, 13):
                        base = 1.0 + f["lambda"] * cos
                        ang = 2.0 ** (1 - f["zeta"]) * base ** f["zeta"] if base > 0 else 0.0
                        rs = f["rs"]
                        s = (rij - rs) ** 2 + (rik - rs) ** 2
                        fc = np_cutoff(rij, ctype, rc, alpha) * np_cutoff(rik, ctype, rc, alpha)
                        if t in (3, 13):
                            s += (rjk - rs) ** 2
                            fc *= np_cutoff(rjk, ctype, rc, alpha)
                        total += w * ang * math.exp(-f["eta"] * s) * fc
                    else:
                        if abs(cos) >= 1.0:
                            continue
                        theta = math.acos(cos)
                        tl, tr = math.radians(f["angle_left"]), math.radians(f["angle_right"])
                        if not tl <= theta <= tr:
                            continue
                        sub = f["subtype"]
                        rad = np_compact(rij, f["rl"], rc, sub) * np_compact(rik, f["rl"], rc, sub)
                        if t in (21, 24):
                            rad *= np_compact(rjk, f["rl"], rc, sub)
                        total += w * rad * np_compact(theta, tl, tr, sub.rstrip("a"))
        out[i] = total
    return out


# ----------------------------------------------------------------- structures
def cluster(seed=1, n=10, box=4.2, dmin=0.85) -> Atoms:
    rng = np.random.default_rng(seed)
    pos = []
    while len(pos) < n:
        p = rng.uniform(0, box, 3)
        if all(np.linalg.norm(p - q) > dmin for q in pos):
            pos.append(p)
    symbols = ["O" if k % 3 == 0 else "H" for k in range(n)]
    return Atoms(symbols, positions=pos)


def periodic(seed=2) -> Atoms:
    atoms = cluster(seed, n=7, box=4.6, dmin=0.9)
    atoms.set_cell(np.diag([4.7, 4.9, 5.1]) + np.array([[0, 0, 0], [0.4, 0, 0], [0, 0.3, 0]]))
    atoms.pbc = True
    return atoms


SF_CASES = [
    {"type": 2, "center": "H", "neighbours": ["O"], "eta": 0.5, "rs": 1.2, "rc": 4.5},
    {"type": 2, "center": "O", "neighbours": ["H"], "eta": 0.0, "rs": 0.0, "rc": 3.9},
    {"type": 3, "center": "H", "neighbours": ["O", "H"], "eta": 0.1, "lambda": -1.0,
     "zeta": 2.0, "rc": 4.5, "rs": 0.4},
    {"type": 3, "center": "O", "neighbours": ["H", "H"], "eta": 0.05, "lambda": 1.0,
     "zeta": 2.5, "rc": 4.5, "rs": 0.0},
    {"type": 9, "center": "O", "neighbours": ["H", "O"], "eta": 0.2, "lambda": 1.0,
     "zeta": 1.0, "rc": 4.2, "rs": 0.0},
    {"type": 9, "center": "H", "neighbours": ["H", "H"], "eta": 0.03, "lambda": -1.0,
     "zeta": 16.0, "rc": 4.4, "rs": 0.7},
    {"type": 12, "center": "H", "eta": 0.3, "rs": 0.5, "rc": 4.0},
    {"type": 13, "center": "O", "eta": 0.2, "rs": 0.1, "lambda": -1.0, "zeta": 4.0,
     "rc": 4.0},
    {"type": 20, "center": "H", "neighbours": ["H"], "rl": 0.5, "rc": 4.0, "subtype": "p2"},
    {"type": 20, "center": "O", "neighbours": ["H"], "rl": -4.0, "rc": 4.0, "subtype": "p3a"},
    {"type": 20, "center": "H", "neighbours": ["O"], "rl": 1.0, "rc": 3.5, "subtype": "e"},
    {"type": 21, "center": "H", "neighbours": ["O", "H"], "rl": -4.5, "rc": 4.5,
     "angle_left": 0.0, "angle_right": 120.0, "subtype": "p2"},
    {"type": 21, "center": "O", "neighbours": ["H", "H"], "rl": 0.3, "rc": 4.2,
     "angle_left": -60.0, "angle_right": 60.0, "subtype": "p2a"},
    {"type": 22, "center": "O", "neighbours": ["H", "O"], "rl": 1.0, "rc": 4.0,
     "angle_left": 60.0, "angle_right": 180.0, "subtype": "p4"},
    {"type": 22, "center": "H", "neighbours": ["H", "H"], "rl": -4.0, "rc": 4.0,
     "angle_left": 120.0, "angle_right": 240.0, "subtype": "p1"},
    {"type": 23, "center": "O", "rl": 0.5, "rc": 4.0, "subtype": "p1"},
    {"type": 24, "center": "H", "rl": -4.0, "rc": 4.0, "angle_left": 30.0,
     "angle_right": 150.0, "subtype": "e"},
    {"type": 25, "center": "O", "rl": 0.0, "rc": 4.0, "angle_left": 90.0,
     "angle_right": 270.0, "subtype": "p3a"},
]


def _ids(f):
    return f"type{f['type']}-{f['center']}-{f.get('subtype', f.get('zeta', ''))}"


@pytest.mark.parametrize("kind", sorted(N2P2_CUTOFF_TYPES))
@pytest.mark.parametrize("alpha", [0.0, 0.35])
def test_cutoff_functions_match_published_formulas_and_finite_differences(kind, alpha):
    rc = 4.3
    fc = CutoffFunction(N2P2_CUTOFF_TYPES[kind], rc, alpha)
    r = torch.linspace(0.05, 5.0, 397, dtype=torch.float64, requires_grad=True)
    val = fc(r)
    ref = np.array([np_cutoff(float(x), kind, rc, alpha) for x in r.detach()])
    np.testing.assert_allclose(val.detach().numpy(), ref, rtol=1e-13, atol=1e-13)
    if val.requires_grad:
        (grad,) = torch.autograd.grad(val.sum(), r)
    else:  # the hard cutoff is piecewise constant
        grad = torch.zeros_like(r)
    h = 1e-6
    x = r.detach().numpy()
    fd = np.array([(np_cutoff(v + h, kind, rc, alpha) - np_cutoff(v - h, kind, rc, alpha))
                   / (2 * h) for v in x])
    # away from the kinks of the hard cutoff and the inner cutoff
    smooth = (np.abs(x - rc) > 2 * h) & (np.abs(x - alpha * rc) > 2 * h)
    np.testing.assert_allclose(grad.numpy()[smooth], fd[smooth], atol=2e-8)
    assert val[r.detach() >= rc].abs().max() == 0  # vanishes beyond r_c
    if kind not in (0, 2, 3) and alpha > 0:
        assert torch.all(val[r.detach() < alpha * rc] == 1.0)


NP_ACT = {
    "l": lambda x: x, "t": np.tanh, "s": lambda x: 1 / (1 + np.exp(-x)),
    "p": lambda x: np.log(1 + np.exp(x)), "r": lambda x: np.maximum(0.0, x),
    "g": lambda x: np.exp(-0.5 * x * x), "c": np.cos, "S": lambda x: 1 - 1 / (1 + np.exp(-x)),
    "e": lambda x: np.exp(-x), "h": lambda x: x * x,
}


@pytest.mark.parametrize("letter", sorted(N2P2_ACTIVATIONS))
def test_n2p2_activations_match_formulas_and_finite_differences(letter):
    x = torch.linspace(-6.0, 6.0, 241, dtype=torch.float64) + 0.013
    x.requires_grad_(True)
    f = activation(letter)
    y = f(x)
    xn = x.detach().numpy()
    np.testing.assert_allclose(y.detach().numpy(), NP_ACT[letter](xn), rtol=1e-14, atol=1e-15)
    (g,) = torch.autograd.grad(y.sum(), x)
    h = 1e-6
    fd = (NP_ACT[letter](xn + h) - NP_ACT[letter](xn - h)) / (2 * h)
    np.testing.assert_allclose(g.numpy(), fd, atol=1e-8)


def test_softplus_is_exact_where_torch_default_switches_to_linear():
    x = torch.tensor([19.0, 25.0, 34.0, 36.0, -36.0], dtype=torch.float64)
    y = activation("p")(x)
    expect = [math.log1p(math.exp(19.0)), math.log1p(math.exp(25.0)),
              math.log1p(math.exp(34.0)), 36.0, 0.0]
    np.testing.assert_allclose(y.numpy(), expect, rtol=1e-15, atol=0)


# Gaussian types with two cutoff types (one with inner cutoff); compact types need none
SF_RUNS = [(f, 6, 0.2) for f in SF_CASES] + [(f, 2, 0.0) for f in SF_CASES if f["type"] < 20]


@pytest.mark.parametrize("spec,ctype,alpha", SF_RUNS,
                         ids=[f"{_ids(f)}-cut{c}" for f, c, _ in SF_RUNS])
def test_symmetry_functions_match_loop_evaluation(spec, ctype, alpha):
    d = N2P2SymmetryFunctions(["H", "O"], [spec], cutoff_type=ctype, cutoff_alpha=alpha)
    for atoms in (cluster(), periodic()):
        batch = build_batch([atoms], d.elements, d.cutoff)
        g = d(batch)[:, 0].numpy()
        ref = np_sf(atoms, spec, ctype, alpha)
        assert np.abs(ref).max() > 1e-5, "test geometry must give nonzero values"
        np.testing.assert_allclose(g, ref, rtol=1e-12, atol=1e-13)


def test_symmetry_function_derivatives_match_finite_differences():
    d = N2P2SymmetryFunctions(["H", "O"], SF_CASES, cutoff_type=5, cutoff_alpha=0.1)
    rng = np.random.default_rng(5)
    coef = torch.tensor(rng.normal(size=(2, d.max_features)))
    for atoms in (cluster(seed=7), periodic(seed=8)):
        batch = build_batch([atoms], d.elements, d.cutoff)
        w = coef[batch.species]

        def energy(pos, batch=batch, w=w):
            return (d(batch, batch.pair_vectors(positions=pos)) * w).sum()

        pos = batch.positions.clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(energy(pos), pos)
        h = 1e-5
        fd = torch.zeros_like(grad)
        with torch.no_grad():
            for i in (0, 1, 2, 4, 6):  # O and H atoms
                for c in range(3):
                    plus, minus = pos.detach().clone(), pos.detach().clone()
                    plus[i, c] += h
                    minus[i, c] -= h
                    fd[i, c] = (energy(plus) - energy(minus)) / (2 * h)
        rows = [0, 1, 2, 4, 6]
        np.testing.assert_allclose(grad.numpy()[rows], fd.numpy()[rows],
                                   atol=2e-7 * max(1.0, float(grad.abs().max())))


def test_stored_pair_jacobian_agrees_with_autograd():
    """The engine's forward-mode Jacobian sees the same (filtered) triplets."""
    cases = [f for f in SF_CASES if f["type"] in (2, 3, 9, 12, 13, 20, 21, 22, 24)]
    d = N2P2SymmetryFunctions(["H", "O"], cases[::2] + cases[1:2], cutoff_type=1)
    atoms = periodic(seed=3)
    batch = build_batch([atoms], d.elements, d.cutoff)
    g_ref = d(batch)
    g, jac = d.features_and_jacobian(batch)
    np.testing.assert_allclose(g.numpy(), g_ref.numpy(), rtol=1e-13, atol=1e-14)
    de_dg = torch.tensor(np.random.default_rng(1).normal(size=g.shape))
    vec = batch.pair_vectors().requires_grad_(True)
    (de_dd,) = torch.autograd.grad((d(batch, vec) * de_dg).sum(), vec)
    np.testing.assert_allclose(jac.pair_gradient(de_dg).numpy(), de_dd.numpy(), atol=1e-11)


def test_descriptor_config_round_trip_and_feature_order():
    d = N2P2SymmetryFunctions(["H", "O"], SF_CASES, cutoff_type="poly2", cutoff_alpha=0.25)
    d2 = descriptor_from_config(d.to_config())
    assert isinstance(d2, N2P2SymmetryFunctions)
    assert d2.cutoff_type == 6 and d2.cutoff_alpha == 0.25
    assert d2.feature_names == d.feature_names
    atoms = periodic()
    b = build_batch([atoms], d.elements, d.cutoff)
    assert torch.equal(d(b), d2(b))
    # features of each element follow the order of the list
    h_specs = [f for f in SF_CASES if f["center"] == "H"]
    g = d(b)[np.array(atoms.get_chemical_symbols()) == "H"]
    for col, spec in enumerate(h_specs):
        ref = np_sf(atoms, spec, 6, 0.25)[np.array(atoms.get_chemical_symbols()) == "H"]
        np.testing.assert_allclose(g[:, col].numpy(), ref, rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("bad,match", [
    ({"type": 7, "center": "H", "neighbours": ["H"], "eta": 1, "rs": 0, "rc": 4}, "type 7"),
    ({"type": 2, "center": "C", "neighbours": ["H"], "eta": 1, "rs": 0, "rc": 4}, "centre"),
    ({"type": 3, "center": "H", "neighbours": ["H"], "eta": 1, "lambda": 1, "zeta": 1,
      "rc": 4}, "2 neighbour"),
    ({"type": 20, "center": "H", "neighbours": ["H"], "rl": 0, "rc": 4, "subtype": "q2"},
     "subtype"),
    ({"type": 22, "center": "H", "neighbours": ["H", "H"], "rl": 0, "rc": 4,
      "angle_left": -30, "angle_right": 90, "subtype": "p2"}, "centred"),
])
def test_invalid_symmetry_functions_are_rejected(bad, match):
    from hdnnp.errors import HdnnpError

    with pytest.raises(HdnnpError, match=match):
        N2P2SymmetryFunctions(["H", "O"], [bad])
