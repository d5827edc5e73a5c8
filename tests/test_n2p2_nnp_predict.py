"""hdnnp's n2p2 export checked by n2p2 itself: ``nnp-predict`` (libnnp, the library behind
LAMMPS ``pair_style hdnnp``) on exported potentials gives hdnnp's energies (≤ 1e-6
eV/atom) and forces (≤ 1e-5 eV/Å).

Covered: Behler G1/G2/G4/G5 and every n2p2 type hdnnp has (2, 3, 9, 12, 13, 20–25, all
compact subtypes), n2p2 cutoff types 0–8 (with inner cutoff α where n2p2 uses it), every
n2p2 activation, one and two elements, periodic (triclinic, cell shorter than the cutoff)
and non-periodic structures, files in Å/eV and in Bohr/Hartree, a common output scale
(``mean_energy``/``conv_energy``) and per-element ones (folded into the output layer),
elements with different hidden widths, the sigma scaling of ``scaling.data`` with the
statistics of real features, a committee member exported with ``hdnnp export --member``
and a briefly trained model.  Weights are random but fixed (seeded) and large enough that
every layer matters.

n2p2 is built from ``../shared/tools/n2p2`` by :func:`peer_tools.peer_bin` (skipped with the
build's reason where that is impossible).  ``nnp-predict 0`` run in a directory with
``input.nn``, ``scaling.data``, ``weights.ZZZ.data`` and a one-structure ``input.data``
writes ``energy.out`` (column 4: the NNP energy including the ``atom_energy`` offsets) and
``nnforces.out`` (columns 6–8: the forces), both in the units of the files
(n2p2 ``src/application/nnp-predict.cpp``, ``Prediction::predict``).
"""

from __future__ import annotations

import math
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import molecule
from ase.spacegroup import crystal

from hdnnp.descriptors import SymmetryFunctions
from hdnnp.model import AtomicNetwork, NeuralNetworkPotential
from hdnnp.n2p2 import export_n2p2_potential
from hdnnp.n2p2.data import write_input_data
from hdnnp.neighbours import build_batch
from hdnnp.predict import predict_structures
from hdnnp.units import energy_factor, length_factor
from peer_tools import peer_bin
from test_n2p2_functions import _single_thread  # noqa: F401 (autouse fixture)

#: Acceptance tolerances (issue 12): energy per atom, force components.
E_TOL = 1e-6  # eV/atom
F_TOL = 1e-5  # eV/Å


# ------------------------------------------------------------------ structures
def tio2(seed=0, repeat=(2, 2, 2)) -> Atoms:
    """Rutile TiO2 (6 atoms a cell), sheared to a triclinic cell and rattled.

    Repeated 2×2×2 (48 atoms) no atom sees its own periodic image within the cutoffs
    (≤ 5.5 Å, plane spacings ≥ 5.9 Å); ``repeat=(1, 1, 1)`` gives a cell shorter than the
    cutoff, where this n2p2 computes the energy right but not the forces (see
    :func:`test_cell_shorter_than_the_cutoff`)."""
    atoms = crystal(["Ti", "O"], basis=[(0, 0, 0), (0.305, 0.305, 0)], spacegroup=136,
                    cellpar=[4.59, 4.59, 2.96, 90, 90, 90])
    cell = atoms.cell.array.copy()
    cell[2] += [0.31, -0.22, 0.0]
    cell[1] += [0.17, 0.0, 0.0]
    atoms.set_cell(cell, scale_atoms=True)
    atoms = atoms.repeat(repeat)
    atoms.rattle(0.12, seed=seed)
    return atoms


def plane_spacing(atoms: Atoms) -> float:
    """Smallest distance between lattice planes (Å): no atom has a periodic image of
    itself closer than this."""
    cell = atoms.cell.array
    return float(abs(np.linalg.det(cell)) / max(
        np.linalg.norm(np.cross(cell[(k + 1) % 3], cell[(k + 2) % 3])) for k in range(3)))


def water_cluster(seed=0) -> Atoms:
    """Four rattled water molecules, no cell (non-periodic)."""
    rng = np.random.default_rng(seed)
    atoms = Atoms()
    for centre in [(0, 0, 0), (2.8, 0.3, 0.1), (0.2, 2.9, -0.3), (1.6, 1.4, 2.4)]:
        m = molecule("H2O")
        m.rotate(rng.uniform(0, 360), rng.normal(size=3) + 1e-3, center="COP")
        m.translate(centre)
        atoms += m
    atoms.rattle(0.05, seed=seed + 1)
    return atoms


