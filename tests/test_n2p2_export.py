"""Export to n2p2: train -> export -> re-import -> predict gives the same energies and
forces; ænet-convention Behler descriptors and unit conversion; what cannot be exported;
and the ``hdnnp export`` command."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from hdnnp.cli import main
from hdnnp.descriptors import BehlerParrinello, Chebyshev
from hdnnp.descriptors.n2p2 import N2P2SymmetryFunctions
from hdnnp.errors import HdnnpError
from hdnnp.io import write_structures
from hdnnp.model import AtomicNetwork, NeuralNetworkPotential
from hdnnp.n2p2 import export_n2p2_potential, load_n2p2_potential, read_input_nn
from hdnnp.neighbours import build_batch
from hdnnp.potential import load_potential, save_potential
from test_n2p2_functions import _single_thread  # noqa: F401 (autouse fixture)
from test_training import emt_structures

WATER = Path(__file__).parents[1].parent / "shared" / "data" / "n2p2" / "H2O_RPBE-D3"


N2P2_FUNCTIONS = [
    {"type": 2, "center": c, "neighbours": [n], "eta": eta, "rs": rs, "rc": 4.5}
    for c in ("Al", "Cu") for n in ("Al", "Cu") for eta, rs in ((0.5, 0.0), (1.0, 2.5))
] + [
    {"type": 3, "center": c, "neighbours": ["Cu", "Cu"], "eta": 0.1, "lambda": lam,
     "zeta": 2.0, "rc": 4.5, "rs": 0.0} for c in ("Al", "Cu") for lam in (1.0, -1.0)
] + [
    {"type": 9, "center": "Cu", "neighbours": ["Al", "Cu"], "eta": 0.05, "lambda": 1.0,
     "zeta": 1.0, "rc": 4.2, "rs": 0.0},
    {"type": 12, "center": "Al", "eta": 0.3, "rs": 2.5, "rc": 4.0},
    {"type": 20, "center": "Cu", "neighbours": ["Cu"], "rl": 1.5, "rc": 4.0, "subtype": "p2"},
    {"type": 22, "center": "Al", "neighbours": ["Cu", "Cu"], "rl": -4.0, "rc": 4.0,
     "angle_left": 30.0, "angle_right": 150.0, "subtype": "p3"},
]


def predictions(model, structures):
    out = model(build_batch(structures, model.elements, model.cutoff), forces=True)
    return out["energy"].detach().numpy(), out["forces"].detach().numpy()


def assert_same_predictions(a, b, structures, rtol=1e-10):
    ea, fa = predictions(a, structures)
    eb, fb = predictions(b, structures)
    np.testing.assert_allclose(eb, ea, rtol=rtol, atol=0)
    np.testing.assert_allclose(fb, fa, rtol=0, atol=rtol * np.abs(fa).max())


def test_trained_model_round_trips_through_n2p2(tmp_path):
    from hdnnp.training import train

    data = tmp_path / "emt.extxyz"
    write_structures(data, emt_structures())
    train({"data": {"train": [str(data)], "test_fraction": 0.2, "seed": 1},
           "descriptor": {"kind": "n2p2", "cutoff_type": 6, "cutoff_alpha": 0.1,
                          "functions": N2P2_FUNCTIONS},
           "network": {"hidden": [6, 5], "activation": "tanh"},
           "training": {"optimizer": "adam", "epochs": 3, "batch_size": 4,
                        "learning_rate": 0.01, "force_weight": 0.05, "seed": 2, "threads": 1},
           "output": str(tmp_path / "run")}, progress=False)
    model = load_potential(tmp_path / "run" / "model.json")
    assert isinstance(model.descriptor, N2P2SymmetryFunctions)
    assert len({float(n.output_shift) for n in model.networks.values()}) == 2
    export_n2p2_potential(model, tmp_path / "nnp")
    again = load_n2p2_potential(tmp_path / "nnp")
    assert_same_predictions(model, again, emt_structures(4, seed=9))
    for e in model.elements:  # training ranges become extrapolation limits
        perm = [again.descriptor.feature_names[e].index(n)
                for n in model.descriptor.feature_names[e]]
        np.testing.assert_array_equal(again.networks[e].feature_min.numpy()[perm],
                                      model.networks[e].feature_min.numpy())


def random_model(descriptor, activations=("t", "p"), seed=0, common=True):
    gen = torch.Generator().manual_seed(seed)
    nets = {}
    for k, e in enumerate(descriptor.elements):
        n = descriptor.n_features(e)
        net = AtomicNetwork(n, [7, 4 + k], list(activations)).double()
        net.reset_parameters(gen)
        with torch.no_grad():
            for layer in net.layers:
                layer.bias.normal_(0.0, 0.2, generator=gen)
            net.input_shift.copy_(torch.rand(n, generator=gen, dtype=torch.float64))
            net.input_scale.copy_(0.5 + torch.rand(n, generator=gen, dtype=torch.float64))
            net.feature_min.copy_(-torch.rand(n, generator=gen, dtype=torch.float64))
            net.feature_max.copy_(2 + torch.rand(n, generator=gen, dtype=torch.float64))
            net.output_scale.fill_(0.37 if common else 0.37 + 0.1 * k)
            net.output_shift.fill_(-3.1 if common else -3.1 + k)
        nets[e] = net
    return NeuralNetworkPotential(descriptor, networks=nets,
                                  reference_energies={"Al": -12.5, "Cu": -20.25})


def test_behler_descriptor_exports_as_n2p2_types(tmp_path):
    funcs = [{"type": "G1", "center": "Cu", "neighbours": ["Al"], "rc": 4.5},
             {"type": "G2", "center": "Cu", "neighbours": ["Cu"], "rc": 4.5, "eta": 0.7,
              "rs": 2.4},
             {"type": "G4", "center": "Cu", "neighbours": ["Al", "Cu"], "rc": 4.5,
              "eta": 0.02, "lambda": -1, "zeta": 2},
             {"type": "G5", "center": "Al", "neighbours": ["Cu", "Cu"], "rc": 4.0,
              "eta": 0.05, "lambda": 1, "zeta": 4},
             {"type": "G2", "center": "Al", "neighbours": ["Cu"], "rc": 4.0, "eta": 0.3}]
    d = BehlerParrinello(["Cu", "Al"], funcs, cutoff_function="poly2", cutoff_alpha=0.2)
    model = random_model(d, ("s", "g"), common=True)
    export_n2p2_potential(model, tmp_path / "nnp")
    settings = read_input_nn(tmp_path / "nnp" / "input.nn")
    types = sorted(v.split()[1] for v, _ in settings.all("symfunction_short"))
    assert types == ["2", "2", "2", "3", "9"]
    assert settings.get("cutoff_type").split() == ["6", "0.2"]
    assert settings.has("conv_energy")  # common output scale -> normalisation header
    again = load_n2p2_potential(tmp_path / "nnp")
    assert again.reference_energy_dict() == pytest.approx(model.reference_energy_dict())
    assert_same_predictions(model, again, emt_structures(3, seed=5))


def test_unit_conversion_and_per_element_output_scales(tmp_path):
    d = N2P2SymmetryFunctions(["Al", "Cu"], N2P2_FUNCTIONS, cutoff_type=1)
    model = random_model(d, ("r", "c"), common=False)
    export_n2p2_potential(model, tmp_path / "bohr", length_unit="bohr", energy_unit="hartree")
    settings = read_input_nn(tmp_path / "bohr" / "input.nn")
    assert (settings.length_unit, settings.energy_unit) == ("bohr", "hartree")
    assert not settings.has("conv_energy")  # per-element scales folded into the output layer
    again = load_n2p2_potential(tmp_path / "bohr")
    assert_same_predictions(model, again, emt_structures(3, seed=6))


def test_shared_water_potential_reexports_identically(tmp_path):
    if not (WATER / "input.nn").exists():
        pytest.skip(f"shared n2p2 water potential not found at {WATER}")
    from hdnnp.n2p2.data import read_input_data

    model = load_n2p2_potential(WATER)
    structures = list(read_input_data(WATER / "input.data", index=slice(1, 3)))
    for units in (("angstrom", "eV"), ("bohr", "hartree")):
        out = tmp_path / units[0]
        export_n2p2_potential(model, out, *units)
        assert_same_predictions(model, load_n2p2_potential(out), structures, rtol=1e-12)
    text = (tmp_path / "bohr" / "input.nn").read_text()
    assert "symfunction_short H 2 H 0.001" in text  # back in the original units
    # and as an hdnnp potential file
    save_potential(model, tmp_path / "water.json")
    assert_same_predictions(model, load_potential(tmp_path / "water.json"), structures,
                            rtol=1e-15)


@pytest.mark.parametrize("case,match", [
    ("chebyshev", "cannot be written as n2p2"),
    ("g3", "G3"),
    ("mtanh", "no n2p2 equivalent"),
    ("output", "output layer"),
    ("layers", "same activation"),
])
def test_what_n2p2_cannot_express_is_refused(tmp_path, case, match):
    if case == "chebyshev":
        model = NeuralNetworkPotential(Chebyshev(["Al", "Cu"], 4.0, 4, 3.5, 2))
    elif case == "g3":
        d = BehlerParrinello(["Al", "Cu"], [
            {"type": "G3", "center": "Al", "neighbours": ["Cu"], "rc": 4.0, "kappa": 1.0},
            {"type": "G2", "center": "Cu", "neighbours": ["Cu"], "rc": 4.0, "eta": 1.0}])
        model = NeuralNetworkPotential(d)
    else:
        d = N2P2SymmetryFunctions(["Al", "Cu"], N2P2_FUNCTIONS)
        nets = {e: AtomicNetwork(d.n_features(e), [4], "tanh") for e in d.elements}
        if case == "mtanh":
            nets = {e: AtomicNetwork(d.n_features(e), [4], "mtanh") for e in d.elements}
        elif case == "output":
            nets["Cu"] = AtomicNetwork(d.n_features("Cu"), [4], "tanh", "tanh")
        else:
            nets["Cu"] = AtomicNetwork(d.n_features("Cu"), [4], "sigmoid")
        model = NeuralNetworkPotential(d, networks=nets)
    with pytest.raises(HdnnpError, match=match):
        export_n2p2_potential(model, tmp_path / "nnp")


def test_export_command(tmp_path, capsys):
    d = N2P2SymmetryFunctions(["Al", "Cu"], N2P2_FUNCTIONS, cutoff_type=2)
    model = random_model(d)
    save_potential(model, tmp_path / "model.json")
    out = tmp_path / "nnp"
    assert main(["export", str(tmp_path / "model.json"), str(out), "--format", "n2p2"]) == 0
    text = capsys.readouterr().out
    assert "pair_style hdnnp 4.5 dir" in text and "pair_coeff * * Al Cu" in text
    assert "cflength 1 cfenergy 1" in text
    assert sorted(p.name for p in out.iterdir()) == [
        "input.nn", "scaling.data", "weights.013.data", "weights.029.data"]
    assert main(["export", str(tmp_path / "model.json"), str(out)]) == 2  # not empty
    assert "not empty" in capsys.readouterr().err
    assert main(["export", str(tmp_path / "model.json"), str(out), "--force",
                 "--length-unit", "bohr", "--energy-unit", "hartree"]) == 0
    assert "cflength 1.88972612" in capsys.readouterr().out
    assert_same_predictions(model, load_potential(out), emt_structures(2, seed=3))
