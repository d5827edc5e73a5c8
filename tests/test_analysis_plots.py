"""Figures of hdnnp.analysis.plots: files are written (atomically) and valid PNG."""

from __future__ import annotations

from pathlib import Path

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


def _log(n=20, forces=True, test=True, old=False):
    """A log of ``n`` epochs: train and validation metrics (``test``: with the
    selection set), or ``old``: the format before the validation split ("test" and
    force metrics in meV/Å)."""
    fkey, fscale = ("force_rmse_meV_per_A", 1000.0) if old else ("force_rmse_eV_per_A", 1.0)
    out = []
    for e in range(1, n + 1):
        rec = {"epoch": e, "train": {"energy_rmse_meV_per_atom": 100.0 / e,
                                     "energy_mae_meV_per_atom": 80.0 / e,
                                     fkey: 0.5 * fscale / e if forces else None},
               "best": e == n - 2}
        if test:
            rec["test" if old else "validation"] = {
                "energy_rmse_meV_per_atom": 110.0 / e + 1.0,
                "energy_mae_meV_per_atom": 90.0 / e,
                fkey: (0.6 / e + 0.01) * fscale if forces else None}
        out.append(rec)
    return out


@pytest.fixture
def figures(monkeypatch):
    """The figures the plot functions save, as ``{file name: Figure}``."""
    saved = {}
    real = plots.save_figure

    def save(fig, path, dpi=None):
        saved[Path(path).name] = fig
        return real(fig, path, dpi)

    monkeypatch.setattr(plots, "save_figure", save)
    return saved


def _lines(ax):
    """``{legend label: (x, y)}`` of the lines of an axis."""
    return {ln.get_label(): (np.asarray(ln.get_xdata(), float), np.asarray(ln.get_ydata(),
                                                                            float))
            for ln in ax.get_lines()}


@pytest.mark.parametrize("forces, test, metric", [(True, True, "rmse"), (False, False, "mae")])
def test_loss_curves(tmp_path, forces, test, metric):
    assert_png(plots.plot_loss_curves(_log(forces=forces, test=test), tmp_path / "loss.png",
                                      metric=metric))


def test_loss_curves_draw_every_split_in_eV_per_A(tmp_path, figures):
    log = _log(n=5)
    for rec in log:  # a log with all three splits
        rec["test"] = {"energy_rmse_meV_per_atom": 50.0, "force_rmse_eV_per_A": 0.3}
    assert_png(plots.plot_loss_curves(log, tmp_path / "loss.png"))
    energy, force = figures["loss.png"].axes[:2]
    assert energy.get_ylabel() == "energy RMSE (meV/atom)"
    assert force.get_ylabel() == "force RMSE (eV/Å)"
    lines = _lines(force)
    assert {"train", "validation", "test"} <= set(lines)
    np.testing.assert_allclose(lines["train"][1], [0.5 / e for e in range(1, 6)])
    np.testing.assert_allclose(lines["validation"][1], [0.6 / e + 0.01 for e in range(1, 6)])
    # split colours: the same in every figure
    colors = {ln.get_label(): ln.get_color() for ln in force.get_lines()}
    assert colors["train"] == plots.SPLIT_COLORS["train"]
    assert colors["validation"] == plots.SPLIT_COLORS["validation"]
    assert colors["test"] == plots.SPLIT_COLORS["test"]
    # the best epoch (flagged 3) is starred on the validation curve
    assert "best epoch 3" in lines
    assert lines[f"validation {0.6 / 3 + 0.01:.3g}"][1][0] == pytest.approx(0.6 / 3 + 0.01)
    assert _lines(energy)[f"validation {110.0 / 3 + 1.0:.3g}"][0][0] == 3.0  # and here
    # without the train curve
    plots.plot_loss_curves(log, tmp_path / "val.png", show_train=False)
    assert "train" not in _lines(figures["val.png"].axes[0])


def test_loss_curves_of_an_old_log(tmp_path, figures):
    """An old log's test (meV/Å) is drawn as it was, in eV/Å; its best epoch is starred
    on the test curve."""
    log = _log(n=6, old=True)
    for rec in log:
        rec.pop("best")  # no flags: the lowest test RMSE, the last epoch
    assert_png(plots.plot_loss_curves(log, tmp_path / "loss.png"))
    energy, force = figures["loss.png"].axes[:2]
    assert force.get_ylabel() == "force RMSE (eV/Å)"
    lines = _lines(force)
    assert "validation" not in lines
    np.testing.assert_allclose(lines["train"][1], [0.5 / e for e in range(1, 7)])
    np.testing.assert_allclose(lines["test"][1], [0.6 / e + 0.01 for e in range(1, 7)])
    assert "best epoch 6" in lines and f"test {0.6 / 6 + 0.01:.3g}" in lines
    assert f"test {110.0 / 6 + 1.0:.3g}" in _lines(energy)


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