STRUCTURES = {"TiO2": tio2, "H2O": water_cluster}


# ----------------------------------------------------------------- descriptors
def behler_functions(elements, rc=5.2):
    """Behler G1, G2 (with and without r_s), G4, G5 for every element combination."""
    out = []
    for c in elements:
        for n in elements:
            out.append({"type": "G1", "center": c, "neighbours": [n], "rc": rc})
            out.append({"type": "G2", "center": c, "neighbours": [n], "rc": rc, "eta": 0.6})
            out.append({"type": "G2", "center": c, "neighbours": [n], "rc": rc - 0.7,
                        "eta": 1.3, "rs": 1.9})
        pairs = [(a, b) for i, a in enumerate(elements) for b in elements[i:]]
        for a, b in pairs:
            for lam, zeta in ((1, 1), (-1, 2), (1, 4)):
                out.append({"type": "G4", "center": c, "neighbours": [a, b], "rc": rc,
                            "eta": 0.03, "lambda": lam, "zeta": zeta})
                out.append({"type": "G5", "center": c, "neighbours": [a, b], "rc": rc - 0.4,
                            "eta": 0.05, "lambda": -lam, "zeta": zeta})
    return out


def gaussian_functions(elements, rc=5.0):
    """n2p2 types 2, 3, 9 (with r_s ≠ 0 and non-integer ζ), 12, 13."""
    out = []
    pairs = [(a, b) for i, a in enumerate(elements) for b in elements[i:]]
    for c in elements:
        for n in elements:
            for eta, rs in ((0.4, 0.0), (2.0, 1.8), (1.1, 3.0)):
                out.append({"type": 2, "center": c, "neighbours": [n], "eta": eta, "rs": rs,
                            "rc": rc})
        for a, b in pairs:
            out.append({"type": 3, "center": c, "neighbours": [a, b], "eta": 0.02,
                        "lambda": -1, "zeta": 1.5, "rc": rc, "rs": 0.8})
            out.append({"type": 9, "center": c, "neighbours": [a, b], "eta": 0.04,
                        "lambda": 1, "zeta": 3.0, "rc": rc - 0.5, "rs": 1.1})
            out.append({"type": 9, "center": c, "neighbours": [a, b], "eta": 0.01,
                        "lambda": -1, "zeta": 1.0, "rc": rc})
        out.append({"type": 12, "center": c, "eta": 0.7, "rs": 1.5, "rc": rc})
        out.append({"type": 12, "center": c, "eta": 0.1, "rs": 0.0, "rc": rc - 1.0})
        out.append({"type": 13, "center": c, "eta": 0.03, "rs": 0.5, "lambda": 1,
                    "zeta": 2.5, "rc": rc})
        out.append({"type": 13, "center": c, "eta": 0.01, "rs": 0.0, "lambda": -1,
                    "zeta": 1.0, "rc": rc - 0.3})
    return out


def compact_functions(elements, rc=5.0):
    """n2p2 polynomial types 20–25 with every subtype, angular windows inside [0°, 180°]
    and centred on 0° or 180° beyond it, and r_l < 0."""
    subtypes = ["p1", "p2", "p3", "p4", "p1a", "p2a", "p3a", "p4a", "e"]
    out = []
    pairs = [(a, b) for i, a in enumerate(elements) for b in elements[i:]]
    k = 0
    for c in elements:
        for n in elements:
            for rl, r in ((0.5, rc), (-1.0, rc - 1.5), (2.0, rc - 0.5)):
                out.append({"type": 20, "center": c, "neighbours": [n], "rl": rl, "rc": r,
                            "subtype": subtypes[k % 9]})
                k += 1
        for a, b in pairs:
            for t, (al, ar) in ((21, (0.0, 120.0)), (21, (-60.0, 60.0)), (22, (60.0, 180.0)),
                                (22, (150.0, 210.0)), (22, (30.0, 110.0))):
                out.append({"type": t, "center": c, "neighbours": [a, b], "rl": -2.0,
                            "rc": rc if t == 22 else rc + 0.5, "angle_left": al,
                            "angle_right": ar, "subtype": subtypes[k % 9]})
                k += 1
        for rl, r in ((0.0, rc), (1.5, rc - 1.0)):
            out.append({"type": 23, "center": c, "rl": rl, "rc": r, "subtype": subtypes[k % 9]})
            k += 1
        for t, (al, ar) in ((24, (20.0, 160.0)), (24, (120.0, 240.0)), (25, (0.0, 90.0)),
                            (25, (-90.0, 90.0))):
            out.append({"type": t, "center": c, "rl": -1.0, "rc": rc if t == 25 else rc + 0.5,
                        "angle_left": al, "angle_right": ar, "subtype": subtypes[k % 9]})
            k += 1
    return out


