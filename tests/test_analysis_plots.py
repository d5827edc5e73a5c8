"""Figures of hdnnp.analysis.plots: files are written (atomically) and valid PNG."""

from __future__ import annotations

import numpy as np
import pytest

from hdnnp.analysis import plots
from hdnnp.errors import HdnnpError

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def assert_png(path):
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC
    assert len(data) > 2000
    # atomic write: no temporary file left next to the figure
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.parametrize("layout", ["overlay", "stacked"])
def test_energy_distribution(tmp_path, layout):
    rng = np.random.default_rng(0)
    data = {"MD": rng.normal(-7.5, 0.1, 300), "augmented": rng.normal(-7.0, 0.5, 500),
            "with NaN": np.array([np.nan, -7.0, -6.5])}
    out = plots.plot_energy_distribution(data, tmp_path / "dist.png", layout=layout)
    assert out == tmp_path / "dist.png"
    assert_png(out)


def test_energy_distribution_single_array_and_single_value(tmp_path):
    assert_png(plots.plot_energy_distribution(np.array([-3.0]), tmp_path / "one.png"))


def test_energy_distribution_errors(tmp_path):
    with pytest.raises(HdnnpError, match="no finite values"):
        plots.plot_energy_distribution({"a": np.array([np.nan])}, tmp_path / "x.png")
    with pytest.raises(HdnnpError, match="no finite values"):
        plots.plot_energy_distribution({}, tmp_path / "x.png")
    with pytest.raises(HdnnpError, match="layout"):
        plots.plot_energy_distribution({"a": [1.0]}, tmp_path / "x.png", layout="side")
    with pytest.raises(HdnnpError, match="unknown figure format"):
        plots.plot_energy_distribution({"a": [1.0]}, tmp_path / "x.docx")
    assert not list(tmp_path.iterdir())


def test_pdf_output(tmp_path):
    out = plots.plot_energy_distribution({"a": [1.0, 2.0]}, tmp_path / "d.pdf")
    assert out.read_bytes()[:4] == b"%PDF"


def _log(n=20, forces=True, test=True):
    out = []
    for e in range(1, n + 1):
        rec = {"epoch": e, "train": {"energy_rmse_meV_per_atom": 100.0 / e,
                                     "energy_mae_meV_per_atom": 80.0 / e,
                                     "force_rmse_meV_per_A": 500.0 / e if forces else None},
               "best": e == n - 2}
        if test:
            rec["test"] = {"energy_rmse_meV_per_atom": 110.0 / e + 1.0,
                           "energy_mae_meV_per_atom": 90.0 / e}
        out.append(rec)
    return out


@pytest.mark.parametrize("forces, test, metric", [(True, True, "rmse"), (False, False, "mae")])
def test_loss_curves(tmp_path, forces, test, metric):
    assert_png(plots.plot_loss_curves(_log(forces=forces, test=test), tmp_path / "loss.png",
                                      metric=metric))


def test_loss_curves_from_file_and_errors(tmp_path):
    import json

    path = tmp_path / "log.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in _log()) + "\n")
    assert_png(plots.plot_loss_curves(path, tmp_path / "loss.png"))
    with pytest.raises(HdnnpError, match="no epochs"):
        plots.plot_loss_curves([], tmp_path / "x.png")
    with pytest.raises(HdnnpError, match="no RMSE values"):
        plots.plot_loss_curves([{"epoch": 1, "train": {}}], tmp_path / "x.png")
    with pytest.raises(HdnnpError, match="metric"):
        plots.plot_loss_curves(_log(), tmp_path / "x.png", metric="max")


def test_loss_comparison(tmp_path):
    logs = {f"seed {k}": _log() for k in range(3)}
    assert_png(plots.plot_loss_comparison(logs, tmp_path / "cmp.png", target=5.0))
    with pytest.raises(HdnnpError, match="no test"):
        plots.plot_loss_comparison({"a": _log(test=False)}, tmp_path / "x.png")


