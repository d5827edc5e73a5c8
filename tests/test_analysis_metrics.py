"""Error metrics against hand-computed answers (hdnnp.analysis.metrics)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hdnnp.analysis.metrics import (
    METRIC_KEYS,
    energy_metrics,
    force_metrics,
    pearson_r,
    regression_metrics,
    squared_errors,
)
from hdnnp.errors import HdnnpError


def test_pearson_exactly_linear_is_one_and_anticorrelated_is_minus_one():
    x = np.linspace(-3.0, 7.0, 50)
    assert pearson_r(x, 2.5 * x - 4.0) == pytest.approx(1.0, abs=1e-15)
    assert pearson_r(x, -0.1 * x + 100.0) == pytest.approx(-1.0, abs=1e-15)


def test_pearson_hand_computed_and_scipy():
    # x = (1, 2, 3), y = (1, 3, 2): Σdxdy = 1, Σdx² = 2, Σdy² = 2 → r = 0.5
    assert pearson_r([1, 2, 3], [1, 3, 2]) == pytest.approx(0.5, abs=1e-15)
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(3)
    x = rng.normal(size=200)
    y = x + rng.normal(size=200)
    assert pearson_r(x, y) == pytest.approx(stats.pearsonr(x, y)[0], abs=1e-12)


def test_pearson_is_not_the_printed_formula_with_factor_n():
    # eq. 3.1 as printed divides by n: r would be 1/n for perfect correlation
    x = np.arange(10.0)
    assert pearson_r(x, x) == pytest.approx(1.0)


def test_pearson_undefined_cases_and_huge_values():
    assert math.isnan(pearson_r([1.0, 1.0, 1.0], [1.0, 2.0, 3.0]))
    assert math.isnan(pearson_r([1.0], [2.0]))
    x = np.array([1e200, 2e200, 3e200])
    assert pearson_r(x, x) == pytest.approx(1.0)


def test_regression_metrics_hand_computed():
    # errors: (0, 0, 1, -3)
    m = regression_metrics([1.0, 2.0, 4.0, 1.0], [1.0, 2.0, 3.0, 4.0])
    assert tuple(m) == METRIC_KEYS
    assert m["n"] == 4 and isinstance(m["n"], int)
    assert m["mae"] == pytest.approx(1.0)
    assert m["rmse"] == pytest.approx(math.sqrt(10.0 / 4.0))
    assert m["max_abs"] == pytest.approx(3.0)
    assert m["mean_error"] == pytest.approx(-0.5)
    # R² = 1 - 10 / Σ(t - 2.5)² = 1 - 10/5 = -1
    assert m["r2"] == pytest.approx(-1.0)
    # pred (1,2,4,1), ref (1,2,3,4): means 2, 2.5; Σdpdt = 0.75+0.5·0+... computed by hand
    dp = np.array([-1.0, 0.0, 2.0, -1.0])
    dt = np.array([-1.5, -0.5, 0.5, 1.5])
    assert m["pearson_r"] == pytest.approx((dp @ dt) / math.sqrt((dp @ dp) * (dt @ dt)))


def test_regression_metrics_perfect_prediction():
    t = np.array([[0.5, -1.0], [2.0, 3.0]])
    m = regression_metrics(t, t)
    assert m["mae"] == m["rmse"] == m["max_abs"] == m["mean_error"] == 0.0
    assert m["r2"] == 1.0 and m["pearson_r"] == pytest.approx(1.0)
    assert m["n"] == 4


def test_regression_metrics_ignores_non_finite_pairs():
    m = regression_metrics([1.0, np.nan, 3.0, 5.0], [1.0, 2.0, np.inf, 4.0])
    assert m["n"] == 2
    assert m["mae"] == pytest.approx(0.5)
    assert m["max_abs"] == pytest.approx(1.0)


@pytest.mark.parametrize("pred, ref", [([], []), ([np.nan], [1.0])])
def test_regression_metrics_empty_input_is_a_clear_error(pred, ref):
    with pytest.raises(HdnnpError, match="no finite values"):
        regression_metrics(pred, ref)


def test_regression_metrics_shape_mismatch():
    with pytest.raises(HdnnpError, match="different shapes"):
        regression_metrics([1.0, 2.0], [1.0, 2.0, 3.0])


def test_energy_metrics_are_per_atom_in_meV():
    ref = np.array([-100.0, -50.0, -10.0])
    n = np.array([10, 5, 2])
    pred = ref + np.array([0.05, -0.01, 0.0])  # per atom: +5, -2, 0 meV
    m = energy_metrics(ref, pred, n)
    assert m["energy_mae_meV_per_atom"] == pytest.approx(7.0 / 3.0)
    assert m["energy_rmse_meV_per_atom"] == pytest.approx(math.sqrt(29.0 / 3.0))
    assert m["energy_max_abs_meV_per_atom"] == pytest.approx(5.0)
    assert m["energy_mean_error_meV_per_atom"] == pytest.approx(1.0)
    assert m["n_structures"] == 3


def test_energy_metrics_rejects_bad_atom_counts():
    with pytest.raises(HdnnpError):
        energy_metrics([1.0, 2.0], [1.0, 2.0], [1, 0])
    with pytest.raises(HdnnpError):
        energy_metrics([1.0, 2.0], [1.0, 2.0], [1])


def test_force_metrics_units():
    ref = np.zeros((2, 3))
    pred = np.array([[0.1, 0.0, 0.0], [0.0, -0.2, 0.0]])
    ev = force_metrics(ref, pred)
    mev = force_metrics(ref, pred, unit="meV/A")
    assert ev["force_mae_eV_per_A"] == pytest.approx(0.05)
    assert ev["force_rmse_eV_per_A"] == pytest.approx(math.sqrt(0.05 / 6.0))
    assert mev["force_mae_meV_per_A"] == pytest.approx(50.0)
    assert mev["force_max_abs_meV_per_A"] == pytest.approx(200.0)
    assert ev["n_force_components"] == 6
    with pytest.raises(HdnnpError, match="unknown force unit"):
        force_metrics(ref, pred, unit="kcal")


def test_squared_errors():
    np.testing.assert_allclose(squared_errors([1.0, 3.0, np.nan], [0.0, 1.0, 1.0]), [1.0, 4.0])
