"""Monitoring forecasts as actuals arrive: realised error against what the backtest led us to
expect, interval coverage, level shifts and data that stop arriving.

`python -m forecast monitor --actuals PATH` reads every actual since training (append new rows
to the file as they come). Each series is forecast the way it was backtested: from the end of
its training data, `horizon` steps at a time, each block conditioned on the actuals before it.
Per series, against its selected model's backtest MAE:

- `error.cusum`: a one-sided CUSUM of the error ratio r = |error| / expected MAE, clipped at
  4, S = max(0, S + min(r, 4) - 2), at the latest point. Healthy errors (r about 1) pull S
  back to 0, and so do errors somewhat above a backtest estimated on a few windows; each period
  far above expectation adds at most 2, so S > 5 needs at least three such periods in a row
  (or six at 3x): one outlier or holiday miss never fires it alone.
- `level_shift.ratio`: |mean error| over the last season (or over all new actuals while
  there are fewer, from 5 on; absent before) / expected MAE. Since |mean e| <=
  mean |e|, a healthy series stays near or below 1 even when errors are correlated (as
  multi-step errors are); a level shift pushes it up by the shift's size in units of MAE
  (the rule: above 3).
- `coverage.min`: the share of the last `horizon` actuals inside their intervals.
- `data.stale_series`: series missing a point that was due by `--as-of`. A point is due once
  its period has closed (data are stamped at the period's start: yesterday's daily point is
  due today at 00:00, not today's); without `--as-of` the clock is the close of the newest
  actual's period, so a series one point behind the others is stale.

Each metric is the worst series' value; the run folder's `stream.parquet` keeps every point
and `series.csv` every series, for the dashboard. Residuals standardised by the expected RMSE
(`residual_z`) are also compared with the backtest's through the common drift report.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd

from common.artifacts import ArtifactStore
from common.errors import UserError
from common.monitoring.alerts import AlertConfig
from common.monitoring.profile import ReferenceProfile, build_profile
from common.monitoring.run import MonitorResult, monitor_batch
from common.monitoring.sinks import Sink
from common.settings import Settings
from forecast.data import load, read_table_of_series
from forecast.frequency import closes_at
from forecast.serve import ForecastPredictor

logger = logging.getLogger(__name__)
DEFAULT_RULES = Path(__file__).with_name("alerts.yaml")
EXPECTATIONS_FILE = "expectations.csv"
#: The CUSUM's slack (error ratios below it pull the statistic down) and the largest ratio one
#: period may add: with S > 5 as the rule, a single wild point cannot fire it.
CUSUM_SLACK = 2.0
CUSUM_CLIP = 4.0
#: The fewest new actuals the level-shift ratio is computed from (see `score`).
SHIFT_MIN_POINTS = 5


def expectations(backtest: pd.DataFrame, selected: Mapping[str, str]) -> pd.DataFrame:
    """Per series: its selected model's backtest MAE and RMSE (pooled over every window and
    step: a few windows per step are too few to trust step by step) and interval coverage."""
    chosen = backtest[backtest["model"] == backtest["series_id"].map(selected)]
    error = chosen["y"] - chosen["yhat"]
    covered = (chosen["y"] >= chosen["yhat_lower"]) & (chosen["y"] <= chosen["yhat_upper"])
    grouped = chosen.assign(abs_error=error.abs(), sq_error=error**2, covered=covered)
    table = grouped.groupby("series_id", sort=False).agg(
        model=("model", "first"), mae=("abs_error", "mean"), rmse=("sq_error", "mean"),
        coverage=("covered", "mean"),
    )  # fmt: skip
    table["rmse"] = np.sqrt(table["rmse"])
    # A perfect backtest (a constant series) would make every later error infinitely large.
    table[["mae", "rmse"]] = table[["mae", "rmse"]].clip(lower=1e-9)
    return table.reset_index()


def reference_profile(
    backtest: pd.DataFrame, selected: Mapping[str, str], seed: int = 0
) -> ReferenceProfile:
    """The selected models' backtest residuals, standardised per series by their RMSE."""
    expected = expectations(backtest, selected).set_index("series_id")
    chosen = backtest[backtest["model"] == backtest["series_id"].map(selected)]
    z = (chosen["y"] - chosen["yhat"]) / chosen["series_id"].map(expected["rmse"])
    return build_profile({"residual_z": z.to_numpy()}, {"residual_z": "numeric"}, seed=seed,
                         performance={"coverage": float(expected["coverage"].mean())})  # fmt: skip


