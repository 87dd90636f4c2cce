"""The Forecaster contract (forecast/model.py): merging newer history onto the series, normal
intervals, building models by name, and save -> load giving the same forecasts for every model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from common.errors import ArtifactError, UserError
from forecast.config import ALL_MODELS, ForecastConfig, LSTMConfig, ProphetConfig
from forecast.model import (
    FORECAST_COLUMNS,
    Forecaster,
    HistoryError,
    build,
    extend,
    forecaster_class,
    gaussian_interval,
    load,
)

START = pd.Timestamp("2024-01-01")
FAST = ForecastConfig(
    prophet=ProphetConfig(uncertainty_samples=30),
    lstm=LSTMConfig(epochs=4, hidden=8, patience=2),
    seed=5,
    level=0.9,
)


def daily(values: np.ndarray, start: pd.Timestamp = START) -> pd.DataFrame:
    return pd.DataFrame({"ds": pd.date_range(start, periods=len(values), freq="D"), "y": values})


def seasonal_series(n: int) -> np.ndarray:
    t = np.arange(n)
    return 10 + 3 * np.sin(2 * np.pi * t / 7) + np.random.default_rng(0).normal(0, 0.3, n)


# -- extend -------------------------------------------------------------------------------
def test_extend_appends_and_new_values_win() -> None:
    known = daily(np.arange(5.0))
    new = pd.DataFrame({"ds": ["2024-01-05", "2024-01-06"], "y": [40.0, 50.0]})
    merged = extend(known, new, "D")
    assert list(merged["y"]) == [0.0, 1.0, 2.0, 3.0, 40.0, 50.0]
    assert (merged["ds"] == pd.date_range(START, periods=6, freq="D")).all()


def test_extend_interpolates_a_gap_and_leaves_empty_history_alone() -> None:
    known = daily(np.array([0.0, 1.0]))
    merged = extend(known, pd.DataFrame({"ds": ["2024-01-05"], "y": [4.0]}), "D")
    np.testing.assert_allclose(merged["y"], [0.0, 1.0, 2.0, 3.0, 4.0])
    assert extend(known, pd.DataFrame({"ds": [], "y": []}), "D") is known


def test_extend_refuses_points_before_the_series_or_far_after_it() -> None:
    known = daily(np.array([5.0, 6.0]))
    with pytest.raises(HistoryError, match="outside the series' span"):
        extend(known, daily(np.array([3.0]), START - pd.Timedelta("1D")), "D")
    with pytest.raises(HistoryError, match="outside the series' span"):
        extend(known, daily(np.array([3.0]), START + pd.Timedelta(days=20_000)), "D")


def test_extend_reads_zoned_timestamps_as_utc() -> None:
    known = daily(np.array([5.0, 6.0]))
    nine_in_tokyo = (START + pd.Timedelta("2D") + pd.Timedelta("9h")).tz_localize("Asia/Tokyo")
    merged = extend(known, pd.DataFrame({"ds": [nine_in_tokyo], "y": [7.0]}), "D")
    assert merged["ds"].iloc[-1] == START + pd.Timedelta("2D")  # midnight UTC
    assert merged["y"].tolist() == [5.0, 6.0, 7.0]


def test_extend_rejects_points_off_the_grid_and_non_numbers() -> None:
    known = daily(np.arange(3.0))
    with pytest.raises(HistoryError, match="not on the series' D grid"):
        extend(known, pd.DataFrame({"ds": ["2024-01-04 12:00"], "y": [1.0]}), "D")
    with pytest.raises(HistoryError, match="finite"):
        extend(known, pd.DataFrame({"ds": ["2024-01-04"], "y": ["abc"]}), "D")
    with pytest.raises(HistoryError):
        extend(known, pd.DataFrame({"ds": ["2024-01-04"], "y": [np.inf]}), "D")
    assert issubclass(HistoryError, UserError)


# -- gaussian_interval ----------------------------------------------------------------------
def test_gaussian_interval_is_symmetric_with_the_normal_quantile() -> None:
    yhat, sigma = np.array([1.0, 2.0]), np.array([1.0, 3.0])
    lower, upper = gaussian_interval(yhat, sigma, 0.8)
    np.testing.assert_allclose(upper - yhat, yhat - lower)
    np.testing.assert_allclose(upper - yhat, stats.norm.ppf(0.9) * sigma)
    np.testing.assert_allclose(gaussian_interval(yhat, sigma, 0.95)[1] - yhat, 1.959964 * sigma)


# -- build, forecaster_class and the contract -----------------------------------------------
def test_every_model_builds_by_name() -> None:
    for name in ALL_MODELS:
        model = build(name, freq="D", season=7, horizon=14, config=FAST)
        assert isinstance(model, Forecaster) and model.name == name
        assert (model.freq, model.season, model.level) == ("D", 7, 0.9)
        assert forecaster_class(name) is type(model)
    lstm = build("lstm", freq="D", season=7, horizon=14, config=FAST)
    assert (lstm.horizon, lstm.seed, lstm.config) == (14, 5, FAST.lstm)
    assert build("prophet", freq="D", season=7, horizon=14, config=FAST).config == FAST.prophet


def test_unknown_model_names_are_user_errors() -> None:
    with pytest.raises(UserError, match="unknown model 'arima'"):
        forecaster_class("arima")
    with pytest.raises(UserError):
        build("arima", freq="D", season=7, horizon=7, config=FAST)


def test_the_contract_guards_its_inputs() -> None:
    model = forecaster_class("naive")("D", 7)
    with pytest.raises(RuntimeError, match="not fitted"):
        model.predict(3)
    with pytest.raises(UserError, match="at least 2 finite values"):
        model.fit(daily(np.array([1.0, np.nan, 2.0])))
    with pytest.raises(UserError):
        model.fit(daily(np.array([1.0])))
    model.fit(daily(np.arange(5.0)))
    with pytest.raises(ValueError, match="at least 1"):
        model.predict(0)
    assert list(model.predict(2).columns) == FORECAST_COLUMNS


# -- save and load ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def fitted() -> dict[str, Forecaster]:
    data = daily(seasonal_series(90))
    return {
        name: build(name, freq="D", season=7, horizon=14, config=FAST).fit(data)
        for name in ALL_MODELS
    }


@pytest.mark.parametrize("name", ALL_MODELS)
def test_save_then_load_gives_the_same_forecasts(
    name: str, fitted: dict[str, Forecaster], tmp_path: Path
) -> None:
    model = fitted[name]
    model.save(tmp_path / name)
    loaded = load(tmp_path / name)
    assert type(loaded) is type(model)
    assert loaded.params() == model.params()
    pd.testing.assert_frame_equal(loaded.history_, model.history_)
    pd.testing.assert_frame_equal(loaded.predict(14), model.predict(14))
    newer = daily(seasonal_series(100)[90:] + 1, start=START + pd.Timedelta(days=90))
    pd.testing.assert_frame_equal(loaded.predict(7, newer), model.predict(7, newer))


def test_loading_nothing_or_a_broken_model_is_an_artifact_error(
    fitted: dict[str, Forecaster], tmp_path: Path
) -> None:
    with pytest.raises(ArtifactError, match="cannot read the saved model"):
        load(tmp_path / "missing")
    fitted["ets"].save(tmp_path / "ets")
    (tmp_path / "ets" / "ets.json").unlink()
    with pytest.raises(ArtifactError, match="ets"):
        load(tmp_path / "ets")
    fitted["lstm"].save(tmp_path / "lstm")
    (tmp_path / "lstm" / "lstm.pt").write_bytes(b"not a state dict")
    with pytest.raises(ArtifactError, match=r"lstm\.pt"):
        load(tmp_path / "lstm")
