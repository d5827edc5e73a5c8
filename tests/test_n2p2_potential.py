"""n2p2 potential directories: every scaling mode, activation, ``normalize_nodes``,
``element_nodes_short``, data-set normalisation and ``atom_energy`` against an
independent numpy evaluation of n2p2's energy expression; forces by finite differences;
and errors that name file and line for malformed files."""

from __future__ import annotations

import math
from itertools import pairwise

import numpy as np
import pytest
import torch
from ase import Atoms

from hdnnp.errors import HdnnpError, InputFileError, PotentialFileError
from hdnnp.n2p2 import load_n2p2_potential
from hdnnp.neighbours import build_batch
from hdnnp.units import BOHR, HARTREE
from test_n2p2_functions import NP_ACT, _single_thread, np_sf  # noqa: F401 (fixture)

# symmetry functions in the file's units (Bohr), deliberately not in n2p2's order
SFS = [
    "O 9 H H 0.01 -1.0 1.0 7.0",
    "H 2 O 0.3 0.5 7.0",
    "O 12 0.05 0.0 6.5",
    "H 3 O H 0.02 1.0 2.0 7.0",
    "O 2 H 0.2 1.0 7.0",
    "H 2 H 0.1 0.0 7.0",
]
# n2p2's order per element (type, r_c, eta, r_s, zeta, lambda, neighbour indices)
N2P2_ORDER = {
    "H": [{"type": 2, "center": "H", "neighbours": ["H"], "eta": 0.1, "rs": 0.0, "rc": 7.0},
          {"type": 2, "center": "H", "neighbours": ["O"], "eta": 0.3, "rs": 0.5, "rc": 7.0},
          {"type": 3, "center": "H", "neighbours": ["O", "H"], "eta": 0.02, "lambda": 1.0,
           "zeta": 2.0, "rc": 7.0, "rs": 0.0}],
    "O": [{"type": 2, "center": "O", "neighbours": ["H"], "eta": 0.2, "rs": 1.0, "rc": 7.0},
          {"type": 9, "center": "O", "neighbours": ["H", "H"], "eta": 0.01, "lambda": -1.0,
           "zeta": 1.0, "rc": 7.0, "rs": 0.0},
          {"type": 12, "center": "O", "eta": 0.05, "rs": 0.0, "rc": 6.5}],
}
HIDDEN = {"H": [5, 4], "O": [6, 4]}
ATOM_ENERGY = {"H": -0.45, "O": -74.9}
NORM = {"mean_energy": -2.5, "conv_energy": 40.0, "conv_length": 1.7}
SMIN, SMAX = -1.0, 2.0


def make_potential(path, mode, letters, normalize_nodes=False, seed=0):
    """Write a small H/O potential; return the numbers an independent evaluation needs."""
    rng = np.random.default_rng(seed)
    keys = {"none": [], "scale": ["scale_symmetry_functions"],
            "center": ["center_symmetry_functions"],
            "scalecenter": ["scale_symmetry_functions", "center_symmetry_functions"],
            "sigma": ["scale_symmetry_functions_sigma"]}[mode]
    lines = ["# Length unit : Bohr", "# Energy unit : Ha",
             "number_of_elements 2", "elements O H  # order does not matter",
             *(f"{k} {v}" for k, v in NORM.items()),
             *(f"atom_energy {e} {v}" for e, v in ATOM_ENERGY.items()),
             "cutoff_type 6 0.1", *keys, f"scale_min_short {SMIN}", f"scale_max_short {SMAX}",
             "global_hidden_layers_short 2", "global_nodes_short 5 4",
             f"global_activation_short {letters} l", "element_nodes_short O 6 4",
             "epochs 10", "kalman_type 0", "use_short_forces  # training keywords: ignored"]
    if normalize_nodes:
        lines.append("normalize_nodes")
    lines += [f"symfunction_short {s}" for s in SFS]
    (path / "input.nn").write_text("\n".join(lines) + "\n")
    scaling, weights = {}, {}
    rows = ["# e_index sf_index min max mean sigma"]
    for ie, e in enumerate(("H", "O"), start=1):  # n2p2's element order: by atomic number
        n = len(N2P2_ORDER[e])
        lo = rng.uniform(0.0, 0.5, n)
        hi = lo + rng.uniform(0.5, 3.0, n)
        mean = 0.5 * (lo + hi) + rng.uniform(-0.1, 0.1, n)
        sigma = rng.uniform(0.2, 1.0, n)
        scaling[e] = (lo, hi, mean, sigma)
        rows += [f"{ie} {k + 1} {lo[k]:.17g} {hi[k]:.17g} {mean[k]:.17g} {sigma[k]:.17g}"
                 for k in range(n)]
        sizes = [n, *HIDDEN[e], 1]
        layers = [(rng.normal(0, 0.7, (b, a)), rng.normal(0, 0.3, b))
                  for a, b in pairwise(sizes)]
        weights[e] = layers
        values = []
        for w, b in layers:
            values += list(w.T.ravel()) + list(b)
        z = {"H": 1, "O": 8}[e]
        (path / f"weights.{z:03d}.data").write_text(
            "# connection t index\n" + "\n".join(f"{v:24.16E} a 0" for v in values) + "\n")
    (path / "scaling.data").write_text("\n".join(rows) + "\n")
    return {"mode": mode, "letters": letters.split(), "normalize": normalize_nodes,
            "scaling": scaling, "weights": weights}