def stream(predictor: ForecastPredictor, series_id: str, actuals: pd.DataFrame) -> pd.DataFrame:
    """Forecasts for every actual after the series' training data, made `horizon` steps at a
    time from the end of training (origins on the series' grid, whatever dates the actuals
    have), each block conditioned on the actuals before it."""
    model = predictor.models[series_id]
    end, h = model.history_["ds"].iloc[-1], predictor.horizon
    new = actuals[actuals["ds"] > end].reset_index(drop=True)
    columns = ["ds", "y", "yhat", "yhat_lower", "yhat_upper", "step"]
    if new.empty:
        return pd.DataFrame(columns=[*columns, "series_id"])
    steps = len(pd.date_range(end, new["ds"].max(), freq=predictor.freq)) - 1
    blocks = []
    for start in range(0, steps, h):
        origin = pd.date_range(end, periods=start + 1, freq=predictor.freq)[-1]
        known = new[new["ds"] <= origin]
        forecast = predictor.forecast(series_id, h, known if len(known) else None)
        forecast = forecast.assign(step=np.arange(1, h + 1))
        blocks.append(forecast.merge(new, on="ds", how="inner"))
    frame = pd.concat(blocks, ignore_index=True)
    return frame[columns].assign(series_id=series_id)


def score(frame: pd.DataFrame, mae: float, rmse: float, horizon: int, season: int) -> pd.DataFrame:
    """Per point of one series: error, ratio, CUSUM, the level-shift ratio and coverage."""
    error = (frame["y"] - frame["yhat"]).to_numpy(dtype=float)
    ratio = np.abs(error) / mae
    cusum = np.zeros(len(error))
    for t, r in enumerate(ratio):
        cusum[t] = max(0.0, (cusum[t - 1] if t else 0.0) + min(r, CUSUM_CLIP) - CUSUM_SLACK)
    # The mean over the last season, or over every point so far while there are fewer (but at
    # least SHIFT_MIN_POINTS): waiting for a whole season would leave a weekly model (season
    # 52) blind to a shift for a year. Averaging a few points is enough for the rule's 3x: it
    # takes one error of 3 x SHIFT_MIN_POINTS typical errors to cross it alone.
    window = pd.Series(error).rolling(season, min_periods=min(season, SHIFT_MIN_POINTS))
    shift = window.mean().abs().to_numpy() / mae
    covered = (frame["y"] >= frame["yhat_lower"]) & (frame["y"] <= frame["yhat_upper"])
    return frame.assign(error=error, ratio=ratio, residual_z=error / rmse, cusum=cusum,
                        shift_ratio=shift, covered=covered.astype(float))  # fmt: skip


def periods_overdue(last: pd.Timestamp, as_of: pd.Timestamp, freq: str) -> int:
    """How many points after `last` were due by `as_of`. A point is due once its period has
    closed, not when it starts: data are stamped at the period's start (a day at 00:00, a
    month on the 1st), so at 08:00 today yesterday's point is due and today's is not."""
    after = pd.date_range(last, as_of, freq=freq)[1:]
    return int((closes_at(after, freq) <= as_of).sum())