def test_loss_comparison(tmp_path, figures):
    logs = {f"seed {k}": _log() for k in range(3)}
    assert_png(plots.plot_loss_comparison(logs, tmp_path / "cmp.png", target=5.0))
    ax = figures["cmp.png"].axes[0]
    assert ax.get_ylabel() == "validation energy RMSE (meV/atom)"
    np.testing.assert_allclose(_lines(ax)["seed 0"][1], [110.0 / e + 1.0 for e in range(1, 21)])
    # an old log compares its test curve (its selection set), forces in eV/Å
    plots.plot_loss_comparison({"new": _log(), "old": _log(old=True)}, tmp_path / "mix.png",
                               quantity="force")
    ax = figures["mix.png"].axes[0]
    assert ax.get_ylabel() == "validation/test force RMSE (eV/Å)"
    np.testing.assert_allclose(_lines(ax)["old"][1], _lines(ax)["new"][1])
    plots.plot_loss_comparison(logs, tmp_path / "train.png", split="train")
    assert figures["train.png"].axes[0].get_ylabel() == "train energy RMSE (meV/atom)"
    with pytest.raises(HdnnpError, match="no validation"):
        plots.plot_loss_comparison({"a": _log(test=False)}, tmp_path / "x.png")
    with pytest.raises(HdnnpError, match="no test"):
        plots.plot_loss_comparison(logs, tmp_path / "x.png", split="test")


def test_split_colors():
    c = plots.SPLIT_COLORS
    assert len(set(c.values())) == 3
    assert plots._set_colors(["train", "validation", "test"]) == [
        c["train"], c["validation"], c["test"]]
    assert plots._set_colors(["train", "test"]) == [c["train"], c["test"]]
    # other labels get the colours the splits in the figure leave free, in order
    other = plots._set_colors(["test", "MD", "augmented"])
    assert other == [c["test"], plots.COLORS[0], plots.COLORS[1]]
    other = plots._set_colors(["MD", "train", "augmented", "validation"])
    assert other == [plots.COLORS[2], c["train"], plots.COLORS[3], c["validation"]]
    assert plots._set_colors(["a", "b"]) == list(plots.COLORS[:2])


def test_parity_and_histogram_of_three_splits(tmp_path, figures):
    rng = np.random.default_rng(2)
    ref = {s: rng.normal(size=n) for s, n in (("train", 40), ("validation", 12), ("test", 9))}
    pred = {s: r + 0.01 for s, r in ref.items()}
    assert_png(plots.plot_parity(ref, pred, tmp_path / "p.png"))
    ax = figures["p.png"].axes[0]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert [t.split(":")[0] for t in labels[:3]] == ["train", "validation", "test"]
    colors = [tuple(pc.get_facecolor()[0][:3]) for pc in ax.collections]
    from matplotlib.colors import to_rgb

    assert colors == [to_rgb(plots.SPLIT_COLORS[s]) for s in ("train", "validation", "test")]
    assert_png(plots.plot_parity(ref, pred, tmp_path / "hex.png", style="hexbin"))
    assert len([a for a in figures["hex.png"].axes if a.get_label() != "<colorbar>"]) == 3
    assert_png(plots.plot_error_histogram(ref, pred, tmp_path / "h.png"))
    labels = [t.get_text() for t in figures["h.png"].axes[0].get_legend().get_texts()]
    for s in ("train", "validation", "test"):
        assert f"{s} (n = {ref[s].size})" in labels


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


def test_error_histogram_axis_is_bounded_below_and_sets_normalised(tmp_path):
    """Force components that vanish by symmetry (errors ~1e-16) must not stretch the
    axis over 30 decades; a 50-structure set and a 450-structure one are compared as
    fractions (each sums to 1)."""
    rng = np.random.default_rng(2)
    train = rng.normal(scale=0.05, size=450) ** 2
    test = np.concatenate([rng.normal(scale=0.05, size=40) ** 2, np.full(10, 1e-32)])
    edges = plots.squared_error_edges({"train": train, "test": test}, bins=40)
    assert edges[0] == pytest.approx(min(train.mean(), test.mean()) / 1e6)
    assert edges[-1] == pytest.approx(max(train.max(), test.max()))
    for v in (train, test):
        h, _ = np.histogram(np.clip(v, edges[0], None), bins=edges,
                            weights=np.full(v.size, 1.0 / v.size))
        assert h.sum() == pytest.approx(1.0)
    assert_png(plots.plot_error_histogram({"train": np.zeros(450), "test": np.zeros(50)},
                                          {"train": np.sqrt(train), "test": np.sqrt(test)},
                                          tmp_path / "h.png", quantity="force"))
