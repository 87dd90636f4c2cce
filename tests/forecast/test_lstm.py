"""The LSTM forecaster: frame and dates, determinism without global random state, the horizon it
was trained for, short series, conditioning, beating naive, conformal coverage, and the split of
the windows (training, early stopping, calibration) with no leakage between them."""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd
import pytest
import torch

from common.errors import UserError
from forecast.baselines import Naive
from forecast.config import LSTMConfig
from forecast.lstm import MIN_CALIBRATION, LSTMForecaster, Split, split_windows

START = pd.Timestamp("2024-01-01")
FAST = LSTMConfig(epochs=6, hidden=8, patience=3)


def daily(values: np.ndarray, start: pd.Timestamp = START) -> pd.DataFrame:
    return pd.DataFrame({"ds": pd.date_range(start, periods=len(values), freq="D"), "y": values})


def seasonal_series(n: int, seed: int = 0, noise: float = 0.2) -> np.ndarray:
    t = np.arange(n)
    rng = np.random.default_rng(seed)
    return 10 + 3 * np.sin(2 * np.pi * t / 7) + rng.normal(0, noise, n)


@pytest.fixture(scope="module")
def fitted() -> LSTMForecaster:
    return LSTMForecaster("D", 7, config=FAST, horizon=14).fit(daily(seasonal_series(120)))


def test_forecast_frame(fitted: LSTMForecaster) -> None:
    forecast = fitted.predict(14)
    assert list(forecast.columns) == ["ds", "yhat", "yhat_lower", "yhat_upper"]
    assert len(forecast) == 14
    assert forecast["ds"].iloc[0] == START + pd.Timedelta(days=120)
    assert (forecast["yhat_lower"] < forecast["yhat"]).all()
    assert (forecast["yhat"] < forecast["yhat_upper"]).all()
    assert fitted.conformal_.shape == (14,)
    # A shorter forecast is the start of the full one.
    pd.testing.assert_frame_equal(fitted.predict(5), forecast.iloc[:5])


def test_learned_state(fitted: LSTMForecaster) -> None:
    y = seasonal_series(120)[: training_values(fitted, 120)]
    assert fitted.mean_ == pytest.approx(y.mean())
    assert fitted.std_ == pytest.approx(y.std())
    assert fitted.lookback_ == 28  # max(2 seasons, 2 horizons)
    assert fitted.params() == {"config": FAST.model_dump(), "horizon": 14, "seed": 42}


def test_longer_than_the_trained_horizon_is_an_error(fitted: LSTMForecaster) -> None:
    with pytest.raises(ValueError, match="trained for 14 steps"):
        fitted.predict(15)


def test_same_seed_same_model_and_global_random_state_untouched() -> None:
    data = daily(seasonal_series(100))
    torch.manual_seed(123)
    state = torch.random.get_rng_state()
    first = LSTMForecaster("D", 7, config=FAST, horizon=7, seed=3).fit(data).predict(7)
    assert torch.equal(torch.random.get_rng_state(), state)
    again = LSTMForecaster("D", 7, config=FAST, horizon=7, seed=3).fit(data).predict(7)
    pd.testing.assert_frame_equal(first, again)
    other = LSTMForecaster("D", 7, config=FAST, horizon=7, seed=4).fit(data).predict(7)
    assert not np.allclose(first["yhat"], other["yhat"])


def test_conditioning_on_newer_points_changes_the_forecast(fitted: LSTMForecaster) -> None:
    newer = daily(seasonal_series(130)[120:] + 3, start=START + pd.Timedelta(days=120))
    conditioned = fitted.predict(7, history=newer)
    assert conditioned["ds"].iloc[0] == START + pd.Timedelta(days=130)
    # Windows are relative to their last value: a level shift moves the forecast with it.
    assert conditioned["yhat"].mean() > fitted.predict(7)["yhat"].mean() + 1.5


def test_short_series_shrink_the_window_and_too_short_ones_say_how_long() -> None:
    model = LSTMForecaster("D", 7, config=FAST, horizon=30).fit(daily(seasonal_series(120)))
    assert 2 <= model.lookback_ < 60
    assert len(model.predict(30)) == 30
    with pytest.raises(UserError, match=r"needs at least \d+"):
        LSTMForecaster("D", 7, config=FAST, horizon=30).fit(daily(seasonal_series(50)))


