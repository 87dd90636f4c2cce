"""The baselines every other model must beat: naive, seasonal naive and damped-trend ETS.

- `Naive`: tomorrow is today. The yardstick of MASE and the right answer for a random walk.
- `SeasonalNaive`: the same step of the last season. Hard to beat on strongly seasonal series.
- `ETS`: exponential smoothing with additive errors, an additive damped trend and additive
  seasonality (statsmodels' state-space `ETSModel`), fitted by maximum likelihood.

The two naive methods have normal intervals whose scale grows with the horizon as theory says
(Hyndman & Athanasopoulos, *Forecasting: Principles and Practice*, 3rd ed., §5.5); ETS's come
from its state-space model. All three read their state from the last values of the series, so a
forecast conditioned on a longer history starts from its end without refitting.

Measured on one core. Fit: naive and seasonal naive under 1 ms; ETS ~0.15 s on 1,000 daily
points (season 7), ~0.75 s on 2,000 hourly (24), ~0.55 s on 156 weekly (52), ~7 s on 26,280
hourly. Forecast: ~0.7 ms for the naive methods; ~2 ms for ETS from the fitted series, ~15 ms
(daily) to ~150 ms (52-week season) from a longer history, which statsmodels re-smooths.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from statsmodels.tools.sm_exceptions import ConvergenceWarning
from statsmodels.tsa.exponential_smoothing.ets import ETSModel

from forecast.model import Forecaster, gaussian_interval

ETS_FILE = "ets.json"


def _residual_scale(y: np.ndarray, lag: int) -> float:
    """Root mean square of the in-sample residuals y[t] - y[t - lag]: their standard deviation
    about zero, the mean the naive methods assume (fpp3 §5.5)."""
    residuals = y[lag:] - y[:-lag]
    return float(np.sqrt(np.mean(residuals**2)))


class SeasonalNaive(Forecaster):
    """yhat(T+h) = y(T+h-m(k+1)), k = floor((h-1)/m): the last season, repeated.

    sigma_h = sigma_m * sqrt(k+1), sigma_m the scale of the in-sample seasonal-naive residuals.
    A history with no more than one season (m points or fewer) has no seasonal residual to
    learn that scale from, so the model then behaves as `Naive` (`period_` is 1).
    """

    name = "seasonal_naive"

    def _period(self, n: int) -> int:
        return self.season if 1 < self.season < n else 1

    def _fit(self, history: pd.DataFrame) -> None:
        y = history["y"].to_numpy(dtype=float)
        self.period_ = self._period(len(y))
        self.sigma_ = _residual_scale(y, self.period_)

    def _predict(self, history: pd.DataFrame, dates: pd.DatetimeIndex) -> pd.DataFrame:
        m = self.period_
        last_season = history["y"].to_numpy(dtype=float)[-m:]
        steps = np.arange(len(dates))  # h - 1
        yhat = last_season[steps % m]
        sigma = self.sigma_ * np.sqrt(steps // m + 1)
        lower, upper = gaussian_interval(yhat, sigma, self.level)
        return pd.DataFrame({"yhat": yhat, "yhat_lower": lower, "yhat_upper": upper})

    def _load(self, folder: Path) -> None:
        # Both learned numbers are cheap, deterministic functions of the saved history.
        self._fit(self.history_)


class Naive(SeasonalNaive):
    """yhat(T+h) = y(T); sigma_h = sigma_1 * sqrt(h), sigma_1 the scale of the in-sample
    one-step residuals y(t) - y(t-1): the random walk's forecast and intervals."""

    name = "naive"

    def _period(self, n: int) -> int:
        return 1


class ETS(Forecaster):
    """ETS(A,Ad,A): additive error, additive damped trend, and additive seasonality when the
    season is longer than one step and the history holds at least two full seasons (ETS(A,Ad,N)
    otherwise). `params_` are statsmodels' parameters (smoothing, damping, initial states) in
    its order; `spec_` is the model's specification, both saved as JSON; `result_` is
    statsmodels' result on the fitted series (rebuilt from those two on load).

    A forecast from a longer history runs the fitted model through it (`smooth`): the states at
    its end are updated, the parameters are not re-estimated.
    """

    name = "ets"

    def _model(self, y: np.ndarray) -> ETSModel:
        # A pandas Series: statsmodels' prediction results read their row labels off its index.
        return ETSModel(pd.Series(y, dtype=float), **self.spec_)

    def _fit(self, history: pd.DataFrame) -> None:
        y = history["y"].to_numpy(dtype=float)
        seasonal = self.season > 1 and len(y) >= 2 * self.season
        self.spec_: dict[str, Any] = {
            "error": "add", "trend": "add", "damped_trend": True,
            "seasonal": "add" if seasonal else None,
            "seasonal_periods": self.season if seasonal else None,
        }  # fmt: skip
        with warnings.catch_warnings():
            # A long season (52 weekly, 24 hourly) means as many initial states to estimate;
            # the optimiser often stops at its iteration limit near, not at, the optimum and
            # warns every fit. The result is still a good fit, and a backtest fits many times,
            # so the warning would only flood the output. A perfectly flat series makes the
            # likelihood's log(scale) hit log(0): the fit is still right (a flat forecast).
            warnings.simplefilter("ignore", ConvergenceWarning)
            warnings.simplefilter("ignore", RuntimeWarning)
            self.result_ = self._model(y).fit(disp=False)
        self.params_ = np.asarray(self.result_.params, dtype=float)

    def _smooth(self, y: np.ndarray) -> Any:
        """The fitted model run through `y`: its states at the end, no re-estimation."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a flat series: see `_fit`
            return self._model(y).smooth(self.params_)

    def _predict(self, history: pd.DataFrame, dates: pd.DatetimeIndex) -> pd.DataFrame:
        y = history["y"].to_numpy(dtype=float)
        # statsmodels' results object computes a numerical Hessian of the likelihood when it is
        # made (O(parameters^2) likelihood runs: ~0.15 s with a 52-week season), which the
        # forecast does not use; the fitted series' result is kept to skip that per forecast.
        result = self.result_ if history is self.history_ else self._smooth(y)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            frame = result.get_prediction(start=len(y), end=len(y) + len(dates) - 1)
            summary = frame.summary_frame(alpha=1 - self.level)
        return pd.DataFrame(
            {
                "yhat": summary["mean"].to_numpy(dtype=float),
                "yhat_lower": summary["pi_lower"].to_numpy(dtype=float),
                "yhat_upper": summary["pi_upper"].to_numpy(dtype=float),
            }
        )

    def _save(self, folder: Path) -> None:
        state = {"spec": self.spec_, "params": self.params_.tolist()}
        (folder / ETS_FILE).write_text(json.dumps(state, indent=2))

    def _load(self, folder: Path) -> None:
        state = json.loads((folder / ETS_FILE).read_text())
        self.spec_ = state["spec"]
        self.params_ = np.asarray(state["params"], dtype=float)
        self.result_ = self._smooth(self.history_["y"].to_numpy(dtype=float))
