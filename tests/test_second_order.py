"""Residual Jacobians (against autograd row by row), Levenberg–Marquardt and the Kalman
filter (issue 11, item 1)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from hdnnp.data import load_dataset
from hdnnp.descriptors import Chebyshev
from hdnnp.model import NeuralNetworkPotential
from hdnnp.training.config import TrainConfig
from hdnnp.training.featureset import FeatureSet
from hdnnp.training.jacobian import WeightLayout, batch_residuals
from hdnnp.training.losses import batch_predictions
from hdnnp.training.trainer import Trainer


@pytest.fixture(scope="module")
def small():
    torch.manual_seed(0)
    ds = load_dataset("bundled:graphene-A").subset(np.arange(5))
    desc = Chebyshev(ds.elements, 5.0, 5, 4.0, 3)
    model = NeuralNetworkPotential(desc, (5, 4), "tanh", reference_energies=ds.reference_energies)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.3)
    fs = FeatureSet(desc, ds, np.ones(len(ds), bool), jacobian_dtype=torch.float64)
    return model, fs


def _functorch_oracle(net, g):
    from torch.func import functional_call, grad, jacrev, vmap

    params = {k: v.detach() for k, v in net.named_parameters()}
    buffers = dict(net.named_buffers())

    def energy(p, x):
        return functional_call(net, (p, buffers), (x.unsqueeze(0),)).squeeze(0)

    def energy_and_gradient(p, x):
        return torch.cat([energy(p, x).reshape(1), grad(energy, argnums=1)(p, x)])

    values = vmap(energy_and_gradient, in_dims=(None, 0))(params, g)
    jac = vmap(jacrev(energy_and_gradient, argnums=0), in_dims=(None, 0))(params, g)
    flat = torch.cat([jac[k].reshape(g.shape[0], g.shape[1] + 1, -1) for k in params], -1)
    return values[:, 0], values[:, 1:], flat[:, 0], flat[:, 1:]


@pytest.mark.parametrize("acts,out", [(["tanh", "tanh"], "linear"),
                                      (["twist", "softplus"], "linear"),
                                      (["sigmoid"], "tanh"), ([], "linear")])
def test_network_derivatives_match_torch_func(acts, out):
    from hdnnp.model import AtomicNetwork
    from hdnnp.training.jacobian import network_derivatives

    torch.manual_seed(1)
    net = AtomicNetwork(6, [5, 4][:len(acts)], acts, output_activation=out).double()
    with torch.no_grad():
        net.input_shift.normal_()
        net.input_scale.uniform_(0.5, 2.0)
        net.output_scale.fill_(1.7)
        net.output_shift.fill_(-3.0)
        for p in net.parameters():
            p.normal_(0, 0.5)
    g = torch.randn(40, 6, dtype=torch.float64)
    for ours, ref in zip(network_derivatives(net, g), _functorch_oracle(net, g)):
        torch.testing.assert_close(ours, ref, rtol=1e-12, atol=1e-12)
    e, c, de_dw, dc_dw = network_derivatives(net, g, force_terms=False)
    assert dc_dw is None
    torch.testing.assert_close(de_dw, _functorch_oracle(net, g)[2], rtol=1e-12, atol=1e-12)
    assert e.shape == (40,) and c.shape == (40, 6)


def _autograd_rows(model, tb, a_e, a_f):
    params = [p for e in model.elements for p in model.networks[e].parameters()]
    e, f = batch_predictions(model, tb, True, create_graph=True)
    r = torch.cat([a_e * (e - tb.energy) / tb.n_atoms,
                   a_f * (f[tb.force_atoms] - tb.forces[tb.force_atoms]).reshape(-1)])
    rows = [torch.cat([g.reshape(-1) for g in torch.autograd.grad(r[k], params,
                                                                  retain_graph=True)])
            for k in range(r.numel())]
    return r.detach(), torch.stack(rows)


def test_residual_jacobian_matches_autograd_row_by_row(small):
    model, fs = small
    tb = fs.batch([0, 2])
    layout = WeightLayout.of(model)
    r, jac = _autograd_rows(model, tb, 0.7, 0.3)
    res = batch_residuals(model, tb, layout, 0.7, 0.3, "components")
    torch.testing.assert_close(res.r, r, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(res.jacobian, jac, rtol=1e-10, atol=1e-12)
    # selected components: the same rows
    sel = torch.tensor([4, 11, 50])
    res_s = batch_residuals(model, tb, layout, 0.7, 0.3, "selected", selected=sel)
    torch.testing.assert_close(res_s.jacobian[2:], jac[2 + sel], rtol=1e-10, atol=1e-12)
    # one row per structure: the same loss and the same gradient of the loss
    res_n = batch_residuals(model, tb, layout, 0.7, 0.3, "structure")
    torch.testing.assert_close((res_n.r**2).sum(), (r**2).sum(), rtol=1e-12, atol=0)
    torch.testing.assert_close(res_n.jacobian.T @ res_n.r, jac.T @ r, rtol=1e-9, atol=1e-12)


def _config(tmp_path, optimizer, epochs, hidden=(8, 8), **training):
    return TrainConfig.from_dict({
        "data": {"train": ["bundled:graphene-A"], "n_structures": 120, "test_fraction": 0.25},
        "descriptor": {"kind": "chebyshev", "radial_rc": 5.0, "radial_order": 6,
                       "angular_rc": 4.0, "angular_order": 3},
        "network": {"hidden": list(hidden)},
        "training": {"optimizer": optimizer, "epochs": epochs, "threads": 1, **training},
        "output": str(tmp_path / optimizer), "figures": False})


def _log(run):
    import json

    return [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]


def test_levenberg_marquardt_never_raises_the_loss_and_converges(tmp_path):
    # energies only, fewer weights (61) than structures (90): Gauss-Newton is well posed
    cfg = _config(tmp_path, "lm", 20, hidden=(4,), force_weight=0.0)
    metrics = Trainer(cfg, progress=False, log=None).run()
    losses = [r["loss"] for r in _log(tmp_path / "lm")]
    assert all(b <= a * (1 + 1e-12) for a, b in itertools.pairwise(losses)), losses
    assert losses[-1] < 0.1 * losses[0]
    assert metrics["test_energy_mae_meV_per_atom"] < 6.0


def test_kalman_filter_trains_energies_and_forces(tmp_path):
    cfg = _config(tmp_path, "kalman", 4, force_weight=0.1)
    metrics = Trainer(cfg, progress=False, log=None).run()
    log = _log(tmp_path / "kalman")
    assert log[-1]["validation"]["energy_rmse_meV_per_atom"] < 0.2 * log[0]["validation"][
        "energy_rmse_meV_per_atom"] or metrics["test_energy_mae_meV_per_atom"] < 3.0
    assert metrics["test_energy_mae_meV_per_atom"] < 6.0
    assert metrics["test_force_rmse_eV_per_A"] < 0.35


@pytest.mark.parametrize("optimizer, epochs, settings, drop, mae", [
    ("adam", 40, dict(learning_rate=1e-2, learning_rate_final=1e-4, batch_size=4), 10, 5.0),
    ("lbfgs", 15, dict(lbfgs_iterations_per_epoch=4), 10, 5.0),
    # ænet's online_sd (one structure per step) on energies, as ænet uses it; the loss is in
    # eV² (per atom), hence the large step
    ("sgd", 30, dict(learning_rate=8.0, learning_rate_final=0.1, batch_size=1, momentum=0.5,
                     force_weight=0.0), 4, 10.0),
])
def test_first_order_optimizers_converge_on_graphene(tmp_path, optimizer, epochs, settings,
                                                     drop, mae):
    """Each optimizer lowers the loss many times over and gives a validation-chosen model
    with a test error of a few meV/atom (the set's per-atom energies spread over ~30)."""
    settings = {"force_weight": 0.1, **settings}
    metrics = Trainer(_config(tmp_path, optimizer, epochs, **settings), progress=False,
                      log=None).run()
    log = _log(tmp_path / optimizer)
    assert log[-1]["loss"] < log[0]["loss"] / drop
    assert metrics["test_energy_mae_meV_per_atom"] < mae
