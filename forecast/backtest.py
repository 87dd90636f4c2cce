"""Rolling-origin backtests: how each model would have done had it been used in the past, and
the choice of model per series that follows from it.

For each cut-off c (an "origin"), a model is fitted on the points before c only and forecasts the
`horizon` points from c; the cut-offs end at the last point that leaves a whole horizon, and step
back by `period` (so the most recent data is always tested), keeping at most `max_windows`
with at least `initial` points to fit on. This is Prophet's `cross_validation` (initial, period,
horizon) with the windows counted from the end.

Errors are kept per model, window and horizon step, so the report can show how error grows with
the step, and monitoring can compare each new point with what the backtest led us to expect.
MASE scales each window's absolute errors by the in-sample MAE of the seasonal naive forecast on
that window's training part (Hyndman & Koehler, 2006): below 1 beats it in-sample, and it is
comparable across series of any scale.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from common.errors import UserError
from forecast.model import Forecaster

logger = logging.getLogger(__name__)
METRICS = ("mae", "rmse", "smape", "mase", "coverage")


def cutoffs(n: int, *, initial: int, period: int, horizon: int, max_windows: int) -> list[int]:
    """Positions of the first forecast point of each window, oldest first."""
    last = n - horizon
    if last < initial:
        raise UserError(
            f"a series of {n} points is too short to backtest: it needs {initial} to fit "
            f"plus {horizon} to forecast ({initial + horizon}); shorten --horizon or add data"
        )
    found = [c for c in range(last, initial - 1, -period)][:max_windows]
    return sorted(found)


def seasonal_scale(y: np.ndarray, season: int) -> float:
    """In-sample MAE of the seasonal naive forecast (naive when the series is too short); the
    denominator of MASE. A constant series would give 0: fall back to a tiny positive scale so
    MASE stays finite and any error counts as large."""
    m = season if len(y) > season else 1
    scale = float(np.mean(np.abs(y[m:] - y[:-m]))) if len(y) > m else 0.0
    return scale if scale > 0 else 1e-9


@dataclass
class Backtest:
    """Every forecast point of every window: `frame` has columns series_id, model, cutoff,
    step, ds, y, yhat, yhat_lower, yhat_upper, scale. `seconds` is the fit+predict time per
    model (all windows); `failures` the models that raised, with the reason."""

    frame: pd.DataFrame
    seconds: dict[str, float] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)


def run_backtest(
    series_id: str,
    history: pd.DataFrame,
    models: Mapping[str, Callable[[], Forecaster]],
    *,
    season: int,
    horizon: int,
    cuts: Sequence[int],
    filled: np.ndarray | None = None,
) -> Backtest:
    """Fit every model on each window's past and forecast its next `horizon` points.

    `filled` marks points that were missing and interpolated (`SeriesData.filled_mask`): an
    interpolated point is drawn from the next real one, so a window's past would hold a bit of
    its future. Models are fitted on the series with those points carried forward from the last
    real value instead (a past-only fill), and filled points are not scored as actuals.

    A model that raises on this series is recorded in `failures` (and logged) and left out of
    the selection, rather than stopping a run over many series: one pathological series should
    not cost the other ninety-nine their models. Errors in the data itself are found earlier."""
    filled = np.zeros(len(history), dtype=bool) if filled is None else np.asarray(filled, bool)
    # Forward fill only looks back, so filling the whole series once leaks nothing into a cut.
    history = history.assign(y=history["y"].mask(filled).ffill())
    y = history["y"].to_numpy(dtype=float)
    parts: list[pd.DataFrame] = []
    seconds: dict[str, float] = {}
    failures: dict[str, str] = {}
    for name, make in models.items():
        start = time.perf_counter()
        try:
            for cut in cuts:
                # The model sees history[:cut] only: nothing from the window it forecasts.
                forecast = make().fit(history.iloc[:cut]).predict(horizon)
                actual = history.iloc[cut : cut + horizon]
                if (
                    not forecast["ds"]
                    .reset_index(drop=True)
                    .equals(actual["ds"].reset_index(drop=True))
                ):
                    raise RuntimeError(f"{name} forecast dates do not follow the cut-off")
                scored = forecast.assign(
                    series_id=series_id, model=name, cutoff=history["ds"].iloc[cut],
                    step=np.arange(1, horizon + 1), y=actual["y"].to_numpy(),
                    scale=seasonal_scale(y[:cut], season),
                )  # fmt: skip
                parts.append(scored[~filled[cut : cut + horizon]])
        except Exception as exc:  # recorded, logged and reported; see the docstring
            failures[name] = f"{type(exc).__name__}: {exc}"
            logger.warning("%s: %s failed in the backtest: %s", series_id, name, failures[name])
            parts = [p for p in parts if p["model"].iloc[0] != name]
            continue
        seconds[name] = time.perf_counter() - start
    columns = ["series_id", "model", "cutoff", "step", "ds", "y", "yhat", "yhat_lower",
               "yhat_upper", "scale"]  # fmt: skip
    frame = pd.concat(parts, ignore_index=True)[columns] if parts else pd.DataFrame(columns=columns)
    return Backtest(frame, seconds, failures)


def point_errors(frame: pd.DataFrame) -> pd.DataFrame:
    """Per forecast point: absolute and squared error, sMAPE term, scaled error, covered."""
    error = frame["y"] - frame["yhat"]
    denominator = frame["y"].abs() + frame["yhat"].abs()
    # sMAPE's 0/0 (both zero) is a perfect forecast, not an undefined one.
    smape = np.where(denominator > 0, 200 * error.abs() / denominator.where(denominator > 0, 1), 0)
    covered = (frame["y"] >= frame["yhat_lower"]) & (frame["y"] <= frame["yhat_upper"])
    return frame.assign(
        abs_error=error.abs(), sq_error=error**2, smape=smape,
        scaled_error=error.abs() / frame["scale"], covered=covered.astype(float),
    )  # fmt: skip


def summarise(frame: pd.DataFrame, by: Sequence[str]) -> pd.DataFrame:
    """MAE, RMSE, sMAPE (%), MASE and interval coverage per group (e.g. model, or model and
    step); each point weighs the same."""
    points = point_errors(frame)
    grouped = points.groupby(list(by), sort=False, observed=True)
    table = pd.DataFrame({
        "mae": grouped["abs_error"].mean(),
        "rmse": np.sqrt(grouped["sq_error"].mean()),
        "smape": grouped["smape"].mean(),
        "mase": grouped["scaled_error"].mean(),
        "coverage": grouped["covered"].mean(),
        "points": grouped.size(),
    })  # fmt: skip
    return table.reset_index()


def select(scores: pd.DataFrame, metric: str, order: Sequence[str]) -> str:
    """The model with the lowest `metric` in a per-model table; on a tie, the one earlier in
    `order` (baselines first: the simpler model wins when the complex one is no better)."""
    if scores.empty:
        raise UserError("no model could be backtested on this series (see the warnings above)")
    rank = {name: i for i, name in enumerate(order)}
    best = scores.assign(_rank=scores["model"].map(rank)).sort_values([metric, "_rank"])
    return str(best["model"].iloc[0])


def select_held_out(frame: pd.DataFrame, metric: str, order: Sequence[str]) -> pd.DataFrame:
    """The selection scored out of sample, on one series' backtest points (candidate models
    only): for each window after the first, the points of the model `select` picks on the
    windows before it. The final model is chosen on every window, so its own backtest score
    is the best of the candidates' on those windows and flatters it; these points are what
    choosing by backtest actually delivered on windows it had not seen. Empty with a single
    window."""
    cuts = sorted(frame["cutoff"].unique())
    parts = []
    for cut in cuts[1:]:
        # Earlier windows' points only, and of those only the ones before this window starts:
        # with a period shorter than the horizon, windows overlap.
        seen = frame[(frame["cutoff"] < cut) & (frame["ds"] < cut)]
        choice = select(summarise(seen, by=["model"]), metric, order)
        parts.append(frame[(frame["cutoff"] == cut) & (frame["model"] == choice)])
    return pd.concat(parts, ignore_index=True) if parts else frame.iloc[:0]
