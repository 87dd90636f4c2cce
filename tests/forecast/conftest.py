"""Fixtures of the forecast tests: two short built-in daily series, one artifact trained on them
once per session with the fast models (naive, seasonal naive, ETS: a few seconds, no Prophet or
LSTM fit), their continuation as actuals (healthy and level-shifted), and a monitoring folder
with one run of each.

The tests that use them check contracts (files, the API, the dashboard, alerts); accuracy on the
built-in data is measured by `make train-forecast` and `python -m benchmarks.forecast`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from common.settings import Settings

TRAIN_POINTS = 200
ACTUAL_POINTS = 40
HORIZON = 14
FAST_MODELS = ("naive", "seasonal_naive", "ets")


@dataclass(frozen=True)
class ForecastFiles:
    train: Path
    healthy: Path
    shifted: Path


@pytest.fixture(scope="session")
def forecast_files(tmp_path_factory: pytest.TempPathFactory) -> ForecastFiles:
    """Two built-in series, split into training data and 40 days of actuals after it."""
    from forecast.synthetic import generate, inject_level_shift

    folder = tmp_path_factory.mktemp("forecast-data")
    frame = generate("D", n_series=2, periods=TRAIN_POINTS + ACTUAL_POINTS, seed=5)
    cut = frame["ds"].sort_values().unique()[TRAIN_POINTS - 1]
    train, future = frame[frame["ds"] <= cut], frame[frame["ds"] > cut]
    shifted = inject_level_shift(future, at=cut + pd.Timedelta(days=10), size=4.0)
    files = ForecastFiles(folder / "train.csv", folder / "healthy.csv", folder / "shifted.csv")
    for data, path in ((train, files.train), (future, files.healthy), (shifted, files.shifted)):
        data.to_csv(path, index=False)
    return files


@pytest.fixture(scope="session")
def fast_forecast_config():
    from forecast.config import ForecastConfig

    return ForecastConfig(horizon=HORIZON, models=FAST_MODELS, n_jobs=1, max_windows=2)


@pytest.fixture(scope="session")
def forecast_artifact(
    tmp_path_factory: pytest.TempPathFactory, forecast_files: ForecastFiles, fast_forecast_config
) -> Path:
    """One published forecast artifact, trained once per session."""
    from forecast.train import run

    root = tmp_path_factory.mktemp("forecast-store")
    return run(forecast_files.train, fast_forecast_config,
               Settings(artifacts_root=root, tracking=False))  # fmt: skip


@pytest.fixture(scope="session")
def forecast_predictor(forecast_artifact: Path):
    from forecast.serve import ForecastPredictor

    return ForecastPredictor.from_artifact(forecast_artifact)


@pytest.fixture(scope="session")
def forecast_monitoring(
    tmp_path_factory: pytest.TempPathFactory, forecast_artifact: Path, forecast_files: ForecastFiles
) -> Path:
    """A monitoring root with two runs: the healthy actuals, then the shifted ones."""
    from forecast.monitor import monitor

    root = tmp_path_factory.mktemp("forecast-monitoring")
    settings = Settings(artifacts_root=forecast_artifact.parent.parent, monitoring_root=root,
                        tracking=False)  # fmt: skip
    for actuals in (forecast_files.healthy, forecast_files.shifted):
        monitor(actuals, settings=settings, model=forecast_artifact, sinks=[])
    return root