# ---------------------------------------------------------------------- models
def scaled_random_model(descriptor, structures, activations, seed=0, common=True,
                        hidden=None):
    """A potential with seeded random weights and biases (std ~0.5, so no layer is
    negligible), the input standardisation and feature range of ``structures``'
    descriptors (as training would set them), output scale/shift and reference energies.
    ``common=False`` gives every element its own output scale and shift; by default the
    elements' last hidden layers differ in width (``hidden``: widths per element)."""
    gen = torch.Generator().manual_seed(seed)
    elements = descriptor.elements
    nets = {}
    for k, e in enumerate(elements):
        widths = hidden[e] if hidden else [8, 6 + k][:len(activations)]
        net = AtomicNetwork(descriptor.n_features(e), widths, list(activations)).double()
        with torch.no_grad():
            for layer in net.layers:
                layer.weight.normal_(0.0, 1.0 / layer.in_features ** 0.5 * 1.5, generator=gen)
                layer.bias.normal_(0.0, 0.5, generator=gen)
            net.output_scale.fill_(0.7 if common else 0.7 + 0.25 * k)
            net.output_shift.fill_(-1.3 if common else -1.3 + 0.6 * k)
        nets[e] = net
    ref = {e: -1.5 * (k + 1) - 0.125 for k, e in enumerate(elements)}
    model = NeuralNetworkPotential(descriptor, networks=nets, reference_energies=ref).double()
    batch = build_batch(structures, model.elements, model.cutoff)
    features = model(batch, forces=False)["features"].detach()
    species = batch.species
    with torch.no_grad():
        for k, e in enumerate(model.elements):
            g = features[species == k][:, :descriptor.n_features(e)]
            assert len(g) > 0, f"no {e} atoms in the scaling structures"
            std = g.std(0, unbiased=False) if len(g) > 1 else torch.ones(g.shape[1])
            net = model.networks[e]
            net.input_shift.copy_(g.mean(0))
            net.input_scale.copy_(torch.where(std > 1e-8, 1.0 / std.clamp_min(1e-8),
                                              torch.ones_like(std)))
            net.feature_min.copy_(g.min(0).values)
            net.feature_max.copy_(g.max(0).values)
    return model


def hdnnp_prediction(model, atoms):
    pred = predict_structures(model, [atoms])
    return float(pred["energy"][0]), pred["forces"]