def test_minimum_length_in_the_message_is_enough() -> None:
    with pytest.raises(UserError) as error:
        LSTMForecaster("D", 7, config=FAST, horizon=10).fit(daily(seasonal_series(20)))
    needed = int(str(error.value).split("at least ")[1].split()[0])
    model = LSTMForecaster("D", 7, config=FAST, horizon=10).fit(daily(seasonal_series(needed)))
    assert model.lookback_ >= 2
    with pytest.raises(UserError):
        LSTMForecaster("D", 7, config=FAST, horizon=10).fit(daily(seasonal_series(needed - 1)))


def test_a_dict_config_is_validated() -> None:
    model = LSTMForecaster("D", 7, config={"epochs": 2, "hidden": 4}, horizon=7)
    assert model.params()["config"] == LSTMConfig(epochs=2, hidden=4).model_dump()
    with pytest.raises(ValueError):
        LSTMForecaster("D", 7, config={"epochs": 0}, horizon=7).params()


def test_progress_bar_is_optional_and_not_saved(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    model = LSTMForecaster("D", 7, config=FAST.model_copy(update={"epochs": 2}), horizon=7)
    model.progress = True
    model.fit(daily(seasonal_series(80)))
    assert capsys.readouterr().err == ""  # not on a terminal: no bar in logs and CI output
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    model.fit(daily(seasonal_series(80)))
    assert "lstm" in capsys.readouterr().err  # on a terminal: tqdm's bar, on stderr
    assert "progress" not in model.params()
    LSTMForecaster("D", 7, config=FAST, horizon=7).fit(daily(seasonal_series(80)))
    assert capsys.readouterr().err == ""


def test_beats_naive_on_a_clean_seasonal_series() -> None:
    y = seasonal_series(420)
    config = LSTMConfig(epochs=40, hidden=16, patience=6)
    model = LSTMForecaster("D", 7, config=config, horizon=14).fit(daily(y[:400]))
    lstm_mae = np.abs(model.predict(14)["yhat"] - y[400:414]).mean()
    naive_mae = np.abs(Naive("D", 7).fit(daily(y[:400])).predict(14)["yhat"] - y[400:414]).mean()
    assert lstm_mae < 0.5 * naive_mae


def test_conformal_intervals_cover_noise_near_nominal() -> None:
    y = 5 + np.random.default_rng(7).normal(size=700)
    model = LSTMForecaster("D", 1, config=LSTMConfig(epochs=8, hidden=8), horizon=5)
    model.fit(daily(y[:500]))
    hits = []
    for origin in range(500, 695, 3):
        newer = daily(y[500:origin], start=START + pd.Timedelta(days=500))
        forecast = model.predict(5, history=newer)
        actual = y[origin : origin + 5]
        hits.append((forecast["yhat_lower"] <= actual) & (actual <= forecast["yhat_upper"]))
    # Split conformal covers at least `level` on average over calibration sets (0.81 over 12
    # simulated series); one set of 49 calibration windows, judged on 65 overlapping forecasts,
    # varies by up to ~0.09 around it (0.88 here).
    assert np.mean(hits) == pytest.approx(0.8, abs=0.1)


def test_few_calibration_windows_pool_the_steps() -> None:
    model = LSTMForecaster("D", 7, config=FAST, horizon=5).fit(daily(seasonal_series(45)))
    assert len(model._split(45, model.lookback_).calibration) < MIN_CALIBRATION
    np.testing.assert_array_equal(model.conformal_, model.conformal_[0])


# -- the split: no target is shared between training, early stopping and calibration ------
def training_values(model: LSTMForecaster, n: int) -> int:
    """How many values (from the start) the training windows of a fit on n points read."""
    return len(model._split(n, model.lookback_).train) + model.lookback_ + model.horizon - 1


def read(windows: range, lookback: int, horizon: int) -> set[int]:
    """Every value index the windows read, inputs and targets."""
    return {t for i in windows for t in range(i, i + lookback + horizon)}


def targets(windows: range, lookback: int, horizon: int) -> set[int]:
    return {t for i in windows for t in range(i + lookback, i + lookback + horizon)}


@pytest.mark.parametrize(
    ("windows", "horizon", "fraction"),
    [(69, 1, 0.2), (486, 5, 0.2), (79, 14, 0.2), (200, 30, 0.5), (40, 3, 0.05), (1857, 48, 0.2)],
)
def test_split_leaks_no_target_from_one_part_into_a_later_one(
    windows: int, horizon: int, fraction: float
) -> None:
    split = split_windows(windows, horizon, fraction)
    assert isinstance(split, Split)
    lookback = 7  # any: the split is in window indices, the check in value indices
    assert split.train.start == 0 and split.calibration.stop == windows  # the latest calibrate
    assert split.train.stop <= split.stop.start and split.stop.stop <= split.calibration.start
    assert set(split.stop).isdisjoint(split.calibration) and len(split.stop) >= 1
    assert len(split.calibration) >= len(split.stop)
    assert len(split.stop) + len(split.calibration) >= fraction * windows
    held_out = range(split.stop.start, split.calibration.stop)
    assert targets(held_out, lookback, horizon).isdisjoint(targets(split.train, lookback, horizon))
    # Stronger: what a part predicts was not even an input of the parts before it.
    trained = read(split.train, lookback, horizon)
    assert targets(split.stop, lookback, horizon).isdisjoint(trained)
    stopped = trained | read(split.stop, lookback, horizon)
    assert targets(split.calibration, lookback, horizon).isdisjoint(stopped)
    # Only the gaps are dropped: one window fewer in either and a target would be shared.
    gaps = 2 * (horizon - 1)
    assert len(split.train) + len(split.stop) + len(split.calibration) + gaps == windows


def test_the_leak_check_catches_windows_closer_than_a_horizon() -> None:
    # The old split, held-out windows right after the training ones, fails the check above.
    assert not targets(range(10, 20), 7, 5).isdisjoint(targets(range(10), 7, 5))
    assert targets(range(14, 20), 7, 5).isdisjoint(targets(range(10), 7, 5))


def test_the_scaler_ignores_values_after_the_training_part(fitted: LSTMForecaster) -> None:
    y = seasonal_series(120)
    end = training_values(fitted, 120)
    assert end < 100  # a tail of 40+ values that only the held-out windows see
    tail = y.copy()
    tail[end] = 1e6  # the first value that only held-out windows see
    model = LSTMForecaster("D", 7, config=FAST, horizon=14).fit(daily(tail))
    assert (model.mean_, model.std_) == (fitted.mean_, fitted.std_)
    inside = y.copy()
    inside[end - 1] = 1e6  # the last value a training window reads
    assert LSTMForecaster("D", 7, config=FAST, horizon=14).fit(daily(inside)).mean_ > 1e3


def test_calibration_values_set_the_intervals_and_nothing_else(fitted: LSTMForecaster) -> None:
    y = seasonal_series(120)
    split = fitted._split(120, fitted.lookback_)
    first = split.calibration.start + fitted.lookback_  # the first value only calibration reads
    assert first == max(read(split.stop, fitted.lookback_, 14)) + 1
    noisier = y.copy()
    noisier[first:] += np.random.default_rng(1).normal(0, 2, 120 - first)
    model = LSTMForecaster("D", 7, config=FAST, horizon=14).fit(daily(noisier))
    # Same scaler, weights and epoch: calibration values reach neither training nor stopping.
    assert (model.mean_, model.std_) == (fitted.mean_, fitted.std_)
    weights, expected = model.net_.state_dict(), fitted.net_.state_dict()
    assert all(torch.equal(weights[name], expected[name]) for name in expected)
    assert (model.conformal_ > fitted.conformal_).all()
    # And the intervals come from the calibration windows' errors alone.
    x, target = fitted._windows((y - fitted.mean_) / fitted.std_)
    cal = slice(split.calibration.start, split.calibration.stop)
    with torch.inference_mode():
        errors = (fitted.net_(x[cal]) - target[cal]).abs().numpy().astype(float) * fitted.std_
    np.testing.assert_allclose(fitted.conformal_, fitted._conformal(errors))
