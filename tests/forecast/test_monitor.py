"""Forecast monitoring: the CUSUM and level-shift statistics on constructed streams, and the
`monitor` run on the session artifact's healthy and shifted actuals."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from common.errors import UserError
from common.monitoring.alerts import AlertConfig
from common.settings import Settings
from forecast.monitor import (
    CUSUM_SLACK,
    DEFAULT_RULES,
    SHIFT_MIN_POINTS,
    expectations,
    monitor,
    periods_overdue,
    score,
)


def constructed(errors: np.ndarray, width: float = 2.0) -> pd.DataFrame:
    """A stream whose forecast is 100 and whose actuals are 100 + errors."""
    n = len(errors)
    return pd.DataFrame({
        "ds": pd.date_range("2024-01-01", periods=n, freq="D"), "y": 100 + errors,
        "yhat": np.full(n, 100.0), "yhat_lower": np.full(n, 100 - width),
        "yhat_upper": np.full(n, 100 + width), "step": np.arange(1, n + 1),
    })  # fmt: skip


def test_cusum_stays_low_on_healthy_errors_and_rises_on_a_shift() -> None:
    rng = np.random.default_rng(0)
    healthy = rng.normal(0, 1.25, 200)  # MAE of N(0, 1.25) is 1.0
    scored = score(constructed(healthy), mae=1.0, rmse=1.25, horizon=14, season=7)
    assert scored["cusum"].max() < 5
    assert scored["shift_ratio"].iloc[-1] < 1.5
    shifted = np.r_[healthy[:100], healthy[100:] + 4.0]
    scored = score(constructed(shifted), mae=1.0, rmse=1.25, horizon=14, season=7)
    first_alarm = int(np.argmax(scored["cusum"].to_numpy() > 5))
    assert 100 <= first_alarm <= 104  # within a few periods of the shift, never before it
    assert scored["shift_ratio"].iloc[-1] > 3


def test_the_level_shift_ratio_needs_a_few_points_not_a_whole_season() -> None:
    errors = np.full(SHIFT_MIN_POINTS + 2, 4.0)  # a shift of 4 MAE from the first new point
    scored = score(constructed(errors), mae=1.0, rmse=1.0, horizon=12, season=52)
    shift = scored["shift_ratio"].to_numpy()
    assert np.isnan(shift[: SHIFT_MIN_POINTS - 1]).all()
    np.testing.assert_allclose(shift[SHIFT_MIN_POINTS - 1 :], 4.0)


def test_cusum_follows_its_recursion() -> None:
    errors = np.array([0.0, 3.0, 3.0, 0.0, 0.0, 0.0])
    scored = score(constructed(errors), mae=1.0, rmse=1.0, horizon=6, season=2)
    expected, s = [], 0.0
    for r in np.abs(errors):
        s = max(0.0, s + r - CUSUM_SLACK)
        expected.append(s)
    np.testing.assert_allclose(scored["cusum"], expected)


def test_coverage_is_the_share_inside_the_interval() -> None:
    errors = np.array([0.0, 1.0, -2.0, 2.5, -3.0, 0.5, 2.0, -2.01])
    scored = score(constructed(errors, width=2.0), mae=1.0, rmse=1.0, horizon=8, season=2)
    # inside [98, 102], edges included: 0, 1, -2, 0.5, 2 -> 5 of 8
    assert scored["covered"].tolist() == [1, 1, 1, 0, 0, 1, 1, 0]
    assert scored["covered"].mean() == pytest.approx(5 / 8)


def test_expectations_use_each_series_selected_model() -> None:
    backtest = pd.DataFrame({
        "series_id": ["a", "a", "a", "a"], "model": ["m1", "m1", "m2", "m2"],
        "y": [10.0, 10.0, 10.0, 10.0], "yhat": [9.0, 12.0, 10.0, 10.5],
        "yhat_lower": [8.0, 11.0, 9.0, 9.0], "yhat_upper": [11.0, 13.0, 11.0, 11.0],
    })  # fmt: skip
    table = expectations(backtest, {"a": "m1"}).set_index("series_id")
    assert table.at["a", "mae"] == pytest.approx(1.5)
    assert table.at["a", "rmse"] == pytest.approx(np.sqrt((1 + 4) / 2))
    assert table.at["a", "coverage"] == pytest.approx(0.5)


def test_default_rules_load() -> None:
    names = {r.name for r in AlertConfig.load(DEFAULT_RULES).rules}
    assert {"forecast-error-above-expectation", "level-shift", "data-stale"} <= names


def _settings(artifact: Path, tmp_path: Path) -> Settings:
    return Settings(artifacts_root=artifact.parent.parent, monitoring_root=tmp_path,
                    tracking=False)  # fmt: skip


def test_healthy_actuals_raise_no_alert(forecast_artifact, forecast_files, tmp_path) -> None:
    result = monitor(forecast_files.healthy, settings=_settings(forecast_artifact, tmp_path),
                     model=forecast_artifact, sinks=[])  # fmt: skip
    assert result.exit_code == 0, result.metrics
    assert not result.open
    assert result.metrics["data.stale_series"] == 0
    assert (result.report_dir / "stream.parquet").is_file()


def test_a_level_shift_raises_the_critical_alert(forecast_artifact, forecast_files,
                                                 tmp_path) -> None:  # fmt: skip
    result = monitor(forecast_files.shifted, settings=_settings(forecast_artifact, tmp_path),
                     model=forecast_artifact, sinks=[])  # fmt: skip
    assert result.exit_code == 3
    assert {"forecast-error-above-expectation", "level-shift"} <= {r.name for r in result.open}
    report = json.loads((result.report_dir / "report.json").read_text())
    assert "forecast-error-above-expectation" in report["critical_open"]


def test_a_series_that_stops_is_stale(forecast_artifact, forecast_files, tmp_path) -> None:
    frame = pd.read_csv(forecast_files.healthy)
    stopped = frame.drop(frame[(frame["series_id"] == "store_02")].tail(5).index)
    path = tmp_path / "stopped.csv"
    stopped.to_csv(path, index=False)
    result = monitor(path, settings=_settings(forecast_artifact, tmp_path), model=forecast_artifact,
                     sinks=[])  # fmt: skip
    assert result.metrics["data.stale_series"] == 1
    assert result.metrics["data.max_lag_periods"] == 5
    assert "data-stale" in {r.name for r in result.open}


def test_the_alert_resolves_when_errors_return_to_normal(forecast_artifact, forecast_files,
                                                         tmp_path) -> None:  # fmt: skip
    settings = _settings(forecast_artifact, tmp_path)
    monitor(forecast_files.shifted, settings=settings, model=forecast_artifact, sinks=[])
    result = monitor(forecast_files.healthy, settings=settings, model=forecast_artifact, sinks=[])
    assert {a.status for a in result.alerts} == {"resolved"}
    assert not result.open


@pytest.mark.parametrize(
    ("freq", "last", "as_of", "overdue"),
    [
        ("D", "2024-03-14", "2024-03-15 08:00", 0),  # yesterday's point came: up to date
        ("D", "2024-03-12", "2024-03-15 08:00", 2),  # the 13th and 14th are missing
        ("D", "2024-03-14", "2024-03-15 00:00", 0),  # the 15th has only just begun
        ("h", "2024-03-15 07:00", "2024-03-15 08:30", 0),  # 08:00's hour is not over
        ("h", "2024-03-15 05:00", "2024-03-15 08:30", 2),  # 06:00 and 07:00 are missing
        ("MS", "2024-02-01", "2024-03-15", 0),  # February came; March is not over
        ("MS", "2024-01-01", "2024-03-15", 1),  # February is missing
        ("MS", "2024-02-01", "2024-04-01", 1),  # March closed at midnight
        ("ME", "2024-02-29", "2024-03-15", 0),  # month-end stamps: February came
        ("ME", "2024-01-31", "2024-03-15", 1),
        ("W-MON", "2024-03-04", "2024-03-12 08:00", 0),  # that week ends on Sunday the 10th
        ("W-MON", "2024-03-04", "2024-03-19 08:00", 1),  # the week of the 11th is missing
        ("W-SUN", "2024-03-03", "2024-03-10 00:00", 0),  # the week of the 3rd has just closed
        ("W-SUN", "2024-02-25", "2024-03-10 00:00", 1),
    ],
)
def test_a_point_is_overdue_only_once_its_period_has_closed(freq, last, as_of, overdue) -> None:
    assert periods_overdue(pd.Timestamp(last), pd.Timestamp(as_of), freq) == overdue


def test_as_of_the_current_time_is_not_stale_when_yesterday_came(
    forecast_artifact, forecast_files, tmp_path
) -> None:
    """The cron use: `--as-of` is the time now, the newest daily point is yesterday's."""
    frame = pd.read_csv(forecast_files.healthy, parse_dates=["ds"])
    today_8am = frame["ds"].max() + pd.Timedelta(days=1, hours=8)
    settings = _settings(forecast_artifact, tmp_path)
    fresh = monitor(forecast_files.healthy, settings=settings, model=forecast_artifact,
                    as_of=today_8am, sinks=[])  # fmt: skip
    assert fresh.metrics["data.stale_series"] == 0
    assert "data-stale" not in {r.name for r in fresh.open}
    # One series last heard from three days ago: the two days since then are overdue.
    behind = frame.drop(frame[frame["series_id"] == "store_02"].tail(2).index)
    path = tmp_path / "behind.csv"
    behind.to_csv(path, index=False)
    stale = monitor(path, settings=settings, model=forecast_artifact, as_of=today_8am, sinks=[])
    assert stale.metrics["data.stale_series"] == 1
    assert stale.metrics["data.max_lag_periods"] == 2
    assert "data-stale" in {r.name for r in stale.open}


def test_unknown_series_are_named(forecast_artifact, forecast_files, tmp_path) -> None:
    frame = pd.read_csv(forecast_files.healthy)
    frame.loc[frame["series_id"] == "store_02", "series_id"] = "nope"
    path = tmp_path / "unknown.csv"
    frame.to_csv(path, index=False)
    with pytest.raises(UserError, match="nope"):
        monitor(path, settings=_settings(forecast_artifact, tmp_path), model=forecast_artifact,
                sinks=[])  # fmt: skip
