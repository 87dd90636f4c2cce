"""The forecast pipeline's configuration: one frozen, typed object, saved inside every artifact.

Defaults are chosen for the built-in daily series (three years, a 30-day horizon) and are sane
for hourly, weekly and monthly data too: everything that depends on the frequency (the season
length, the backtest's initial window) is derived from it unless given.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

ModelName = Literal["naive", "seasonal_naive", "ets", "prophet", "lstm"]
#: Every model, baselines first: the report and the selection list them in this order.
ALL_MODELS: tuple[ModelName, ...] = ("naive", "seasonal_naive", "ets", "prophet", "lstm")
Duplicates = Literal["error", "mean", "last"]


class ProphetConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    changepoint_prior_scale: float = Field(0.05, gt=0, description="Trend flexibility.")
    seasonality_prior_scale: float = Field(10.0, gt=0)
    seasonality_mode: Literal["additive", "multiplicative"] = "additive"
    #: A country code for `holidays` (e.g. US, GB, DE); None: no holidays.
    country_holidays: str | None = "US"
    #: Samples drawn for the intervals: more is smoother and slower (~0.1 ms each at 30 steps).
    uncertainty_samples: int = Field(300, ge=0)
    #: Steps after the data whose forecast is stored with a saved model, so that serving them
    #: is a lookup (Prophet's forecast depends on the dates only); 0: none.
    serve_cache_steps: int = Field(180, ge=0)


class LSTMConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    #: Input window; None: two seasons or two horizons, whichever is longer (at most 336).
    lookback: int | None = Field(None, ge=2)
    hidden: int = Field(32, ge=1)
    layers: int = Field(1, ge=1, le=4)
    epochs: int = Field(60, ge=1)
    patience: int = Field(8, ge=1, description="Early stopping on the validation loss.")
    batch_size: int = Field(64, ge=1)
    lr: float = Field(3e-3, gt=0)
    #: The last fraction of the windows held out for early stopping and conformal intervals.
    val_fraction: float = Field(0.2, gt=0, lt=1)


class ForecastConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    #: Steps ahead to forecast; None: 30 daily, 48 hourly, 12 weekly or monthly.
    horizon: int | None = Field(None, ge=1)
    #: pandas frequency ("h", "D", "W-SUN", "MS"); None: inferred from the timestamps.
    freq: str | None = None
    #: Season length in steps; None: 24 hourly, 7 daily, 52 weekly, 12 monthly.
    season: int | None = Field(None, ge=1)
    duplicates: Duplicates = "mean"
    models: tuple[ModelName, ...] = Field(ALL_MODELS, min_length=1)
    #: Nominal coverage of the prediction intervals.
    level: float = Field(0.8, gt=0, lt=1)

    #: Rolling-origin backtest: the first origin leaves `initial` points to fit on (None: three
    #: seasons or three horizons, whichever is longer), then moves by `period` (None: the
    #: horizon); only the last `max_windows` origins are kept.
    initial: int | None = Field(None, ge=2)
    period: int | None = Field(None, ge=1)
    max_windows: int = Field(3, ge=1)
    #: The metric that picks each series' model (lower is better).
    select_by: Literal["mase", "rmse", "mae", "smape"] = "mase"

    prophet: ProphetConfig = ProphetConfig()
    lstm: LSTMConfig = LSTMConfig()
    #: Processes fitting series in parallel; 0: one per CPU core.
    n_jobs: int = Field(0, ge=0)
    seed: int = 42
