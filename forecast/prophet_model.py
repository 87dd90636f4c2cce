"""Prophet (Taylor & Letham, 2018) as a `Forecaster`: a piecewise-linear trend, Fourier
seasonalities and country holidays, fitted by MAP with Stan.

Seasonalities follow the data's frequency: yearly when Prophet finds two years of data
("auto"); weekly for hourly and daily data; daily for hourly data. Holidays are only added for
hourly and daily data, where one day is one or more points.

Prophet is a function of time: its forecast depends on the dates only, so a forecast
conditioned on a longer history (`predict(h, history=...)`) predicts the dates after that
history from the fitted curve; the new values do not move it (refit to take them in).

Since the forecast depends on the dates only, a saved model also stores its forecast for the
`serve_cache_steps` steps after its data (`prophet_cache.parquet`): serving a request whose dates
fall there (a forecast conditioned on a few new points, say) is then a lookup instead of ~45 ms
of sampling. The numbers are the ones `predict` would give for those dates.

Prophet's interval is drawn by simulation from numpy's global generator; `_predict` seeds it
for the call and puts the caller's state back, so the same model always gives the same interval
and nothing outside changes. Measured on one core, 1,000 daily points with US holidays: fit
~0.15 s (the first in a process ~1.7 s: Prophet, holidays and the Stan model load).
"""

from __future__ import annotations

import logging
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from forecast.config import ProphetConfig
from forecast.frequency import family, future_dates
from forecast.model import Forecaster

if TYPE_CHECKING:
    from prophet import Prophet

PROPHET_FILE = "prophet.json"
CACHE_FILE = "prophet_cache.parquet"
#: Seeds numpy's global generator (state restored afterwards) while Prophet draws its interval.
SAMPLING_SEED = 0
_SAMPLING = threading.Lock()
#: Loggers quietened to WARNING while Prophet runs: cmdstanpy's per-fit "Chain [1] start/done
#: processing" and Prophet's notes (e.g. "Disabling yearly seasonality"). `prophet.plot` goes
#: to CRITICAL: it logs an ERROR on import when plotly (interactive plots, unused) is missing.
QUIET = {"cmdstanpy": logging.WARNING, "prophet": logging.WARNING, "prophet.plot": logging.CRITICAL}


@contextmanager
def _quiet() -> Iterator[None]:
    """Prophet's and cmdstanpy's chatter at WARNING for the block (and Prophet's deprecation
    warnings off); logger levels and warning filters restored after."""
    # cmdstanpy sets its logger to DEBUG when it first uses it; have it do so now, not inside
    # the block, where it would undo the level set here.
    from cmdstanpy.utils import get_logger

    get_logger()
    loggers = {logging.getLogger(name): level for name, level in QUIET.items()}
    before = {logger: logger.level for logger in loggers}
    try:
        for logger, level in loggers.items():
            logger.setLevel(max(level, logger.getEffectiveLevel()))
        with warnings.catch_warnings():
            # Prophet still calls pandas methods with `inplace=True`, which pandas 3 deprecates:
            # a warning per fit and per forecast about Prophet's code, nothing ours can change.
            warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"prophet\.")
            yield
    finally:
        for logger, level in before.items():
            logger.setLevel(level)


class ProphetForecaster(Forecaster):
    """Prophet with the seasonalities and holidays the frequency calls for; `model_` is the
    fitted `prophet.Prophet`."""

    name = "prophet"

    def __init__(
        self,
        freq: str,
        season: int,
        level: float = 0.8,
        config: ProphetConfig | dict[str, Any] | None = None,
    ) -> None:
        super().__init__(freq, season, level)
        self.config = config

    def _config(self) -> ProphetConfig:
        if self.config is None:
            return ProphetConfig()
        if isinstance(self.config, ProphetConfig):
            return self.config
        return ProphetConfig.model_validate(self.config)

    def params(self) -> dict[str, Any]:
        return {"config": self._config().model_dump()}

    def _new_model(self) -> Prophet:
        """An unfitted Prophet; call inside `_quiet` (it logs while choosing its Stan backend)."""
        from prophet import Prophet

        config = self._config()
        kind = family(self.freq)
        model = Prophet(
            yearly_seasonality="auto",
            weekly_seasonality=kind in ("h", "D"),
            daily_seasonality=kind == "h",
            seasonality_mode=config.seasonality_mode,
            seasonality_prior_scale=config.seasonality_prior_scale,
            changepoint_prior_scale=config.changepoint_prior_scale,
            interval_width=self.level,
            uncertainty_samples=config.uncertainty_samples,
        )
        if config.country_holidays and kind in ("h", "D"):
            model.add_country_holidays(country_name=config.country_holidays)
        return model

    def _fit(self, history: pd.DataFrame) -> None:
        self.cache_: pd.DataFrame | None = None  # a refit invalidates the stored forecast
        with _quiet():
            self.model_ = self._new_model().fit(history[["ds", "y"]])

    def _predict(self, history: pd.DataFrame, dates: pd.DatetimeIndex) -> pd.DataFrame:
        cache = getattr(self, "cache_", None)
        if cache is not None and dates.isin(cache.index).all():
            return cache.loc[dates].reset_index(drop=True)
        return self._sample(dates)

    def _sample(self, dates: pd.DatetimeIndex) -> pd.DataFrame:
        # `history` is not read: Prophet's forecast is a function of the dates (module docs).
        # 30 daily steps take ~45 ms with 300 uncertainty samples, nearly all of it drawing the
        # interval's trend paths; ~20 ms with uncertainty_samples=0 (measured on one core).
        # The API predicts big batches in worker threads: one draw at a time, or two would
        # reseed (and restore) numpy's one global generator under each other.
        with _SAMPLING:
            state = np.random.get_state()
            try:
                np.random.seed(SAMPLING_SEED)
                with _quiet():
                    out = self.model_.predict(pd.DataFrame({"ds": dates}))
            finally:
                np.random.set_state(state)
        yhat = out["yhat"].to_numpy(dtype=float)
        if "yhat_lower" not in out:  # uncertainty_samples=0: Prophet draws no interval
            return pd.DataFrame({"yhat": yhat, "yhat_lower": yhat, "yhat_upper": yhat})
        return pd.DataFrame(
            {
                "yhat": yhat,
                "yhat_lower": out["yhat_lower"].to_numpy(dtype=float),
                "yhat_upper": out["yhat_upper"].to_numpy(dtype=float),
            }
        )

    def _save(self, folder: Path) -> None:
        from prophet.serialize import model_to_json

        (folder / PROPHET_FILE).write_text(model_to_json(self.model_))
        steps = self._config().serve_cache_steps
        if steps:
            dates = future_dates(self.history_["ds"].iloc[-1], self.freq, steps)
            self.cache_ = self._sample(dates).set_index(dates)
            self.cache_.rename_axis("ds").reset_index().to_parquet(folder / CACHE_FILE)

    def _load(self, folder: Path) -> None:
        text = (folder / PROPHET_FILE).read_text()
        with _quiet():
            from prophet.serialize import model_from_json

            self.model_ = model_from_json(text)
        if (folder / CACHE_FILE).is_file():
            self.cache_ = pd.read_parquet(folder / CACHE_FILE).set_index("ds")
