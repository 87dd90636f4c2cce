"""The one contract every forecasting model follows, how models are built by name, and how they
are saved and loaded.

A `Forecaster` works on one regular series (a `ds, y` frame with no gaps, as `forecast.data`
returns it), in the scikit-learn manner: the constructor stores hyper-parameters, `fit` learns
and returns `self`, learned attributes end in `_`, and `predict` never refits:

    model = build("ets", freq="D", season=7, config=config).fit(train)
    model.predict(30)                   # ds, yhat, yhat_lower, yhat_upper: 30 days after train
    model.predict(30, history=recent)   # conditioned on newer points: starts after `recent`

`history` is what the model knows now: newer points (and corrections to older ones) merged onto
the series it was fitted on. Models that read their state from recent values (naive, ETS, the
LSTM) forecast from it; Prophet, a function of time, only moves its forecast's dates.

The models themselves live in `forecast.baselines`, `forecast.prophet_model` and
`forecast.lstm`; they are imported by name only when used, so serving one kind of model never
loads the libraries of another.
"""

from __future__ import annotations

import importlib
import json
from abc import ABC, abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Self

import numpy as np
import pandas as pd
from scipy import stats

from common.errors import ArtifactError, UserError
from forecast.frequency import future_dates

if TYPE_CHECKING:
    from forecast.config import ForecastConfig

FORECAST_COLUMNS = ["ds", "yhat", "yhat_lower", "yhat_upper"]
STATE_FILE = "forecaster.json"
VALUES_FILE = "history.npy"
#: name -> "module:Class"; every model in `forecast.config.ALL_MODELS`.
REGISTRY = {
    "naive": "forecast.baselines:Naive",
    "seasonal_naive": "forecast.baselines:SeasonalNaive",
    "ets": "forecast.baselines:ETS",
    "prophet": "forecast.prophet_model:ProphetForecaster",
    "lstm": "forecast.lstm:LSTMForecaster",
}


class HistoryError(UserError):
    """History given to condition a forecast on does not fit the series (wrong grid, NaN)."""


def regular_frame(start: pd.Timestamp, values: np.ndarray, freq: str) -> pd.DataFrame:
    return pd.DataFrame(
        {"ds": pd.date_range(start, periods=len(values), freq=freq), "y": values.astype(float)}
    )


#: How far past the fitted data new points may reach, in steps: bounds the grid `extend` builds
#: (one point dated years ahead would otherwise make millions of interpolated steps).
MAX_EXTENSION = 10_000


def extend(known: pd.DataFrame, new: pd.DataFrame, freq: str) -> pd.DataFrame:
    """`known` with `new` merged in (new values win on equal timestamps), on `known`'s regular
    grid; points missing between the two are interpolated linearly. New points must lie on the
    grid, from `known`'s start to at most `MAX_EXTENSION` steps after its end."""
    if new.empty:
        return known
    try:
        ds = pd.to_datetime(new["ds"])
    except (ValueError, TypeError, OverflowError) as exc:
        raise HistoryError(f"history: unreadable ds ({exc})") from None
    if ds.dt.tz is not None:  # as training reads zoned timestamps: UTC, then naive
        ds = ds.dt.tz_convert("UTC").dt.tz_localize(None)
    y = pd.to_numeric(new["y"], errors="coerce").to_numpy(dtype=float)
    if not np.isfinite(y).all():
        raise HistoryError("history: every y must be a finite number")
    start, end = known["ds"].iloc[0], known["ds"].iloc[-1]
    last = pd.date_range(end, periods=MAX_EXTENSION + 1, freq=freq)[-1]
    if ds.min() < start or ds.max() > last:
        outside = ds[(ds < start) | (ds > last)].iloc[0]
        raise HistoryError(
            f"history: {outside} is outside the series' span: from its start ({start}) to "
            f"{MAX_EXTENSION} steps after its end ({end})"
        )
    grid = pd.date_range(start, max(end, ds.max()), freq=freq)
    off_grid = ~ds.isin(grid)
    if off_grid.any():
        first = ds[off_grid].iloc[0]
        raise HistoryError(f"history: {first} is not on the series' {freq} grid (from {start})")
    merged = pd.concat([known, pd.DataFrame({"ds": ds.to_numpy(), "y": y})])
    merged = merged.drop_duplicates("ds", keep="last")
    values = merged.set_index("ds")["y"].reindex(grid).interpolate(limit_area="inside")
    return pd.DataFrame({"ds": grid, "y": values.to_numpy(dtype=float)})


def gaussian_interval(
    yhat: np.ndarray, sigma: np.ndarray, level: float
) -> tuple[np.ndarray, np.ndarray]:
    """yhat +- z * sigma: the usual interval for a model with normal errors of scale `sigma`."""
    z = float(stats.norm.ppf(0.5 + level / 2))
    return yhat - z * sigma, yhat + z * sigma


