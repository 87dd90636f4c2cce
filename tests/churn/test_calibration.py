"""Calibration makes scores into frequencies; the cost threshold follows the business costs."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import brier_score_loss

from churn.calibration import Calibrator, choose_threshold, cost_curve


@pytest.fixture
def overconfident() -> tuple[np.ndarray, np.ndarray]:
    """Labels drawn from p = sigmoid(m), and margins reported three times too large."""
    rng = np.random.default_rng(0)
    margin = rng.normal(-1, 1.5, 20_000)
    y = rng.random(margin.size) < 1 / (1 + np.exp(-margin))
    return 3 * margin, y.astype(int)


@pytest.mark.parametrize("method", ["sigmoid", "isotonic"])
def test_calibration_repairs_overconfident_scores(overconfident, method: str) -> None:
    margin, y = overconfident
    raw = 1 / (1 + np.exp(-margin))
    calibrated = Calibrator(method).fit(margin, y).transform(margin)
    assert brier_score_loss(y, calibrated) < brier_score_loss(y, raw) - 0.01
    assert abs(calibrated.mean() - y.mean()) < 0.01
    assert np.all(np.diff(calibrated[np.argsort(margin)]) >= -1e-12)  # ranking kept


def test_sigmoid_recovers_the_scale(overconfident) -> None:
    margin, y = overconfident
    calibrator = Calibrator("sigmoid").fit(margin, y)
    assert calibrator.params_["a"] == pytest.approx(1 / 3, rel=0.1)


@pytest.mark.parametrize("method", ["sigmoid", "isotonic"])
def test_round_trip(overconfident, method: str) -> None:
    margin, y = overconfident
    calibrator = Calibrator(method).fit(margin, y)
    restored = Calibrator.from_dict(calibrator.to_dict())
    np.testing.assert_array_equal(calibrator.transform(margin), restored.transform(margin))


def test_cost_curve_counts_by_hand() -> None:
    y = np.array([1, 1, 0, 0])
    p = np.array([0.9, 0.3, 0.6, 0.1])
    curve = cost_curve(y, p, cost_missed=100, cost_offer=10, thresholds=np.array([0.5, 0.2]))
    # At 0.5: contact the 0.9 churner and the 0.6 non-churner, miss the 0.3 churner.
    assert curve["contacted"].tolist() == [2, 3]
    assert curve["tp"].tolist() == [1, 2] and curve["missed"].tolist() == [1, 0]
    assert curve["cost"].tolist() == [100 + 2 * 10, 0 + 3 * 10]
    assert curve["precision"].tolist() == [0.5, pytest.approx(2 / 3)]
    assert curve["recall"].tolist() == [0.5, 1.0]


def test_threshold_follows_the_cost_ratio() -> None:
    """With calibrated probabilities the cost-optimal threshold is offer / missed."""
    rng = np.random.default_rng(1)
    p = rng.uniform(0, 1, 200_000)
    y = (rng.random(p.size) < p).astype(int)
    for missed, offer in [(500, 50), (100, 40)]:
        threshold = choose_threshold(y, p, cost_missed=missed, cost_offer=offer)
        assert threshold == pytest.approx(offer / missed, abs=0.03)