def summarise_series(scored: pd.DataFrame, horizon: int, last: pd.Timestamp,
                     as_of: pd.Timestamp, freq: str) -> dict[str, float]:  # fmt: skip
    """One series' current state: its latest CUSUM and shift ratio, recent coverage, lag."""
    lag = periods_overdue(last, as_of, freq)
    if scored.empty:
        return {"points": 0, "cusum": 0.0, "shift_ratio": 0.0, "coverage": np.nan,
                "mae_ratio": np.nan, "lag_periods": lag}  # fmt: skip
    recent = scored.iloc[-horizon:]
    return {
        "points": len(scored), "cusum": float(scored["cusum"].iloc[-1]),
        "shift_ratio": float(scored["shift_ratio"].iloc[-1]),
        # Coverage of a handful of points says little: wait for half a horizon.
        "coverage": float(recent["covered"].mean()) if len(recent) >= horizon / 2 else np.nan,
        "mae_ratio": float(recent["ratio"].mean()), "lag_periods": lag,
    }  # fmt: skip


def monitor(
    actuals: Path,
    *,
    settings: Settings,
    model: Path | None = None,
    rules: Path | None = None,
    as_of: datetime | None = None,
    sinks: list[Sink] | None = None,
    now: datetime | None = None,
) -> MonitorResult:
    """Score the actuals against the served model's forecasts, write the report, raise alerts."""
    store = ArtifactStore(settings.artifacts_root, "forecast")
    predictor = ForecastPredictor.from_artifact(store.resolve_serving(model))
    profile = ReferenceProfile.load(predictor.path)
    config = AlertConfig.load(rules or DEFAULT_RULES)
    data = load(actuals, freq=predictor.freq, duplicates="mean")
    unknown = sorted(set(data.ids) - set(predictor.ids))
    if unknown:
        raise UserError(f"{actuals}: series the model does not know: {', '.join(unknown[:5])}")
    expected = read_table_of_series(predictor.path / EXPECTATIONS_FILE)
    expected = expected.set_index("series_id")
    # Without --as-of, "now" is when the newest actual's period closed: it has arrived, so
    # every series' point for that period was due too.
    newest = pd.DatetimeIndex([data.frame["ds"].max()])
    clock = pd.Timestamp(as_of) if as_of is not None else closes_at(newest, predictor.freq)[0]
    season = int(predictor.manifest.extra["season"])
    scored, rows = [], {}
    for sid in predictor.ids:
        own = data.series(sid) if sid in data.ids else pd.DataFrame(columns=["ds", "y"])
        points = score(stream(predictor, sid, own), expected.at[sid, "mae"],
                       expected.at[sid, "rmse"], predictor.horizon, season)  # fmt: skip
        last = own["ds"].max() if len(own) else predictor.models[sid].history_["ds"].iloc[-1]
        rows[sid] = summarise_series(points, predictor.horizon, last, clock, predictor.freq)
        scored.append(points)
    table = pd.DataFrame.from_dict(rows, orient="index").rename_axis("series_id")
    points = pd.concat(scored, ignore_index=True)
    if points.empty:
        raise UserError(f"{actuals}: no actual is newer than the training data")
    metrics = {
        "error.cusum": float(table["cusum"].max()),
        "error.mae_ratio": float(table["mae_ratio"].max()),
        "level_shift.ratio": float(table["shift_ratio"].max()),
        "coverage.min": float(table["coverage"].min()),
        "coverage.mean": float(points["covered"].mean()),
        "data.stale_series": float((table["lag_periods"] >= 1).sum()),
        "data.max_lag_periods": float(table["lag_periods"].max()),
        "data.filled_points": float(sum(f.get("filled", 0) for f in data.fixes.values())),
    }
    metrics = {k: v for k, v in metrics.items() if np.isfinite(v)}
    result = monitor_batch(
        profile=profile, columns={"residual_z": points["residual_z"].to_numpy()}, scores=None,
        labels=None, config=config, folder=settings.monitoring_root / "forecast",
        context={"project": "forecast", "model": predictor.manifest.version,
                 "data": str(actuals), "as_of": clock.isoformat()},
        now=now, sinks=sinks, extra_metrics=metrics,
    )  # fmt: skip
    points.to_parquet(result.report_dir / "stream.parquet", index=False)
    table.to_csv(result.report_dir / "series.csv")
    return result
