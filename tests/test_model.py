"""Forces and stress of the full potential against finite differences; invariances."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hdnnp.descriptors import BehlerParrinello, Chebyshev
from hdnnp.model import NeuralNetworkPotential
from hdnnp.neighbours import build_batch

from conftest import rutile, tio2_cluster
from test_descriptors import BEHLER_FUNCTIONS, ELEMENTS


def make_model(descriptor, activation="tanh", seed=0):
    model = NeuralNetworkPotential(descriptor, hidden=(7, 5), activation=activation)
    gen = torch.Generator().manual_seed(seed)
    for net in model.networks.values():
        net.reset_parameters(gen)
        with torch.no_grad():  # non-trivial normalisation and biases
            net.input_shift.uniform_(-0.5, 0.5, generator=gen)
            net.input_scale.uniform_(0.2, 1.0, generator=gen)
            for layer in net.layers:
                layer.bias.uniform_(-0.3, 0.3, generator=gen)
            net.output_scale.fill_(0.7)
            net.output_shift.fill_(-1.3)
    return model


def energy(model, atoms):
    with torch.no_grad():
        out = model(build_batch([atoms], model.elements, model.cutoff), forces=False)
    return float(out["energy"][0])


def single_type(t):
    return [f for f in BEHLER_FUNCTIONS if f["type"] == t]


DESCRIPTORS = {
    "G1": lambda: BehlerParrinello(ELEMENTS, single_type("G1")),
    "G2": lambda: BehlerParrinello(ELEMENTS, single_type("G2")),
    "G3": lambda: BehlerParrinello(ELEMENTS, single_type("G3")),
    "G4": lambda: BehlerParrinello(ELEMENTS, single_type("G4")),
    "G5": lambda: BehlerParrinello(ELEMENTS, single_type("G5")),
    "chebyshev": lambda: Chebyshev(ELEMENTS, 5.0, 6, 4.0, 4),
}


@pytest.mark.parametrize("structure", ["periodic", "cluster"])
@pytest.mark.parametrize("name", list(DESCRIPTORS))
def test_forces_match_central_differences(name, structure):
    atoms = rutile() if structure == "periodic" else tio2_cluster()
    model = make_model(DESCRIPTORS[name]())
    out = model(build_batch([atoms], model.elements, model.cutoff), forces=True)
    forces = out["forces"].detach().numpy()
    h = 1e-4
    rng = np.random.default_rng(1)
    for a in rng.choice(len(atoms), size=min(4, len(atoms)), replace=False):
        for c in range(3):
            plus, minus = atoms.copy(), atoms.copy()
            plus.positions[a, c] += h
            minus.positions[a, c] -= h
            fd = -(energy(model, plus) - energy(model, minus)) / (2 * h)
            assert abs(fd - forces[a, c]) <= 1e-6, (a, c, fd, forces[a, c])


@pytest.mark.parametrize("name", ["G2", "G4", "G5", "chebyshev"])
def test_stress_matches_strain_derivative(name):
    atoms = rutile()
    atoms.set_cell(atoms.cell.array + np.array([[0.0, 0.1, 0.0], [0.0, 0.0, 0.05],
                                                [0.1, 0.0, 0.0]]), scale_atoms=True)
    model = make_model(DESCRIPTORS[name]())
    out = model(build_batch([atoms], model.elements, model.cutoff), forces=True, stress=True)
    stress = out["stress"][0].detach().numpy()
    volume = atoms.get_volume()
    h = 1e-5
    for a in range(3):
        for b in range(3):
            eps = np.zeros((3, 3))
            eps[a, b] = eps[b, a] = h / 2 if a != b else h
            e = []
            for sign in (1, -1):
                s = atoms.copy()
                s.set_cell(atoms.cell.array @ (np.eye(3) + sign * eps), scale_atoms=True)
                e.append(energy(model, s))
            de_deps = (e[0] - e[1]) / (2 * h)
            assert abs(de_deps / volume - stress[a, b]) < 1e-7, (a, b)


def rotation_matrix(seed):
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(3, 3)))
    return q * np.sign(np.linalg.det(q))


@pytest.mark.parametrize("name", ["G4", "chebyshev"])
def test_invariance_rotation_translation_permutation(name):
    model = make_model(DESCRIPTORS[name]())
    for atoms in (rutile(), tio2_cluster()):
        e0 = energy(model, atoms)
        f0 = model(build_batch([atoms], model.elements, model.cutoff))["forces"].detach().numpy()
        rot = rotation_matrix(7)
        moved = atoms.copy()
        moved.set_cell(atoms.cell.array @ rot.T)
        moved.positions = atoms.positions @ rot.T + np.array([0.37, -1.2, 2.5])
        assert energy(model, moved) == pytest.approx(e0, rel=1e-12, abs=1e-10)
        f1 = model(build_batch([moved], model.elements, model.cutoff))["forces"].detach().numpy()
        np.testing.assert_allclose(f1, f0 @ rot.T, atol=1e-10)
        # permutation of like atoms
        idx = np.arange(len(atoms))
        ti = np.flatnonzero(np.array(atoms.get_chemical_symbols()) == "Ti")
        o = np.flatnonzero(np.array(atoms.get_chemical_symbols()) == "O")
        idx[ti] = ti[::-1]
        idx[o] = np.roll(o, 1)
        perm = atoms[idx]
        assert energy(model, perm) == pytest.approx(e0, rel=1e-12, abs=1e-10)


@pytest.mark.parametrize("name", ["G5", "chebyshev"])
def test_supercell_energy_is_extensive(name):
    model = make_model(DESCRIPTORS[name]())
    atoms = rutile()
    e1 = energy(model, atoms)
    e4 = energy(model, atoms.repeat((2, 2, 1)))
    assert e4 == pytest.approx(4 * e1, rel=1e-12)


def test_per_atom_energies_sum_to_total_and_batching_is_consistent():
    model = make_model(DESCRIPTORS["chebyshev"]())
    model.reference_energies[:] = torch.tensor([-432.5, -1604.6], dtype=torch.float64)
    structs = [rutile(seed=k) for k in range(3)] + [tio2_cluster()]
    out = model(build_batch(structs, model.elements, model.cutoff), forces=True)
    sums = np.bincount(np.repeat(np.arange(4), [len(s) for s in structs]),
                       weights=out["energies"].detach().numpy())
    np.testing.assert_allclose(sums, out["energy"].detach().numpy(), rtol=1e-14)
    for k, s in enumerate(structs):
        assert energy(model, s) == pytest.approx(float(out["energy"][k]), rel=1e-14)


@pytest.mark.parametrize("activation", ["linear", "tanh", "sigmoid", "mtanh", "twist"])
def test_activations_give_consistent_forces(activation):
    model = make_model(DESCRIPTORS["G2"](), activation=activation)
    atoms = tio2_cluster()
    out = model(build_batch([atoms], model.elements, model.cutoff))
    h = 1e-4
    plus, minus = atoms.copy(), atoms.copy()
    plus.positions[2, 1] += h
    minus.positions[2, 1] -= h
    fd = -(energy(model, plus) - energy(model, minus)) / (2 * h)
    assert abs(fd - float(out["forces"][2, 1])) < 1e-6


def test_twist_activation_formula():
    from hdnnp.activations import activation

    x = torch.linspace(-3, 3, 7, dtype=torch.float64)
    expected = 1.7159 * torch.tanh(2 * x / 3) + 0.1 * x
    assert torch.allclose(activation("twist")(x), expected)
    assert torch.allclose(activation("mtanh")(x), 1.7159 * torch.tanh(2 * x / 3))


def _committee_of_mixed_networks(seed=3):
    """A 2-member committee on G2 whose members differ in architecture and use every
    activation the package knows (hidden layers and output)."""
    from hdnnp.activations import ACTIVATIONS

    names = list(ACTIVATIONS)
    members = []
    for k, (hidden, acts, out_act) in enumerate([((6, 5, 4), names[:3], names[3]),
                                                 ((5, 7), names[4:6], "linear")]):
        m = make_model(DESCRIPTORS["G2"](), seed=seed + k)
        for e in m.elements:
            from hdnnp.model import AtomicNetwork

            net = AtomicNetwork(m.descriptor.n_features(e), hidden, acts, out_act).double()
            net.reset_parameters(torch.Generator().manual_seed(seed + 10 * k))
            with torch.no_grad():
                net.input_shift.uniform_(-0.5, 0.5)
                net.output_scale.fill_(0.6 + k)
                net.output_shift.fill_(0.2 - k)
            m.networks[e] = net
        members.append(m)
    return NeuralNetworkPotential.committee(members)


@pytest.mark.parametrize("name", ["linear", "tanh", "sigmoid", "mtanh", "twist", "softplus",
                                  "relu", "gaussian", "cos", "revlogistic", "exp", "harmonic"])
def test_network_kernel_matches_autograd_for_every_activation(name):
    from hdnnp.activations import ACTIVATIONS
    from hdnnp.model import member_networks
    from hdnnp.network_kernels import ACTIVATION_CODES, pack_networks

    assert set(ACTIVATION_CODES) == set(ACTIVATIONS)
    # one layer of it (two would hide a wrong sign of its slope)
    model = make_model(DESCRIPTORS["G4"](), activation=(name, "tanh"))
    gen = torch.Generator().manual_seed(5)
    n, F = 300, model.descriptor.max_features
    # wide inputs: softplus beyond its ±35 switch, relu on both sides, sigmoid saturated
    g = torch.randn(n, F, generator=gen, dtype=torch.float64) * 40.0
    species = torch.randint(0, 2, (n,), generator=gen)
    packed = pack_networks([member_networks(model.networks[e]) for e in model.elements])
    e_k, grad_k = packed(g, species, want_grad=True, per_member=False)
    x = g.clone().requires_grad_(True)
    e_ref = model.member_atomic_energies(x, species)
    (grad_ref,) = torch.autograd.grad(e_ref.sum(), x)
    np.testing.assert_allclose(e_k.numpy(), e_ref.detach().numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(grad_k[0].numpy(), grad_ref.numpy(), rtol=1e-11, atol=1e-11)


def test_network_kernel_gives_the_autograd_committee_and_the_same_bits_on_any_thread_count(
        monkeypatch):
    import numba

    model = _committee_of_mixed_networks()
    atoms = tio2_cluster()
    batch = build_batch([atoms, rutile(seed=2)], model.elements, model.cutoff)
    kw = dict(forces=True, member_forces=True, atomic_virials=True)
    out = model(batch, **kw)
    stress = model(batch, forces=True, stress=True)
    before = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        one = model(batch, **kw)
    finally:
        numba.set_num_threads(before)
    for key in ("energy", "forces", "forces_members", "virials"):
        assert torch.equal(out[key], one[key]), key
    monkeypatch.setattr(NeuralNetworkPotential, "_packed_networks", lambda self, device: None)
    ref = model(batch, **kw)
    ref_stress = model(batch, forces=True, stress=True)
    for key in ("energy", "energies", "energy_members", "forces", "forces_members", "virials"):
        np.testing.assert_allclose(out[key].detach().numpy(), ref[key].detach().numpy(),
                                   rtol=1e-12, atol=1e-12, err_msg=key)
    for key in ("virial", "energy", "forces", "features"):  # one kernel per block here
        np.testing.assert_allclose(stress[key].detach().numpy(),
                                   ref_stress[key].detach().numpy(), rtol=1e-12, atol=1e-12,
                                   err_msg=key)