class Forecaster(ABC):
    """A model of one regular series: `fit(df) -> self`, `predict(horizon) -> forecast frame`."""

    name: ClassVar[str]

    def __init__(self, freq: str, season: int, level: float = 0.8) -> None:
        self.freq = freq
        self.season = season
        self.level = level

    # -- what each model implements --------------------------------------------------------
    @abstractmethod
    def _fit(self, history: pd.DataFrame) -> None:
        """Learn from a regular `ds, y` frame (set attributes ending in `_`)."""

    @abstractmethod
    def _predict(self, history: pd.DataFrame, dates: pd.DatetimeIndex) -> pd.DataFrame:
        """yhat, yhat_lower, yhat_upper for `dates`, which follow `history` directly."""

    def params(self) -> dict[str, Any]:
        """Constructor arguments beyond freq, season and level (JSON), to rebuild the model."""
        return {}

    def _save(self, folder: Path) -> None:  # noqa: B027 (optional hook: nothing by default)
        """Write learned state other than the history (e.g. network weights) into `folder`."""

    def _load(self, folder: Path) -> None:  # noqa: B027 (optional hook: nothing by default)
        """Read what `_save` wrote."""

    # -- the contract ----------------------------------------------------------------------
    def fit(self, df: pd.DataFrame) -> Self:
        y = df["y"].to_numpy(dtype=float)
        if len(y) < 2 or not np.isfinite(y).all():
            raise UserError(f"{self.name}: needs at least 2 finite values to fit, got {len(y)}")
        self.history_ = pd.DataFrame({"ds": pd.to_datetime(df["ds"]).to_numpy(), "y": y})
        self._fit(self.history_)
        return self

    def predict(self, horizon: int, history: pd.DataFrame | None = None) -> pd.DataFrame:
        if not hasattr(self, "history_"):
            raise RuntimeError(f"{type(self).__name__} is not fitted; call fit first")
        if horizon < 1:
            raise ValueError(f"horizon must be at least 1, got {horizon}")
        series = self.history_ if history is None else extend(self.history_, history, self.freq)
        dates = future_dates(series["ds"].iloc[-1], self.freq, horizon)
        out = self._predict(series, dates)
        yhat = out["yhat"].to_numpy(dtype=float)
        # Intervals always contain the point forecast (Prophet's sampled bounds may not).
        lower = np.minimum(out["yhat_lower"].to_numpy(dtype=float), yhat)
        upper = np.maximum(out["yhat_upper"].to_numpy(dtype=float), yhat)
        return pd.DataFrame({"ds": dates, "yhat": yhat, "yhat_lower": lower, "yhat_upper": upper})

    # -- persistence -----------------------------------------------------------------------
    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        state = {
            "name": self.name, "freq": self.freq, "season": self.season, "level": self.level,
            "params": self.params(), "start": self.history_["ds"].iloc[0].isoformat(),
        }  # fmt: skip
        (folder / STATE_FILE).write_text(json.dumps(state, indent=2))
        np.save(folder / VALUES_FILE, self.history_["y"].to_numpy(dtype=float))
        self._save(folder)


def forecaster_class(name: str) -> type[Forecaster]:
    if name not in REGISTRY:
        raise UserError(f"unknown model {name!r}; choose from {', '.join(REGISTRY)}")
    module, cls = REGISTRY[name].split(":")
    return getattr(importlib.import_module(module), cls)


def build(name: str, *, freq: str, season: int, horizon: int, config: ForecastConfig,
          progress: bool = False) -> Forecaster:  # fmt: skip
    """A fresh, unfitted model with the configuration's hyper-parameters; `progress` shows a
    bar while a slow model (the LSTM) trains."""
    cls = forecaster_class(name)
    options: dict[str, Any] = {"freq": freq, "season": season, "level": config.level}
    if name == "prophet":
        options["config"] = config.prophet
    elif name == "lstm":
        options.update(config=config.lstm, horizon=horizon, seed=config.seed, progress=progress)
    return cls(**options)


def load(folder: Path) -> Forecaster:
    """A fitted model from what `Forecaster.save` wrote."""
    try:
        state = json.loads((folder / STATE_FILE).read_text())
        values = np.load(folder / VALUES_FILE)
    except (OSError, ValueError) as exc:
        raise ArtifactError(f"{folder}: cannot read the saved model ({exc})") from None
    cls = forecaster_class(state["name"])
    model = cls(state["freq"], state["season"], state["level"], **state["params"])
    model.history_ = regular_frame(pd.Timestamp(state["start"]), values, state["freq"])
    try:
        model._load(folder)
    except (OSError, KeyError, ValueError) as exc:  # a model's own file missing or corrupted
        raise ArtifactError(f"{folder}: cannot read the {state['name']} model ({exc})") from None
    return model