def nnp_predict(potential: Path, atoms: Atoms, length_unit: str, energy_unit: str,
                workdir: Path):
    """n2p2's energy (eV) and forces (eV/Å) of ``atoms`` with the potential directory."""
    exe = peer_bin("n2p2") / "nnp-predict"
    workdir.mkdir(parents=True, exist_ok=True)
    for f in potential.iterdir():
        (workdir / f.name).write_bytes(f.read_bytes())
    write_input_data(workdir / "input.data", [atoms], length_unit=length_unit,
                     energy_unit=energy_unit)
    run = subprocess.run([str(exe), "0"], cwd=workdir, capture_output=True, text=True,
                         timeout=120)
    log = workdir / "nnp-predict.log"
    if run.returncode != 0 or not (workdir / "energy.out").exists():
        tail = log.read_text().splitlines()[-15:] if log.exists() else []
        pytest.fail(f"nnp-predict failed (exit {run.returncode}): {run.stderr[-2000:]}\n"
                    + "\n".join(tail))
    rows = [line.split() for line in (workdir / "energy.out").read_text().splitlines()
            if line.strip() and not line.startswith("#")]
    assert len(rows) == 1 and int(rows[0][1]) == len(atoms)
    ef = energy_factor(energy_unit)
    lf = length_factor(length_unit)
    energy = float(rows[0][3]) * ef
    frows = [line.split() for line in (workdir / "nnforces.out").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    assert [int(r[1]) for r in frows] == list(range(1, len(atoms) + 1))
    forces = np.array([[float(x) for x in r[5:8]] for r in frows]) * (ef / lf)
    return energy, forces, log.read_text()


def assert_agrees(model, potential, atoms, length_unit, energy_unit, workdir):
    e_h, f_h = hdnnp_prediction(model, atoms)
    e_n, f_n, log = nnp_predict(potential, atoms, length_unit, energy_unit, workdir)
    de = abs(e_n - e_h) / len(atoms)
    df = float(np.abs(f_n - f_h).max())
    assert de <= E_TOL and df <= F_TOL, (
        f"nnp-predict disagrees with hdnnp: |ΔE|/atom = {de:.3e} eV (tolerance {E_TOL}), "
        f"max |ΔF| = {df:.3e} eV/Å (tolerance {F_TOL}); E hdnnp {e_h!r}, n2p2 {e_n!r}")
    # not trivially zero: the networks and forces matter
    assert np.abs(f_h).max() > 1e-2
    return de, df, log


# ----------------------------------------------------------------------- tests
FAMILY_CASES = [
    # id, structure, functions, cutoff (type, α), activations, units, common output scale
    ("behler-TiO2-pbc", "TiO2", behler_functions, (1, 0.0), ("t", "s"), ("angstrom", "eV"),
     True),
    ("behler-H2O-bohr", "H2O", behler_functions, (6, 0.15), ("p", "g"), ("bohr", "hartree"),
     False),
    ("gauss-TiO2-bohr", "TiO2", gaussian_functions, (3, 0.0), ("c", "S"),
     ("bohr", "hartree"), False),
    ("gauss-H2O", "H2O", gaussian_functions, (4, 0.2), ("h", "t"), ("angstrom", "eV"), True),
    ("compact-TiO2", "TiO2", compact_functions, (0, 0.0), ("e", "l"), ("angstrom", "eV"),
     True),
    ("compact-H2O-bohr", "H2O", compact_functions, (2, 0.0), ("r", "t"), ("bohr", "hartree"),
     False),
]


@pytest.mark.parametrize("case", FAMILY_CASES, ids=[c[0] for c in FAMILY_CASES])
def test_nnp_predict_reproduces_hdnnp(tmp_path, case):
    _, structure, functions, (ctype, alpha), acts, units, common = case
    make = STRUCTURES[structure]
    atoms = make(seed=1)
    # the model's element order (Ti O, O H) is not n2p2's (by atomic number)
    elements = sorted(set(atoms.get_chemical_symbols()), reverse=True)
    descriptor = SymmetryFunctions(elements, functions(elements), cutoff_type=ctype,
                                   cutoff_alpha=alpha)
    model = scaled_random_model(descriptor, [make(seed=s) for s in range(2, 6)], acts,
                                common=common)
    if atoms.pbc.any():
        assert plane_spacing(atoms) > model.cutoff
    export_n2p2_potential(model, tmp_path / "nnp", *units)
    text = (tmp_path / "nnp" / "input.nn").read_text()
    assert ("conv_energy" in text) == common
    assert_agrees(model, tmp_path / "nnp", atoms, *units, tmp_path / "run")


@pytest.mark.parametrize("ctype", range(9))
def test_every_cutoff_type(tmp_path, ctype):
    """n2p2 cutoff types 0–8 (hard, cos, tanhu, tanh, exp, poly1–4) on the Gaussian types,
    with an inner cutoff α where n2p2 uses one; periodic and non-periodic, both units."""
    alpha = 0.0 if ctype in (0, 2, 3) else 0.1 + 0.05 * ctype
    make = tio2 if ctype % 2 else water_cluster
    units = ("bohr", "hartree") if ctype % 3 == 0 else ("angstrom", "eV")
    atoms = make(seed=7)
    elements = sorted(set(atoms.get_chemical_symbols()))
    descriptor = SymmetryFunctions(elements, gaussian_functions(elements, rc=4.8),
                                   cutoff_type=ctype, cutoff_alpha=alpha)
    model = scaled_random_model(descriptor, [make(seed=s) for s in (8, 9)], ("t",),
                                seed=ctype, common=bool(ctype % 2))
    export_n2p2_potential(model, tmp_path / "nnp", *units)
    assert f"cutoff_type {ctype} {alpha!r}" in (tmp_path / "nnp" / "input.nn").read_text()
    assert_agrees(model, tmp_path / "nnp", atoms, *units, tmp_path / "run")


def test_elements_with_different_hidden_widths(tmp_path):
    """Regression: the exporter wrote ``element_nodes_short <element> <layer> <nodes>``,
    which n2p2 reads as the widths of the layers themselves (and n2p2 never applies the
    last value), so n2p2 ran networks of other shapes on the weights (|ΔE| 0.15 eV/atom).
    Narrower elements are now padded with inert neurons to common widths.  Also: features
    never seen (range ±inf) and ignored (sigma = inf) are read by n2p2 as written."""
    atoms = water_cluster(seed=3)
    descriptor = SymmetryFunctions(["H", "O"], behler_functions(["H", "O"], rc=4.5))
    model = scaled_random_model(descriptor, [water_cluster(seed=s) for s in (4, 5)],
                                ("t", "p", "s"), hidden={"H": [3, 9, 2], "O": [7, 4, 5]})
    with torch.no_grad():  # a feature never seen in training (range ±inf, written as
        net = model.networks["O"]  # -inf/inf) and one the network ignores (sigma = inf)
        net.feature_min[0], net.feature_max[0] = -math.inf, math.inf
        net.input_scale[1] = 0.0
    export_n2p2_potential(model, tmp_path / "nnp")
    text = (tmp_path / "nnp" / "input.nn").read_text()
    assert "element_nodes_short" not in text and "global_nodes_short 7 9 5" in text
    assert_agrees(model, tmp_path / "nnp", atoms, "angstrom", "eV", tmp_path / "run")


def test_compact_group_members_get_their_own_rjk_factor():
    """Regression for n2p2's reuse of C(r_jk) in type-21/24 groups: members that share
    r_l and r_c but differ in subtype get r_l one ulp lower (one step per extra subtype),
    members of the same subtype keep sharing, every other function is left alone."""
    from hdnnp.n2p2.potential import separate_compact_groups

    base = {"center": "O", "rl": -2.0, "rc": 5.5, "angle_left": 0.0, "angle_right": 90.0}
    fs = [{**base, "type": 21, "neighbours": ["H", "O"], "subtype": "p2"},
          {**base, "type": 21, "neighbours": ["O", "H"], "subtype": "p4"},
          {**base, "type": 21, "neighbours": ["H", "O"], "subtype": "p2", "angle_left": 30.0},
          {**base, "type": 21, "neighbours": ["H", "O"], "subtype": "e"},
          {**base, "type": 21, "neighbours": ["O", "O"], "subtype": "p4"},
          {**base, "type": 24, "neighbours": [], "subtype": "p1"},
          {**base, "type": 24, "neighbours": [], "subtype": "p1a"},
          {**base, "type": 22, "neighbours": ["H", "O"], "subtype": "p4"}]
    out = separate_compact_groups(fs)
    down = np.nextafter(-2.0, -np.inf)
    assert [f["rl"] for f in out] == [-2.0, down, -2.0, np.nextafter(down, -np.inf), -2.0,
                                      -2.0, down, -2.0]
    assert [{k: v for k, v in f.items() if k != "rl"} for f in out] == [
        {k: v for k, v in f.items() if k != "rl"} for f in fs]


def test_trained_committee_member_in_atomic_units(tmp_path):
    """A committee of two briefly trained Behler models (``kind: behler``, G2/G5, EMT
    Cu/Al data); ``hdnnp export --member 2`` in Bohr/Hartree is what n2p2 computes for
    member 2 and not for member 1 — compared with :class:`hdnnp.Calculator`."""
    from hdnnp import Calculator
    from hdnnp.cli import main
    from hdnnp.io import write_structures
    from hdnnp.potential import load_potential
    from hdnnp.training import train
    from test_training import emt_structures

    write_structures(tmp_path / "emt.extxyz", emt_structures(6))
    train({"data": {"train": [str(tmp_path / "emt.extxyz")], "test_fraction": 0.2, "seed": 1},
           "descriptor": {"kind": "behler", "cutoff": 4.5, "size": 6},
           "network": {"hidden": [6, 5], "activation": "tanh"},
           "training": {"optimizer": "adam", "epochs": 1, "batch_size": 4, "committee": 2,
                        "learning_rate": 0.01, "force_weight": 0.05, "seed": 2,
                        "threads": 1},
           "output": str(tmp_path / "run"), "figures": False}, progress=False,
          log=lambda *a, **k: None)
    model = load_potential(tmp_path / "run" / "model.json")
    assert model.committee_size == 2
    out = tmp_path / "member2"
    assert main(["export", str(tmp_path / "run" / "model.json"), str(out), "--member", "2",
                 "--length-unit", "bohr", "--energy-unit", "hartree"]) == 0
    atoms = emt_structures(1, seed=11)[0].repeat((1, 2, 2))  # 32 atoms, 7.2 Å > r_c
    assert plane_spacing(atoms) > model.cutoff
    e_n, f_n, _ = nnp_predict(out, atoms, "bohr", "hartree", tmp_path / "nnp-run")
    for k, same in ((1, True), (0, False)):
        atoms.calc = Calculator(model.member(k), extrapolation="ignore")
        de = abs(atoms.get_potential_energy() - e_n) / len(atoms)
        df = float(np.abs(atoms.get_forces() - f_n).max())
        assert (de <= E_TOL and df <= F_TOL) == same, (k, de, df)


def test_cell_shorter_than_the_cutoff(tmp_path):
    """Rutile's 6-atom cell (c = 2.96 Å < r_c): n2p2's energy is hdnnp's.  (This n2p2's
    forces are not its own energy's gradient when an atom sees its own periodic image —
    ``Mode::calculateForces`` skips the image terms — so only the energy is compared.)"""
    atoms = tio2(seed=4, repeat=(1, 1, 1))
    descriptor = SymmetryFunctions(["O", "Ti"], behler_functions(["O", "Ti"]), cutoff_type=1)
    model = scaled_random_model(descriptor, [tio2(seed=s) for s in (2, 3)], ("t", "s"))
    assert plane_spacing(atoms) < model.cutoff
    export_n2p2_potential(model, tmp_path / "nnp")
    e_h, _ = hdnnp_prediction(model, atoms)
    e_n, _, _ = nnp_predict(tmp_path / "nnp", atoms, "angstrom", "eV", tmp_path / "run")
    assert abs(e_n - e_h) / len(atoms) <= E_TOL


@pytest.mark.parametrize("line", ["element_hidden_layers_short O 1",
                                  "element_activation_short O s s l"])
def test_per_element_network_keywords_are_refused(tmp_path, line):
    """n2p2 applies ``element_hidden_layers_short`` / ``element_activation_short``; the
    loader used to ignore them (and run other networks than n2p2), now it refuses them."""
    from hdnnp.errors import InputFileError
    from hdnnp.n2p2 import load_n2p2_potential

    descriptor = SymmetryFunctions(["H", "O"], gaussian_functions(["H", "O"]))
    model = scaled_random_model(descriptor, [water_cluster(seed=2)], ("t", "t"))
    export_n2p2_potential(model, tmp_path / "nnp")
    load_n2p2_potential(tmp_path / "nnp")
    with open(tmp_path / "nnp" / "input.nn", "a") as fh:
        fh.write(line + "\n")
    with pytest.raises(InputFileError, match=line.split()[0] + ".*not supported"):
        load_n2p2_potential(tmp_path / "nnp")


def test_files_with_element_nodes_short_read_as_n2p2_reads_them(tmp_path):
    """An n2p2 file with ``element_nodes_short O 6 4`` (O's first hidden layer 6 wide,
    H's 5): hdnnp's loader builds the networks n2p2 builds, so nnp-predict and hdnnp
    agree on it; a last size other than the global one is refused (n2p2 ignores it)."""
    from hdnnp.errors import InputFileError
    from hdnnp.n2p2 import load_n2p2_potential
    from test_n2p2_potential import make_potential
    from test_n2p2_potential import water_cluster as water

    pot = tmp_path / "pot"
    pot.mkdir()
    make_potential(pot, "scale", "t s")
    model = load_n2p2_potential(pot)
    assert [n.hidden for n in model.networks.values()] == [[5, 4], [6, 4]]
    assert_agrees(model, pot, water(seed=1), "bohr", "hartree", tmp_path / "run")
    text = (pot / "input.nn").read_text()
    (pot / "input.nn").write_text(text.replace("element_nodes_short O 6 4",
                                               "element_nodes_short O 6 3"))
    with pytest.raises(InputFileError, match="ignores the last hidden layer"):
        load_n2p2_potential(pot)
    (pot / "input.nn").write_text(text.replace("element_nodes_short O 6 4",
                                               "element_nodes_short O 1 6 4"))
    with pytest.raises(InputFileError, match="2 hidden-layer sizes"):
        load_n2p2_potential(pot)