def numpy_energy(spec, atoms: Atoms) -> float:
    """n2p2's energy (eV) with numpy: SFs in Bohr, scaling, networks, normalisation."""
    bohr_atoms = atoms.copy()
    bohr_atoms.positions = atoms.positions / BOHR
    if atoms.pbc.any():
        bohr_atoms.set_cell(atoms.cell.array / BOHR)
    symbols = atoms.get_chemical_symbols()
    total = 0.0
    for e in ("H", "O"):
        g = np.stack([np_sf(bohr_atoms, f, 6, 0.1) for f in N2P2_ORDER[e]], 1)
        lo, hi, mean, sigma = spec["scaling"][e]
        mode = spec["mode"]
        if mode == "none":
            y = g
        elif mode == "scale":
            y = SMIN + (SMAX - SMIN) / (hi - lo) * (g - lo)
        elif mode == "center":
            y = g - mean
        elif mode == "scalecenter":
            y = SMIN + (SMAX - SMIN) / (hi - lo) * (g - mean)
        else:
            y = SMIN + (SMAX - SMIN) / sigma * (g - mean)
        for i, s in enumerate(symbols):
            if s != e:
                continue
            x = y[i]
            layers = spec["weights"][e]
            for k, (w, b) in enumerate(layers):
                x = w @ x + b
                if spec["normalize"]:
                    x = x / w.shape[1]
                if k < len(layers) - 1:
                    x = NP_ACT[spec["letters"][k]](x)
            total += x[0] / NORM["conv_energy"] + NORM["mean_energy"] + ATOM_ENERGY[e]
    return total * HARTREE


def water_cluster(seed=0, periodic=False) -> Atoms:
    rng = np.random.default_rng(seed)
    pos = []
    while len(pos) < 9:
        p = rng.uniform(0, 4.5, 3)
        if all(np.linalg.norm(p - q) > 0.9 for q in pos):
            pos.append(p)
    atoms = Atoms("OH2OH2OH2", positions=pos)
    if periodic:
        atoms.set_cell([5.2, 5.0, 4.9])
        atoms.pbc = True
    return atoms


CASES = [("none", "t s", False), ("scale", "p g", True), ("center", "c S", False),
         ("scalecenter", "e h", False), ("sigma", "r l", True), ("scalecenter", "t t", True)]


@pytest.mark.parametrize("mode,letters,normalize", CASES)
def test_potential_matches_independent_evaluation(tmp_path, mode, letters, normalize):
    spec = make_potential(tmp_path, mode, letters, normalize)
    model = load_n2p2_potential(tmp_path)
    assert model.elements == ("H", "O")
    assert [n.hidden for n in model.networks.values()] == [[5, 4], [6, 4]]
    for periodic in (False, True):
        atoms = water_cluster(seed=1, periodic=periodic)
        batch = build_batch([atoms], model.elements, model.cutoff)
        out = model(batch, forces=True)
        energy = float(out["energy"][0].detach())
        ref = numpy_energy(spec, atoms)
        assert energy == pytest.approx(ref, rel=1e-12, abs=1e-9)
        # forces: central differences of the model's energy
        forces = out["forces"].detach().numpy()
        h = 1e-5
        for i, c in ((0, 0), (1, 2), (5, 1)):
            e = []
            for sign in (1, -1):
                moved = atoms.copy()
                moved.positions[i, c] += sign * h
                with torch.no_grad():
                    b = build_batch([moved], model.elements, model.cutoff)
                    e.append(float(model(b, forces=False)["energy"][0]))
            assert forces[i, c] == pytest.approx(-(e[0] - e[1]) / (2 * h), abs=1e-6)


