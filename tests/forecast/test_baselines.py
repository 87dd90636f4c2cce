"""The baselines: naive is flat, seasonal naive repeats the last season, ETS beats both on a
clean seasonal series; intervals widen as theory says and cover about what they claim."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from forecast.baselines import ETS, Naive, SeasonalNaive

START = pd.Timestamp("2024-01-01")


def daily(values: np.ndarray, start: pd.Timestamp = START) -> pd.DataFrame:
    return pd.DataFrame({"ds": pd.date_range(start, periods=len(values), freq="D"), "y": values})


def seasonal_series(n: int, seed: int = 0, noise: float = 0.3) -> np.ndarray:
    t = np.arange(n)
    rng = np.random.default_rng(seed)
    return 10 + 3 * np.sin(2 * np.pi * t / 7) + 0.02 * t + rng.normal(0, noise, n)


def widths(forecast: pd.DataFrame) -> np.ndarray:
    return (forecast["yhat_upper"] - forecast["yhat_lower"]).to_numpy()


def test_naive_is_flat_at_the_last_value_with_sqrt_h_intervals() -> None:
    y = np.random.default_rng(1).normal(size=80).cumsum()
    forecast = Naive("D", 7).fit(daily(y)).predict(10)
    assert list(forecast.columns) == ["ds", "yhat", "yhat_lower", "yhat_upper"]
    assert forecast["ds"].iloc[0] == START + pd.Timedelta(days=80)
    assert (forecast["ds"].diff().dropna() == pd.Timedelta(days=1)).all()
    np.testing.assert_array_equal(forecast["yhat"], np.full(10, y[-1]))
    sigma = np.sqrt(np.mean(np.diff(y) ** 2))
    z = stats.norm.ppf(0.9)
    np.testing.assert_allclose(widths(forecast), 2 * z * sigma * np.sqrt(np.arange(1, 11)))


def test_seasonal_naive_repeats_the_last_season_exactly() -> None:
    y = seasonal_series(60)
    forecast = SeasonalNaive("D", 7).fit(daily(y)).predict(17)
    np.testing.assert_array_equal(forecast["yhat"], np.tile(y[-7:], 3)[:17])
    # sigma_h = sigma_m * sqrt(k + 1): the same within a season, one step wider per season.
    w = widths(forecast)
    np.testing.assert_allclose(w[:7], w[0])
    np.testing.assert_allclose(w[7:14], w[0] * np.sqrt(2))
    np.testing.assert_allclose(w[14:], w[0] * np.sqrt(3))


def test_seasonal_naive_on_less_than_a_season_behaves_as_naive() -> None:
    y = np.array([3.0, 5.0, 4.0, 6.0, 5.0])
    seasonal = SeasonalNaive("D", 7).fit(daily(y))
    assert seasonal.period_ == 1
    pd.testing.assert_frame_equal(seasonal.predict(9), Naive("D", 7).fit(daily(y)).predict(9))


@pytest.mark.parametrize("cls", [Naive, SeasonalNaive])
def test_naive_methods_forecast_from_a_longer_history(cls: type[Naive]) -> None:
    y = seasonal_series(70)
    model = cls("D", 7).fit(daily(y[:56]))
    newer = daily(y[56:], start=START + pd.Timedelta(days=56))
    conditioned = model.predict(7, history=newer)
    assert conditioned["ds"].iloc[0] == START + pd.Timedelta(days=70)
    expected = y[-1] if cls is Naive else y[-7:]
    np.testing.assert_allclose(conditioned["yhat"], np.broadcast_to(expected, 7))
    pd.testing.assert_frame_equal(conditioned, cls("D", 7).fit(daily(y[:56])).predict(7, newer))


def test_ets_forecast_frame_and_widening_intervals() -> None:
    y = seasonal_series(120)
    model = ETS("D", 7).fit(daily(y))
    assert model.spec_["seasonal"] == "add" and model.spec_["seasonal_periods"] == 7
    forecast = model.predict(21)
    assert len(forecast) == 21
    assert forecast["ds"].iloc[0] == START + pd.Timedelta(days=120)
    assert (forecast["yhat_lower"] <= forecast["yhat"]).all()
    assert (forecast["yhat"] <= forecast["yhat_upper"]).all()
    assert (np.diff(widths(forecast)) >= -1e-9).all()


def test_ets_conditions_on_a_longer_history_without_refitting() -> None:
    y = seasonal_series(130)
    model = ETS("D", 7).fit(daily(y[:110]))
    params = model.params_.copy()
    before = model.predict(7)
    # A level shift in the new points: the smoothed state must follow it.
    newer = daily(y[110:] + 5, start=START + pd.Timedelta(days=110))
    after = model.predict(7, history=newer)
    np.testing.assert_array_equal(model.params_, params)
    assert after["ds"].iloc[0] == START + pd.Timedelta(days=130)
    assert after["yhat"].mean() > before["yhat"].mean() + 2


def test_ets_has_no_season_without_two_full_seasons() -> None:
    model = ETS("D", 7).fit(daily(seasonal_series(13)))
    assert model.spec_["seasonal"] is None
    assert np.isfinite(model.predict(5)[["yhat", "yhat_lower", "yhat_upper"]].to_numpy()).all()


@pytest.mark.parametrize(("freq", "season", "n"), [("W-SUN", 52, 130), ("h", 24, 24 * 30)])
def test_ets_with_a_long_season_fits_quietly(freq: str, season: int, n: int) -> None:
    t = np.arange(n)
    y = 20 + 4 * np.sin(2 * np.pi * t / season) + np.random.default_rng(2).normal(0, 0.5, n)
    frame = pd.DataFrame({"ds": pd.date_range("2020-01-05", periods=n, freq=freq), "y": y})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        forecast = ETS(freq, season).fit(frame).predict(season)
    assert not caught, [str(w.message) for w in caught]
    assert np.isfinite(forecast["yhat"]).all()


def test_ets_and_seasonal_naive_beat_naive_on_a_clean_seasonal_series() -> None:
    y = seasonal_series(168, noise=0.2)
    train, test = daily(y[:140]), y[140:]

    def mae(cls: type) -> float:
        return float(np.abs(cls("D", 7).fit(train).predict(28)["yhat"] - test).mean())

    assert mae(ETS) < 0.6 * mae(Naive)
    assert mae(SeasonalNaive) < mae(Naive)


def test_flat_series_gives_a_flat_forecast() -> None:
    for cls in (Naive, SeasonalNaive, ETS):
        forecast = cls("D", 7).fit(daily(np.full(30, 4.0))).predict(5)
        np.testing.assert_allclose(forecast["yhat"], 4.0, atol=1e-6)


def coverage(cls: type, simulate: np.ndarray, n_fit: int, horizon: int, season: int) -> float:
    hits = []
    for path in simulate:
        forecast = cls("D", season).fit(daily(path[:n_fit])).predict(horizon)
        actual = path[n_fit : n_fit + horizon]
        hits.append((forecast["yhat_lower"] <= actual) & (actual <= forecast["yhat_upper"]))
    return float(np.mean(hits))


def test_naive_intervals_cover_a_random_walk_near_nominal() -> None:
    walks = np.random.default_rng(3).normal(size=(300, 70)).cumsum(axis=1)
    assert coverage(Naive, walks, 60, 10, 7) == pytest.approx(0.8, abs=0.05)


def test_seasonal_naive_intervals_cover_a_seasonal_random_walk_near_nominal() -> None:
    # y[t] = y[t - 7] + e[t]: seven interleaved random walks, the model's own assumption.
    steps = np.random.default_rng(4).normal(size=(300, 12, 7))
    paths = steps.cumsum(axis=1).reshape(300, 84)
    assert coverage(SeasonalNaive, paths, 70, 14, 7) == pytest.approx(0.8, abs=0.05)


def test_ets_intervals_cover_noise_near_nominal() -> None:
    noise = 5 + np.random.default_rng(5).normal(size=(60, 70))
    assert coverage(ETS, noise, 60, 10, 1) == pytest.approx(0.8, abs=0.08)
