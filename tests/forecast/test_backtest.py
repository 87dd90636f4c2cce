"""Rolling-origin backtests: the windows, the metrics, and that no window ever sees its future."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pandas as pd
import pytest

from common.errors import UserError
from forecast.backtest import (
    cutoffs,
    point_errors,
    run_backtest,
    seasonal_scale,
    select,
    select_held_out,
    summarise,
)
from forecast.baselines import Naive, SeasonalNaive
from forecast.model import Forecaster


def series(n: int = 120, seed: int = 0) -> pd.DataFrame:
    t = np.arange(n)
    y = 50 + 5 * np.sin(2 * np.pi * t / 7) + np.random.default_rng(seed).normal(0, 1, n)
    return pd.DataFrame({"ds": pd.date_range("2024-01-01", periods=n, freq="D"), "y": y})


def test_cutoffs_end_at_the_last_full_horizon_and_step_back() -> None:
    assert cutoffs(100, initial=30, period=10, horizon=14, max_windows=3) == [66, 76, 86]
    assert cutoffs(100, initial=80, period=10, horizon=14, max_windows=5) == [86]
    with pytest.raises(UserError, match="too short to backtest"):
        cutoffs(40, initial=30, period=10, horizon=14, max_windows=3)


class Peeking(Forecaster):
    """Records every timestamp it was fitted on; forecasts the mean (a stand-in model)."""

    name = "peeking"
    seen: ClassVar[list[pd.Timestamp]] = []

    def _fit(self, history: pd.DataFrame) -> None:
        Peeking.seen.append(history["ds"].max())
        self.mean_ = float(history["y"].mean())

    def _predict(self, history: pd.DataFrame, dates: pd.DatetimeIndex) -> pd.DataFrame:
        n = len(dates)
        return pd.DataFrame({"yhat": np.full(n, self.mean_), "yhat_lower": np.full(n, 0.0),
                             "yhat_upper": np.full(n, 1e9)})  # fmt: skip


def test_no_window_fits_on_the_points_it_forecasts() -> None:
    Peeking.seen = []
    history = series()
    result = run_backtest("s", history, {"peeking": lambda: Peeking("D", 7)}, season=7,
                          horizon=14, cuts=[70, 84, 98])  # fmt: skip
    firsts = result.frame.groupby("cutoff")["ds"].min().sort_index()
    assert list(firsts) == list(history["ds"].iloc[[70, 84, 98]])
    for seen, first in zip(Peeking.seen, firsts, strict=True):
        assert seen < first  # fitted only on the past of its window


def test_a_jump_inside_a_window_is_not_in_its_forecast() -> None:
    """The naive forecast of a window is the last value before it: had the fit seen the jump
    at the window's first point, the forecast would be 1,000 higher."""
    history = series(100)
    history.loc[history.index >= 86, "y"] += 1000.0
    result = run_backtest("s", history, {"naive": lambda: Naive("D", 7)}, season=7, horizon=14,
                          cuts=[86])  # fmt: skip
    assert (result.frame["yhat"] == history["y"].iloc[85]).all()
    assert (result.frame["y"] > 1000).all()


def test_interpolated_points_are_neither_trained_on_nor_scored() -> None:
    """Points 60-62 were missing and interpolated towards a jump at 63: a window cut at 62
    must not learn of the jump through them, nor be scored on point 62."""
    history = series(100)
    history.loc[history.index >= 63, "y"] += 1000.0
    missing = np.zeros(100, dtype=bool)
    missing[60:63] = True
    gap = history["y"].iloc[59], history["y"].iloc[63]
    history.loc[60:62, "y"] = np.interp([60, 61, 62], [59, 63], gap)  # as prepare fills it
    result = run_backtest("s", history, {"naive": lambda: Naive("D", 7)}, season=7, horizon=7,
                          cuts=[62], filled=missing)  # fmt: skip
    assert (result.frame["yhat"] == history["y"].iloc[59]).all()  # carried forward, not 60-61
    assert result.frame["ds"].tolist() == history["ds"].iloc[63:69].tolist()  # 62 not scored
    assert result.frame["step"].tolist() == list(range(2, 8))


def test_seasonal_naive_backtest_errors_match_a_hand_computation() -> None:
    history = series(60)
    result = run_backtest("s", history, {"seasonal_naive": lambda: SeasonalNaive("D", 7)},
                          season=7, horizon=7, cuts=[53])  # fmt: skip
    y = history["y"].to_numpy()
    expected = y[46:53]  # the last season before the cut-off, repeated
    np.testing.assert_allclose(result.frame["yhat"], expected)
    np.testing.assert_allclose(result.frame["y"], y[53:60])
    table = summarise(result.frame, by=["model"])
    mae = np.mean(np.abs(y[53:60] - expected))
    assert table["mae"].iloc[0] == pytest.approx(mae)
    assert table["mase"].iloc[0] == pytest.approx(mae / seasonal_scale(y[:53], 7))


