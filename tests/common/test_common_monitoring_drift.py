"""Unit tests of the reference profile, drift statistics and performance estimates
(common.monitoring.profile, .drift, .performance) on synthetic data with known answers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from common.errors import ArtifactError
from common.monitoring.drift import (
    PSI_MODERATE,
    categorical_drift,
    detect_drift,
    numeric_drift,
    psi,
)
from common.monitoring.performance import calibration_error, changes, estimated, realised
from common.monitoring.profile import (
    PROFILE_FILE,
    ReferenceProfile,
    build_profile,
    categorical_profile,
    numeric_profile,
)

KINDS = {"age": "numeric", "plan": "category", "flag": "numeric"}


def frame(n: int, seed: int, *, age_shift: float = 0.0, basic_share: float = 0.6) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "age": rng.normal(40 + age_shift, 10, n),
            "plan": np.where(rng.random(n) < basic_share, "basic", "premium"),
            "flag": (rng.random(n) < 0.2).astype(int),
        }
    )


@pytest.fixture(scope="module")
def profile() -> ReferenceProfile:
    reference = frame(5000, seed=0)
    scores = np.random.default_rng(1).beta(2, 5, 5000)
    return build_profile(reference, KINDS, scores=scores, score_name="p", threshold=0.3)


def test_numeric_profile_has_quantile_bins_statistics_and_a_sample() -> None:
    values = np.append(np.random.default_rng(0).normal(size=10_000), [np.nan] * 100)
    p = numeric_profile(values)
    assert len(p.edges) == 9 and len(p.shares) == 10
    assert np.allclose(p.shares, 0.1, atol=0.01)  # deciles: a tenth of the rows each
    assert p.missing == pytest.approx(100 / 10_100)
    assert p.quantiles["p50"] == pytest.approx(0.0, abs=0.05)
    assert len(p.sample) == 2000 and p.sample == sorted(p.sample)


def test_a_column_with_few_values_keeps_each_edge_once() -> None:
    p = numeric_profile(np.array([0] * 80 + [1] * 20))
    assert p.edges == sorted(set(p.edges))
    assert sum(p.shares) == pytest.approx(1.0)


def test_categorical_profile_shares_and_empty_columns_are_refused() -> None:
    p = categorical_profile(["a", "b", "a", None])
    assert p.shares == {"a": pytest.approx(2 / 3), "b": pytest.approx(1 / 3)}
    assert p.missing == 0.25
    with pytest.raises(ValueError, match="no values"):
        categorical_profile([None, None])
    with pytest.raises(ValueError, match="'age'"):
        build_profile({"age": [np.nan]}, {"age": "numeric"})
    with pytest.raises(ValueError, match="'nope' is not in the data"):
        build_profile({"age": [1.0]}, {"nope": "numeric"})


def test_profile_round_trips_through_the_artifact(tmp_path: Path, profile) -> None:
    assert profile.save(tmp_path) == tmp_path / PROFILE_FILE
    assert ReferenceProfile.load(tmp_path) == profile
    assert ReferenceProfile.load(tmp_path / "elsewhere") is None  # an older artifact
    (tmp_path / PROFILE_FILE).write_text("{not json")
    with pytest.raises(ArtifactError, match="reference profile"):
        ReferenceProfile.load(tmp_path)


def test_probability_scores_get_a_readable_histogram(profile) -> None:
    assert profile.score_histogram is not None
    assert sum(profile.score_histogram.counts) == 5000
    assert build_profile({"x": [1.0]}, {"x": "numeric"}, scores=[5.0, 7.0]).score_histogram is None


def test_psi_is_zero_for_equal_shares_and_grows_with_the_shift() -> None:
    assert psi([0.5, 0.5], [0.5, 0.5]) == 0.0
    assert psi([0.5, 0.5], [0.4, 0.6]) < psi([0.5, 0.5], [0.2, 0.8])
    assert np.isfinite(psi([0.5, 0.5, 0.0], [0.5, 0.0, 0.5]))  # empty bins do not blow up


def test_same_distribution_is_stable_and_a_shift_is_drift(profile) -> None:
    same = detect_drift(profile, frame(2000, seed=5))
    assert same.drifted == []
    assert all(f.status == "stable" for f in same.features)
    moved = detect_drift(profile, frame(2000, seed=5, age_shift=8, basic_share=0.2))
    assert set(moved.drifted) == {"age", "plan"}
    by_name = {f.feature: f for f in moved.features}
    assert by_name["age"].status == "major" and by_name["age"].test == "ks"
    assert by_name["age"].p_value < 0.01 and by_name["age"].distance > 0.5
    assert by_name["plan"].test == "chi2" and by_name["plan"].distance_name == "jensen_shannon"
    assert moved.metrics()["drift.share_drifted"] == pytest.approx(2 / 3)


def test_a_small_batch_is_not_called_drifted_on_psi_noise_alone(profile) -> None:
    # 30 rows: PSI is inflated by sampling (about bins / rows) but the test does not reject.
    small = numeric_drift("age", profile.features["age"], frame(30, seed=9)["age"])
    assert not small.drifted


def test_unseen_levels_and_missing_values_count_as_drift(profile) -> None:
    ref = profile.features["plan"]
    unseen = categorical_drift("plan", ref, ["enterprise"] * 500)
    assert unseen.drifted and unseen.status == "major"
    empty = numeric_drift("age", profile.features["age"], [np.nan] * 500)
    assert empty.drifted and empty.p_value == 0.0


def test_prediction_drift_and_missing_columns(profile) -> None:
    result = detect_drift(profile, frame(2000, seed=3), scores=np.full(2000, 0.9))
    assert result.prediction is not None and result.prediction.psi > PSI_MODERATE
    assert result.metrics()["drift.prediction_psi"] == result.prediction.psi
    with pytest.raises(ValueError, match="plan"):
        detect_drift(profile, frame(10, seed=3).drop(columns="plan"))


def test_calibration_error_of_calibrated_and_overconfident_scores() -> None:
    rng = np.random.default_rng(0)
    p = rng.random(50_000)
    y = (rng.random(50_000) < p).astype(int)
    assert calibration_error(y, p) < 0.01
    assert calibration_error(y, np.where(p > 0.5, 0.99, 0.01)) > 0.2


def test_cbpe_estimates_the_auc_of_calibrated_probabilities_without_labels() -> None:
    rng = np.random.default_rng(1)
    p = rng.beta(2, 5, 20_000)
    y = (rng.random(20_000) < p).astype(int)
    guess = estimated(p, threshold=0.3)
    truth = realised(y, p, threshold=0.3)
    assert guess["roc_auc"] == pytest.approx(roc_auc_score(y, p), abs=0.01)
    assert guess["precision"] == pytest.approx(truth["precision"], abs=0.01)
    assert guess["recall"] == pytest.approx(truth["recall"], abs=0.01)
    # Ties (e.g. isotonic calibration) are straight segments of the expected ROC curve.
    tied = np.round(p, 1)
    assert estimated(tied, 0.3)["roc_auc"] == pytest.approx(
        roc_auc_score((rng.random(20_000) < tied).astype(int), tied), abs=0.015
    )


def test_realised_needs_both_classes_and_changes_point_the_right_way() -> None:
    with pytest.raises(ValueError, match="one class"):
        realised(np.zeros(10), np.linspace(0, 1, 10), 0.5)
    out = changes({"roc_auc": 0.80, "calibration_error": 0.06}, {"roc_auc": 0.85,
                  "calibration_error": 0.02})  # fmt: skip
    assert out == {"roc_auc_drop": pytest.approx(0.05),
                   "calibration_error_increase": pytest.approx(0.04)}  # fmt: skip