@pytest.mark.parametrize("n, style", [(50, "auto"), (30000, "auto"), (100, "hexbin")])
def test_parity(tmp_path, n, style):
    rng = np.random.default_rng(0)
    ref = rng.normal(size=(n, 3))
    pred = ref + rng.normal(scale=0.05, size=ref.shape)
    out = plots.plot_parity({"train": ref, "test": ref[: n // 2]},
                            {"train": pred, "test": pred[: n // 2]}, tmp_path / "p.png",
                            quantity="force", style=style)
    assert_png(out)


def test_parity_single_set_and_errors(tmp_path):
    x = np.linspace(-8.0, -7.0, 10)
    assert_png(plots.plot_parity(x, x + 0.001, tmp_path / "e.png", label="test"))
    assert_png(plots.plot_parity(x, x, tmp_path / "s.png", quantity="stress", units="GPa"))
    with pytest.raises(HdnnpError, match="both"):
        plots.plot_parity({"a": x}, x, tmp_path / "x.png")
    with pytest.raises(HdnnpError, match="different sets"):
        plots.plot_parity({"a": x}, {"b": x}, tmp_path / "x.png")
    with pytest.raises(HdnnpError, match="no finite"):
        plots.plot_parity([np.nan], [1.0], tmp_path / "x.png")


def test_quantity_units():
    assert plots._quantity("energy", None, None, None) == (
        "energy per atom", "eV/atom", "meV/atom", 1000.0)
    assert plots._quantity("force", "eV/Å", None, None)[3] == 1.0
    assert plots._quantity("force", "meV/Å", None, None) == (
        "force component", "meV/Å", "meV/Å", 1.0)


def test_error_histogram(tmp_path):
    rng = np.random.default_rng(1)
    ref = rng.normal(size=500)
    pred = ref + rng.normal(scale=0.01, size=500)
    pred[:3] = ref[:3]  # exact zeros are counted, not plotted
    assert_png(plots.plot_error_histogram({"train": ref, "test": ref[:50]},
                                          {"train": pred, "test": pred[:50]}, tmp_path / "h.png"))
    assert_png(plots.plot_error_histogram(ref, ref, tmp_path / "zero.png", quantity="force"))


def test_convergence(tmp_path):
    sizes = [500, 1000, 1500, 2000]
    err = np.array([[30.0, 20.0, 15.0, 12.0], [32.0, 21.0, np.nan, 11.0]])
    assert_png(plots.plot_convergence(sizes, err, tmp_path / "c1.png", "training structures"))
    assert_png(plots.plot_convergence(sizes, err, tmp_path / "c2.png", "training structures",
                                      mode="mean_std", target=5.0, logy=True))
    assert_png(plots.plot_convergence(["L-BFGS", "Adam"], {"seed 1": [5, 6], "seed 2": [4, 7]},
                                      tmp_path / "c3.png", "optimizer"))
    assert_png(plots.plot_convergence([2.5, 4.5], [10.0, 3.0], tmp_path / "c4.png",
                                      "cutoff radius (Å)"))
    with pytest.raises(HdnnpError, match="4 values per run"):
        plots.plot_convergence(sizes, [1.0, 2.0], tmp_path / "x.png", "n")
    with pytest.raises(HdnnpError, match="mode"):
        plots.plot_convergence(sizes, err, tmp_path / "x.png", "n", mode="box")


def test_scaling_scan_plot(tmp_path):
    f = np.linspace(-0.1, 0.1, 11)
    true = -7.9 + 40 * f ** 2
    assert_png(plots.plot_scaling_scan(f, true + 0.01, tmp_path / "s1.png",
                                       reference_energy_per_atom=true, training_max=-7.6,
                                       training_mean=-7.85))
    assert_png(plots.plot_scaling_scan(f, {"A": true, "B (augmented)": true + 0.02},
                                       tmp_path / "s2.png",
                                       training_max={"A": -7.7, "B": -7.5}))
    with pytest.raises(HdnnpError, match="10 energies"):
        plots.plot_scaling_scan(f, true[:10], tmp_path / "x.png")
