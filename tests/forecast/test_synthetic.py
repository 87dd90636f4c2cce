"""The built-in series generator: layout, determinism, realism, and the injected level shift."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from common.errors import UserError
from forecast.data import infer_freq, prepare
from forecast.synthetic import DEFAULT_PERIODS, _holidays, generate, inject_level_shift


@pytest.mark.parametrize(
    ("freq", "canonical", "periods", "first"),
    [
        ("h", "h", 1440, "2022-01-01 00:00"),
        ("D", "D", 1095, "2022-01-01"),
        ("W", "W-SUN", 208, "2022-01-02"),  # 2022-01-01 is a Saturday: the first Sunday after
        ("MS", "MS", 120, "2022-01-01"),
        ("ME", "ME", 120, "2022-01-31"),
    ],
)
def test_layout_and_default_length_per_frequency(
    freq: str, canonical: str, periods: int, first: str
) -> None:
    frame = generate(freq, n_series=2)
    assert list(frame.columns) == ["series_id", "ds", "y"]
    assert len(frame) == 2 * periods
    assert frame["y"].dtype == np.float64 and np.isfinite(frame["y"]).all()
    for _, series in frame.groupby("series_id"):
        assert len(series) == periods
        assert series["ds"].iloc[0] == pd.Timestamp(first)
        assert infer_freq(series["ds"]) == canonical
    data = prepare(frame)  # regular, clean: nothing to fix
    assert data.freq == canonical
    assert all(not any(fixed.values()) for fixed in data.fixes.values())


def test_default_periods_cover_the_documented_spans() -> None:
    assert DEFAULT_PERIODS == {"h": 1440, "D": 1095, "W": 208, "M": 120}
    assert len(generate("D", periods=50, start="2023-06-01")) == 50
    assert generate("D", periods=50, start="2023-06-01")["ds"].iloc[0] == pd.Timestamp("2023-06-01")


def test_series_ids_are_zero_padded_and_counted() -> None:
    assert generate(n_series=3, periods=10)["series_id"].unique().tolist() == [
        "store_01", "store_02", "store_03",
    ]  # fmt: skip
    ids = generate(n_series=120, periods=10)["series_id"].unique()
    assert len(ids) == 120 and ids[0] == "store_001" and ids[-1] == "store_120"


def test_deterministic_given_the_seed() -> None:
    pd.testing.assert_frame_equal(generate(n_series=3, seed=5), generate(n_series=3, seed=5))
    assert not np.allclose(generate(seed=5)["y"], generate(seed=6)["y"])
    # No global RNG: seeding numpy's legacy generator changes nothing.
    np.random.seed(0)
    first = generate(periods=100)
    np.random.seed(1)
    pd.testing.assert_frame_equal(first, generate(periods=100))


def test_a_series_does_not_depend_on_how_many_are_generated() -> None:
    alone = generate(n_series=1, periods=300)
    among = generate(n_series=4, periods=300).query("series_id == 'store_01'")
    np.testing.assert_array_equal(alone["y"].to_numpy(), among["y"].to_numpy())


@pytest.mark.parametrize("freq", ["h", "D", "W", "MS"])
def test_more_periods_continue_the_same_series(freq: str) -> None:
    short, long = generate(freq, n_series=2, periods=100), generate(freq, n_series=2, periods=160)
    for sid in ("store_01", "store_02"):
        head = long[long["series_id"] == sid].iloc[:100]["y"].to_numpy()
        np.testing.assert_allclose(short[short["series_id"] == sid]["y"].to_numpy(), head)


@pytest.mark.parametrize("freq", ["h", "D", "W", "MS"])
def test_values_are_positive_like_sales(freq: str) -> None:
    frame = generate(freq, n_series=40, seed=3)
    assert (frame["y"] > 0).all()
    # Well above zero, not merely clipped at it: the lowest point of a series stays a sizeable
    # share of its median.
    ratio = frame.groupby("series_id")["y"].min() / frame.groupby("series_id")["y"].median()
    assert ratio.min() > 0.2


def test_series_differ_in_scale_and_shape() -> None:
    frame = generate(n_series=5, seed=11)
    medians = frame.groupby("series_id")["y"].median()
    assert medians.max() / medians.min() > 1.5
    wide = frame.pivot(index="ds", columns="series_id", values="y")
    assert wide.corr().to_numpy()[np.triu_indices(5, 1)].max() < 0.99


def test_weekly_seasonality_shows_in_daily_data() -> None:
    series = generate("D", seed=2)
    by_weekday = series.groupby(series["ds"].dt.day_of_week)["y"].mean()
    assert (by_weekday.max() - by_weekday.min()) / series["y"].mean() > 0.04


def test_daily_seasonality_shows_in_hourly_data() -> None:
    series = generate("h", seed=2)
    by_hour = series.groupby(series["ds"].dt.hour)["y"].mean()
    assert (by_hour.max() - by_hour.min()) / series["y"].mean() > 0.1


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_holidays_bump_or_dip_daily_sales(seed: int) -> None:
    series = generate("D", seed=seed)
    y = series["y"].to_numpy()
    # Against the same weekday a week before and after: weekly season and trend cancel out.
    residual = np.abs(y[7:-7] - (y[:-14] + y[14:]) / 2)
    holiday = _holidays(pd.DatetimeIndex(series["ds"]))[7:-7]
    assert holiday.sum() >= 30  # three years of US holidays
    assert np.median(residual[holiday]) > 3 * np.median(residual[~holiday])


def test_holiday_calendar_is_the_us_one() -> None:
    days = pd.date_range("2023-07-03", "2023-07-05", freq="D")
    assert _holidays(days).tolist() == [False, True, False]  # Independence Day
    hours = pd.date_range("2023-12-25 22:00", periods=4, freq="h")
    assert _holidays(hours).tolist() == [True, True, False, False]  # every hour of Christmas


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="n_series"):
        generate(n_series=0)
    with pytest.raises(ValueError, match="periods"):
        generate(periods=1)
    with pytest.raises(UserError, match="not supported"):
        generate("15min")


# -- inject_level_shift -----------------------------------------------------------------------
def test_level_shift_only_from_at_onward_in_units_of_each_series_std() -> None:
    frame = generate(n_series=3, periods=200)
    before = frame.copy()
    shifted = inject_level_shift(frame, at="2022-05-01", size=2.0)
    pd.testing.assert_frame_equal(frame, before)  # pure: the input is untouched
    after = shifted["ds"] >= pd.Timestamp("2022-05-01")
    delta = shifted["y"] - frame["y"]
    assert (delta[~after] == 0).all()
    expected = 2.0 * frame.groupby("series_id")["y"].transform("std")
    np.testing.assert_allclose(delta[after], expected[after])
    assert delta[after].min() > 0


def test_level_shift_in_chosen_series_only() -> None:
    frame = generate(n_series=3, periods=100)
    shifted = inject_level_shift(frame, at=pd.Timestamp("2022-02-01"), size=-1.5,
                                 series_ids=["store_02"])  # fmt: skip
    delta = (shifted["y"] - frame["y"]).groupby(frame["series_id"]).sum()
    assert delta["store_01"] == 0 and delta["store_03"] == 0 and delta["store_02"] < 0
    with pytest.raises(UserError, match="no series 'store_99'"):
        inject_level_shift(frame, at="2022-02-01", size=1.0, series_ids=["store_99"])


def test_level_shift_on_a_single_series_without_ids() -> None:
    frame = pd.DataFrame({"ds": pd.date_range("2024-01-01", periods=4), "y": [1.0, 3.0, 1.0, 3.0]})
    shifted = inject_level_shift(frame, at="2024-01-03", size=1.0)
    std = frame["y"].std()
    assert shifted["y"].tolist() == [1.0, 3.0, 1.0 + std, 3.0 + std]