def test_metrics_on_constructed_points() -> None:
    frame = pd.DataFrame({
        "model": "m", "y": [10.0, 0.0, 4.0, 8.0], "yhat": [12.0, 0.0, 2.0, 8.0],
        "yhat_lower": [11.0, -1.0, 3.0, 8.0], "yhat_upper": [13.0, 1.0, 5.0, 8.0], "scale": 2.0,
    })  # fmt: skip
    points = point_errors(frame)
    assert points["covered"].tolist() == [0.0, 1.0, 1.0, 1.0]  # bounds are inclusive
    assert points["smape"].tolist() == pytest.approx([200 * 2 / 22, 0.0, 200 * 2 / 6, 0.0])
    row = summarise(frame, by=["model"]).iloc[0]
    assert row["mae"] == pytest.approx(1.0)
    assert row["rmse"] == pytest.approx(np.sqrt(8 / 4))
    assert row["mase"] == pytest.approx(0.5)
    assert row["coverage"] == pytest.approx(0.75)


def test_selection_can_pick_a_baseline_and_prefers_the_simpler_on_ties() -> None:
    scores = pd.DataFrame({"model": ["naive", "seasonal_naive", "prophet"],
                           "mase": [1.2, 0.9, 0.9]})  # fmt: skip
    assert select(scores, "mase", ["naive", "seasonal_naive", "prophet"]) == "seasonal_naive"
    assert select(scores.iloc[[0, 2]], "mase", ["naive", "seasonal_naive", "prophet"]) == "prophet"


class Broken(Naive):
    name = "broken"

    def _fit(self, history: pd.DataFrame) -> None:
        raise np.linalg.LinAlgError("singular matrix")


def test_a_failing_model_is_recorded_and_left_out() -> None:
    result = run_backtest("s", series(), {"naive": lambda: Naive("D", 7),
                                          "broken": lambda: Broken("D", 7)},
                          season=7, horizon=7, cuts=[100, 107])  # fmt: skip
    assert set(result.frame["model"]) == {"naive"}
    assert "singular matrix" in result.failures["broken"]
    assert set(result.seconds) == {"naive"}


def windows(errors: dict[str, list[float]]) -> pd.DataFrame:
    """Backtest points of one series: per model, one point per window with that abs error."""
    cuts = pd.date_range("2024-01-01", periods=len(next(iter(errors.values()))), freq="7D")
    return pd.DataFrame([
        {"series_id": "a", "model": model, "cutoff": cut, "step": 1, "ds": cut, "y": 10.0,
         "yhat": 10.0 + e, "yhat_lower": 0.0, "yhat_upper": 20.0, "scale": 1.0}
        for model, errs in errors.items() for cut, e in zip(cuts, errs, strict=True)
    ])  # fmt: skip


def test_held_out_selection_scores_each_window_with_the_earlier_windows_choice() -> None:
    # naive wins the first two windows and loses the last badly: chosen on all three, seasonal
    # naive is picked and scores 2; chosen on the windows before each, naive is, and scores 9.
    frame = windows({"naive": [1.0, 1.0, 9.0], "seasonal_naive": [2.0, 2.0, 2.0]})
    assert select(summarise(frame, ["model"]), "mase", ["naive", "seasonal_naive"]) == (
        "seasonal_naive"
    )
    held = select_held_out(frame, "mase", ["naive", "seasonal_naive"])
    assert held["cutoff"].tolist() == sorted(frame["cutoff"].unique())[1:]
    assert held["model"].tolist() == ["naive", "naive"]
    assert summarise(held, ["model"])["mase"].iloc[0] == pytest.approx((1.0 + 9.0) / 2)


def test_held_out_selection_does_not_choose_on_points_of_the_window_it_scores() -> None:
    # Overlapping windows (a period shorter than the horizon): the first window's second step
    # falls on the second window's first day, where naive is far off and seasonal naive exact.
    # Choosing on that point, a point of the window being scored, would pick seasonal naive.
    frame = windows({"naive": [1.0, 9.0], "seasonal_naive": [2.0, 2.0]})
    overlap = frame[frame["cutoff"] == frame["cutoff"].min()].assign(
        step=2, ds=frame["cutoff"].max(), yhat=[10.0 + 99.0, 10.0]
    )
    frame = pd.concat([frame, overlap], ignore_index=True)
    held = select_held_out(frame, "mase", ["naive", "seasonal_naive"])
    assert held["model"].tolist() == ["naive"]  # chosen on the first day only: 1 against 2


def test_held_out_selection_is_empty_with_one_window() -> None:
    assert select_held_out(windows({"naive": [1.0]}), "mase", ["naive"]).empty
