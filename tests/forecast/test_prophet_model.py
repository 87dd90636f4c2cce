"""Prophet as a Forecaster: seasonalities and holidays by frequency, a forecast that depends on
dates only, deterministic intervals, and quiet fits."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pydantic
import pytest

from forecast.config import ProphetConfig
from forecast.prophet_model import ProphetForecaster

START = pd.Timestamp("2024-01-01")
FAST = {"uncertainty_samples": 50}


def series(n: int, freq: str = "D", season: int = 7) -> pd.DataFrame:
    t = np.arange(n)
    y = 10 + 3 * np.sin(2 * np.pi * t / season) + np.random.default_rng(0).normal(0, 0.3, n)
    return pd.DataFrame({"ds": pd.date_range(START, periods=n, freq=freq), "y": y})


@pytest.fixture(scope="module")
def fitted() -> ProphetForecaster:
    return ProphetForecaster("D", 7, config=FAST).fit(series(100))


def test_forecast_frame(fitted: ProphetForecaster) -> None:
    forecast = fitted.predict(14)
    assert list(forecast.columns) == ["ds", "yhat", "yhat_lower", "yhat_upper"]
    assert len(forecast) == 14
    assert forecast["ds"].iloc[0] == START + pd.Timedelta(days=100)
    assert (forecast["yhat_lower"] <= forecast["yhat"]).all()
    assert (forecast["yhat"] <= forecast["yhat_upper"]).all()
    assert (forecast["yhat_upper"] > forecast["yhat_lower"]).all()


def test_learns_the_weekly_season(fitted: ProphetForecaster) -> None:
    t = np.arange(100, 114)
    truth = 10 + 3 * np.sin(2 * np.pi * t / 7)
    assert np.abs(fitted.predict(14)["yhat"] - truth).mean() < 0.6


def test_a_longer_history_moves_the_dates_not_the_curve(fitted: ProphetForecaster) -> None:
    newer = series(110).iloc[100:].assign(y=lambda d: d["y"] + 50)
    conditioned = fitted.predict(7, history=newer)
    assert conditioned["ds"].iloc[0] == START + pd.Timedelta(days=110)
    # A function of time: the same as forecasting further from the fitted series.
    further = fitted.predict(17).iloc[10:].reset_index(drop=True)
    pd.testing.assert_series_equal(conditioned["yhat"], further["yhat"])


def test_predictions_are_repeatable_and_leave_numpy_random_state_alone(
    fitted: ProphetForecaster,
) -> None:
    state = np.random.get_state()
    first = fitted.predict(10)
    after = np.random.get_state()
    assert after[0] == state[0] and np.array_equal(after[1], state[1]) and after[2] == state[2]
    pd.testing.assert_frame_equal(first, fitted.predict(10))


@pytest.mark.parametrize(
    ("freq", "season", "n", "weekly", "daily", "holidays"),
    [
        ("h", 24, 24 * 20, True, True, True),
        ("D", 7, 60, True, False, True),
        ("W-SUN", 52, 60, False, False, False),
        ("MS", 12, 36, False, False, False),
    ],
)
def test_seasonalities_and_holidays_follow_the_frequency(
    freq: str, season: int, n: int, weekly: bool, daily: bool, holidays: bool
) -> None:
    model = ProphetForecaster(freq, season, config={**FAST, "uncertainty_samples": 0})
    model.fit(series(n, freq, season))
    assert ("weekly" in model.model_.seasonalities) is weekly
    assert ("daily" in model.model_.seasonalities) is daily
    assert (model.model_.country_holidays == "US") is holidays
    assert len(model.predict(3)) == 3


def test_no_holidays_when_none_configured() -> None:
    model = ProphetForecaster("D", 7, config={**FAST, "country_holidays": None})
    assert model.fit(series(40)).model_.country_holidays is None


def test_config_as_dict_is_validated_and_saved_as_a_dict() -> None:
    model = ProphetForecaster("D", 7, config={"changepoint_prior_scale": 0.1})
    assert model.params() == {"config": ProphetConfig(changepoint_prior_scale=0.1).model_dump()}
    assert ProphetForecaster("D", 7).params() == {"config": ProphetConfig().model_dump()}
    with pytest.raises(pydantic.ValidationError):
        ProphetForecaster("D", 7, config={"no_such_option": 1}).params()


def test_the_interval_has_the_requested_level() -> None:
    model = ProphetForecaster("D", 7, level=0.5, config=FAST).fit(series(60))
    assert model.model_.interval_width == 0.5
    assert model.model_.uncertainty_samples == 50


def test_without_uncertainty_samples_the_interval_is_the_point() -> None:
    forecast = ProphetForecaster("D", 7, config={"uncertainty_samples": 0}).fit(series(40))
    out = forecast.predict(5)
    np.testing.assert_array_equal(out["yhat_lower"], out["yhat"])
    np.testing.assert_array_equal(out["yhat_upper"], out["yhat"])


def test_fitting_is_quiet_and_restores_logger_levels(caplog: pytest.LogCaptureFixture) -> None:
    levels = {name: logging.getLogger(name).level for name in ("cmdstanpy", "prophet")}
    with caplog.at_level(logging.DEBUG):
        ProphetForecaster("D", 7, config=FAST).fit(series(40)).predict(3)
    chatter = [r for r in caplog.records if r.levelno < logging.WARNING]
    assert not [r for r in chatter if r.name.startswith(("cmdstanpy", "prophet"))]
    # The levels the test set (DEBUG on the root) and the loggers' own are put back.
    assert {name: logging.getLogger(name).level for name in levels} == levels


def test_a_saved_model_serves_the_next_steps_from_its_stored_forecast(tmp_path) -> None:
    from forecast.model import load
    from forecast.prophet_model import CACHE_FILE

    model = ProphetForecaster("D", 7, config={**FAST, "serve_cache_steps": 20}).fit(series(100))
    model.save(tmp_path)
    assert (tmp_path / CACHE_FILE).is_file()
    loaded = load(tmp_path)
    newer = series(105).iloc[100:]
    conditioned = loaded.predict(10, history=newer)  # days 105-114: inside the 20 stored
    stored = loaded.predict(15).iloc[5:].reset_index(drop=True)
    pd.testing.assert_frame_equal(conditioned, stored)
    sampled = loaded._sample(pd.DatetimeIndex(conditioned["ds"]))
    np.testing.assert_allclose(conditioned["yhat"], sampled["yhat"])  # same curve either way
    beyond = loaded.predict(30)  # past the stored steps: sampled afresh
    assert len(beyond) == 30
    model.fit(series(100))
    assert model.cache_ is None  # a refit forgets the stored forecast
