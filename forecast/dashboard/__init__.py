"""The forecast model's Streamlit dashboard: `streamlit run forecast/dashboard/app.py`.

`app.py` declares the pages; each page is one module beside it: `predict` (a series and a
horizon in, the forecast with its interval out, optionally conditioned on newer points),
`backtest` (how every model did in the rolling-origin backtest, against seasonal naive) and
`monitoring` (actuals against forecasts, alerts and drift over time); `history_csv` reads the
points a user gives to condition a forecast on. Forecasts go through the same
`ForecastPredictor` the API serves, in-process, or through the API itself when `API_URL` is set;
the series, and the history drawn before their forecasts, are read from the model here.
"""

from __future__ import annotations

import pandas as pd

from common.dashboard import load_predictor
from forecast.serve import ForecastPredictor

#: What a user without a model is told to run.
TRAIN_COMMAND = "make train-forecast"


def forecast_predictor() -> ForecastPredictor:
    """The forecast model to show (`MODEL_DIR`, else production, else latest), loaded once; with
    none, the page shows how to train one and stops."""
    return load_predictor(ForecastPredictor, train_command=TRAIN_COMMAND)


def when(ts: pd.Timestamp) -> str:
    """A time as short as the data allows: the date alone for daily and coarser data."""
    return f"{ts:%Y-%m-%d}" if ts == ts.normalize() else f"{ts:%Y-%m-%d %H:%M}"