def test_scaling_bounds_become_extrapolation_limits(tmp_path):
    spec = make_potential(tmp_path, "scalecenter", "t t")
    model = load_n2p2_potential(tmp_path)
    lo, hi, _, _ = spec["scaling"]["O"]
    np.testing.assert_array_equal(model.networks["O"].feature_min.numpy(), lo)
    np.testing.assert_array_equal(model.networks["O"].feature_max.numpy(), hi)
    assert model.reference_energy_dict()["O"] == pytest.approx(-74.9 * HARTREE)
    assert model.metadata["n2p2"]["scaling"] == "scalecenter"


# ------------------------------------------------------------------- malformed files
def _broken(tmp_path, old: str, new: str):
    make_potential(tmp_path, "scale", "t t")
    p = tmp_path / "input.nn"
    text = p.read_text()
    assert old in text
    p.write_text(text.replace(old, new, 1))
    return text.splitlines().index(next(x for x in text.splitlines() if old in x)) + 1


@pytest.mark.parametrize("old,new,match", [
    ("symfunction_short H 2 O 0.3 0.5 7.0", "symfunction_short H 2 O 0.3 7.0",
     "expected .* fields"),
    ("symfunction_short H 2 O 0.3 0.5 7.0", "symfunction_short H 2 C 0.3 0.5 7.0",
     "element 'C'"),
    ("symfunction_short H 2 O 0.3 0.5 7.0", "symfunction_short H 2 O 0.3 x5 7.0",
     "not a number"),
    ("symfunction_short H 2 O 0.3 0.5 7.0", "symfunction_short H 5 O 0.3 0.5 7.0",
     "unsupported symmetry function type 5"),
    ("epochs 10", "global_symfunction_short 2 0.1 0.0 6.0", "RuNNer"),
    ("epochs 10", "nnp_type 4", "short-range"),
    ("epochs 10", "cutoff_type 1", "repeats the one on line"),
    ("global_activation_short t t l", "global_activation_short t q l", "unknown activation"),
    ("cutoff_type 6 0.1", "cutoff_type 6 1.5", "alpha"),
    ("conv_length 1.7", "# conv_length 1.7", "all or none"),
])
def test_malformed_input_nn_names_file_and_line(tmp_path, old, new, match):
    line = _broken(tmp_path, old, new)
    with pytest.raises(InputFileError, match=match) as info:
        load_n2p2_potential(tmp_path)
    assert info.value.path.endswith("input.nn")
    if "repeats" not in match and "all or none" not in match:
        assert info.value.line == line
    assert f"input.nn, line {info.value.line}" in str(info.value) or info.value.line is None


def test_malformed_scaling_and_weights_files(tmp_path):
    make_potential(tmp_path, "scale", "t t")
    scaling = tmp_path / "scaling.data"
    good = scaling.read_text()
    lines = good.splitlines()
    lines[2] = "1 5 0.1 0.2 0.15 0.1"  # element 1, function 2 expected
    scaling.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputFileError, match="expected element 1, symmetry function 2") as e:
        load_n2p2_potential(tmp_path)
    assert e.value.line == 3 and e.value.path.endswith("scaling.data")
    scaling.write_text("\n".join(good.splitlines()[:-1]) + "\n")
    with pytest.raises(InputFileError, match="too few lines"):
        load_n2p2_potential(tmp_path)
    scaling.write_text(good.replace("1 1 ", "1 1 zero ", 1))
    with pytest.raises(InputFileError, match="not a number"):
        load_n2p2_potential(tmp_path)
    scaling.write_text(good)
    w = tmp_path / "weights.008.data"
    w.write_text("\n".join(w.read_text().splitlines()[:-1]) + "\n")
    with pytest.raises(InputFileError, match="connection values") as e:
        load_n2p2_potential(tmp_path)
    assert e.value.path.endswith("weights.008.data")
    w.unlink()
    with pytest.raises(InputFileError, match="no such file"):
        load_n2p2_potential(tmp_path)


def test_degenerate_scaling_is_an_error(tmp_path):
    make_potential(tmp_path, "scale", "t t")
    scaling = tmp_path / "scaling.data"
    lines = scaling.read_text().splitlines()
    f = lines[1].split()
    lines[1] = " ".join([f[0], f[1], "0.5", "0.5", "0.5", "0.1"])
    scaling.write_text("\n".join(lines) + "\n")
    with pytest.raises(PotentialFileError, match="sf_min == sf_max"):
        load_n2p2_potential(tmp_path)


def test_not_a_directory(tmp_path):
    with pytest.raises(HdnnpError):
        load_n2p2_potential(tmp_path / "missing")
    assert math.isfinite(BOHR)
