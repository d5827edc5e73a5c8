"""1-RDM models (hdnnp.rdm.models/pca/train/report) and the ``hdnnp rdm`` command line."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from hdnnp.cli import main
from hdnnp.errors import HdnnpError
from hdnnp.rdm.generate import GenerationSettings, generate_dataset, load_dataset
from hdnnp.rdm.models import (
    ConvAutoencoder,
    build_model,
    from_upper_features,
    upper_features,
)
from hdnnp.rdm.pca import (
    components_for_tolerance,
    fit_pca,
    rdm_features,
    rdm_from_features,
    residual_variance,
)
from hdnnp.rdm.train import RdmTrainConfig, load_rdm_model, train_rdm_model


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    path = tmp_path_factory.mktemp("rdm") / "d.h5"
    generate_dataset(path, GenerationSettings(n_systems=60, chunk_size=60, seed=2, points=16,
                                              half_width=7.0), progress=False)
    return path


def _small(model, **kw):
    base = {"model": model, "epochs": 4, "batch_size": 16, "hidden": (24,), "latent": 6,
            "components": 8, "orbitals": 3, "seed": 1}
    return RdmTrainConfig(**(base | kw))


def test_physics_model_is_hermitian_psd_with_trace_two_and_diagonal_n():
    torch.manual_seed(0)
    model = build_model({"kind": "physics", "points": 20, "orbitals": 4, "hidden": [16]})
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.7)          # far from the initial (uncorrelated) model
    dx = 0.3
    n = torch.rand(5, 20, dtype=torch.float64) ** 3
    n = 2 * n / (n.sum(dim=1, keepdim=True) * dx)
    g = model(n).detach()
    assert torch.equal(g, g.transpose(-1, -2))
    assert torch.max(torch.abs(torch.diagonal(g, dim1=-2, dim2=-1) - n)) < 1e-13
    assert torch.max(torch.abs(torch.diagonal(g, dim1=-2, dim2=-1).sum(-1) * dx - 2)) < 1e-12
    assert torch.linalg.eigvalsh(g).min() > -1e-12
    # with B = 0 it is the exact uncorrelated two-electron 1-RDM sqrt(n(x) n(x'))
    with torch.no_grad():
        model.net[-1].weight.zero_()
        model.net[-1].bias.zero_()
    g0 = model(n).detach()
    assert torch.allclose(g0, torch.sqrt(n[:, :, None] * n[:, None, :]), atol=1e-7)


def test_pca_with_all_components_reconstructs_exactly_and_tolerance_counts():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 6)) @ rng.normal(size=(6, 9))    # rank 6 in 9 dimensions
    pc = fit_pca(x)
    assert np.allclose(pc.inverse_transform(pc.transform(x)), x, atol=1e-10)
    assert np.allclose(pc.inverse_transform(pc.transform(x, 6)), x, atol=1e-9)
    assert components_for_tolerance(pc.variances, 1e-12) == 6
    assert not np.allclose(pc.inverse_transform(pc.transform(x, 5)), x, atol=1e-3)
    r = residual_variance([3.0, 1.0, 0.0])
    assert np.allclose(r, [1.0, 0.25, 0.0, 0.0])
    assert components_for_tolerance([3.0, 1.0, 0.0], 0.3) == 1
    g = rng.normal(size=(4, 7, 7))
    g = g + np.swapaxes(g, -1, -2)
    f = rdm_features(g)
    assert f.shape == (4, 28)
    assert np.allclose(np.linalg.norm(f, axis=1), np.linalg.norm(g, axis=(1, 2)))
    assert np.array_equal(rdm_from_features(f, 7), g) or np.allclose(rdm_from_features(f, 7), g)
    t = torch.as_tensor(g)
    assert torch.allclose(from_upper_features(upper_features(t), 7), t)
    assert np.allclose(upper_features(t).numpy(), f)


def test_conv_autoencoder_shapes_and_symmetry():
    model = ConvAutoencoder(18, latent=5).double()
    g = torch.rand(3, 18, 18, dtype=torch.float64)
    out = model(g + g.transpose(-1, -2))
    assert out.shape == (3, 18, 18)
    assert torch.equal(out, out.transpose(-1, -2))
    assert model.encode(g).shape == (3, 5)


def test_training_resumes_to_the_same_model_and_selects_by_validation(data, tmp_path):
    full = train_rdm_model(data, tmp_path / "full", _small("physics", epochs=5),
                           progress=False, report=False)
    train_rdm_model(data, tmp_path / "part", _small("physics", epochs=3), progress=False,
                    report=False)
    resumed = train_rdm_model(data, tmp_path / "part", _small("physics", epochs=5),
                              resume=True, progress=False, report=False)
    assert resumed["test"] == full["test"]
    log = [json.loads(line) for line in (tmp_path / "full" / "log.jsonl").read_text()
           .splitlines()]
    assert len(log) == 5
    best = min(log, key=lambda r: r["validation_rdm_mae"])
    assert full["best_epoch"] == best["epoch"]
    split = json.loads((tmp_path / "full" / "split.json").read_text())
    assert not set(split["test"]) & (set(split["train"]) | set(split["validation"]))
    # the physics model keeps its constraints after training, and it learns:
    # better than the uncorrelated sqrt(n n') it starts from
    t = full["test"]
    assert t["density_mae"] < 1e-12 and t["trace_error"] < 1e-10 and t["asymmetry"] == 0.0
    ds = load_dataset(data)
    te = split["test"]
    base = np.sqrt(ds.density[te][:, :, None] * ds.density[te][:, None, :])
    assert t["rdm_mae"] < np.mean(np.abs(base - ds.rdm[te]))
    # the saved model predicts what was evaluated
    model, meta = load_rdm_model(tmp_path / "full")
    assert meta["metrics"]["test"] == full["test"]
    with torch.no_grad():
        pred = model(torch.as_tensor(ds.density[te])).numpy()
    assert np.mean(np.abs(pred - ds.rdm[te])) == pytest.approx(t["rdm_mae"], rel=1e-12)
    with pytest.raises(HdnnpError, match="already holds a run"):
        train_rdm_model(data, tmp_path / "full", _small("physics"), progress=False)
    with pytest.raises(HdnnpError, match=r"other settings.*model"):
        train_rdm_model(data, tmp_path / "full", _small("raw"), resume=True, progress=False)


@pytest.mark.parametrize("kind", ["dense-autoencoder", "conv-autoencoder", "raw", "pca",
                                  "uhf-pca"])
def test_every_model_trains_and_reports_its_metrics(data, tmp_path, kind):
    m = train_rdm_model(data, tmp_path / kind, _small(kind, epochs=2), progress=False,
                        report=(kind == "pca"))
    for key in ("rdm_mae", "kinetic_rel_error", "occupation_mae", "occupation_violation"):
        assert np.isfinite(m["test"][key])
    assert m["test"]["asymmetry"] < 1e-12
    if kind == "uhf-pca":
        assert m["uhf_baseline_test"]["rdm_mae"] < 0.05
    if kind == "pca":
        html = (tmp_path / kind / "report.html").read_text()
        assert "data:image/png;base64" in html and "rdm_mae" in html


def test_absolute_error_loss_trains_and_an_unknown_loss_is_one_line(data, tmp_path):
    """loss="mae" descends (the training loss falls) and is recorded in config.json."""
    cfg = _small("pca", epochs=4)
    cfg.loss = "mae"
    train_rdm_model(data, tmp_path / "mae", cfg, progress=False, report=False)
    log = [json.loads(line) for line in (tmp_path / "mae" / "log.jsonl").read_text().splitlines()]
    assert log[-1]["train_loss"] < log[0]["train_loss"]
    assert json.loads((tmp_path / "mae" / "config.json").read_text())["loss"] == "mae"
    with pytest.raises(HdnnpError, match="unknown loss 'l3'"):
        RdmTrainConfig(model="pca", loss="l3")


def test_pca_command_writes_table_and_figure(data, tmp_path, capsys):
    assert main(["rdm", "pca", str(data), "-o", str(tmp_path / "pca")]) == 0
    summary = json.loads((tmp_path / "pca" / "pca.json").read_text())
    k_n, k_g = summary["components"]["density"]["1.19e-07"], summary["components"]["rdm"][
        "1.19e-07"]
    assert 1 <= k_n <= 16 and k_n < k_g <= 136
    assert (tmp_path / "pca" / "explained_variance.png").stat().st_size > 1000
    assert "| rdm | 136 |" in (tmp_path / "pca" / "pca.md").read_text()


@pytest.mark.parametrize("sub", [[], ["generate"], ["pca"], ["train"], ["report"]])
def test_help_of_every_rdm_command(sub, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["rdm", *sub, "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "examples:" in out and "hdnnp rdm " in out


def test_report_of_a_missing_run_is_one_line_error(tmp_path, capsys):
    assert main(["rdm", "report", str(tmp_path / "none")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("hdnnp: error:") and "\n" not in err


def test_uhf_cache_belongs_to_its_potentials(data, tmp_path):
    """uhf.npz is reused for the same systems and recomputed for others of the same count."""
    from hdnnp.rdm.train import _uhf_rdms

    ds = load_dataset(data, limit=10)
    first = _uhf_rdms(ds, tmp_path, progress=False)
    cached = tmp_path / "uhf.npz"
    stamp = cached.stat().st_mtime_ns
    np.testing.assert_array_equal(_uhf_rdms(ds, tmp_path, progress=False), first)
    assert cached.stat().st_mtime_ns == stamp  # reused
    ds.potential = ds.potential[::-1].copy()  # other systems, same count
    other = _uhf_rdms(ds, tmp_path, progress=False)
    np.testing.assert_allclose(other, first[::-1], atol=1e-8)
    assert cached.stat().st_mtime_ns != stamp  # recomputed


def test_pca_regressor_uses_the_input_pca_it_is_given(data):
    """The PCA fitted once to count components is the model's input basis."""
    ds = load_dataset(data, limit=40)
    pca = fit_pca(ds.density)
    spec = {"kind": "pca", "points": ds.density.shape[1], "hidden": [8], "latent": 4,
            "components": 6, "orbitals": 3, "components_in": 5}
    a, b = build_model(spec), build_model(spec)
    a.fit_normalisation(ds.density, ds.rdm, input_pca=pca)
    b.fit_normalisation(ds.density, ds.rdm)
    for name in ("in_basis", "in_mean", "rdm_mean", "out_basis", "rdm_scale"):
        torch.testing.assert_close(getattr(a, name), getattr(b, name), rtol=0, atol=1e-12)
    np.testing.assert_allclose(a.rdm_mean.numpy(),
                               rdm_features(ds.rdm).mean(axis=0), atol=1e-12)
