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
