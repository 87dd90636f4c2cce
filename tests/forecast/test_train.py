"""Training forecasters end to end: the artifact's files and manifest, the selection, parallel
fitting, and failures that leave the store as it was. The slow test trains every model on the
built-in series the way `make train-forecast` does."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from common.artifacts import ArtifactStore, read_manifest
from common.errors import UserError
from common.settings import Settings
from forecast import backtest as bt
from forecast.config import ForecastConfig
from forecast.evaluate import summary_metrics
from forecast.model import load
from forecast.train import run
from tests.forecast.conftest import FAST_MODELS, HORIZON


def test_the_artifact_holds_every_table_and_a_model_per_series(forecast_artifact: Path) -> None:
    manifest = read_manifest(forecast_artifact, project="forecast")
    for name in ("backtest.parquet", "scores.csv", "forecast.parquet", "expectations.csv",
                 "monitoring/reference.json", "model_card.md", "plots/models.png"):  # fmt: skip
        assert (forecast_artifact / name).is_file(), name
    series = manifest.extra["series"]
    assert [s["series_id"] for s in series] == ["store_01", "store_02"]
    for entry in series:
        model = load(forecast_artifact / entry["folder"])
        assert model.name == entry["model"] in FAST_MODELS
        assert len(model.predict(HORIZON)) == HORIZON


def test_the_manifest_reports_every_model_against_seasonal_naive(forecast_artifact: Path) -> None:
    metrics = read_manifest(forecast_artifact).metrics["backtest"]
    assert list(metrics) == [*FAST_MODELS, "selected"]
    assert metrics["seasonal_naive"]["relative_mase"] == pytest.approx(1.0)
    for name in FAST_MODELS:
        for key in ("mae", "rmse", "smape", "mase", "coverage", "seconds_per_series"):
            assert metrics[name][key] >= 0, (name, key)
    assert sum(metrics[m]["selected"] for m in FAST_MODELS) == 2


def test_the_gate_scores_the_selection_on_windows_that_did_not_choose_it(
    forecast_artifact: Path,
) -> None:
    """Two windows per series: the second is forecast by the model that won the first, and
    compared with seasonal naive on the second only."""
    held = read_manifest(forecast_artifact).metrics["held_out_selection"]
    points = bt.point_errors(pd.read_parquet(forecast_artifact / "backtest.parquet"))
    first, last = sorted(points["cutoff"].unique())
    ours, baseline = [], []
    for _, own in points.groupby("series_id"):
        early = own[own["cutoff"] == first].groupby("model")["scaled_error"].mean()
        winner = early.sort_values(kind="stable").index[0]
        later = own[own["cutoff"] == last]
        ours.append(later.loc[later["model"] == winner, "scaled_error"])
        baseline.append(later.loc[later["model"] == "seasonal_naive", "scaled_error"])
    mase, base = pd.concat(ours).mean(), pd.concat(baseline).mean()
    assert held["windows"] == 2
    assert held["mase"] == pytest.approx(mase) and held["baseline_mase"] == pytest.approx(base)
    assert held["skill"] == pytest.approx(1 - mase / base)


def test_the_gate_can_fail_where_in_sample_selection_cannot() -> None:
    """naive wins the early windows and loses the last: in sample, the selection (seasonal
    naive) ties with seasonal naive; held out, it is far worse, and a gate of 0 refuses it."""
    from tests.forecast.test_backtest import windows

    backtest = windows({"naive": [1.0, 1.0, 9.0], "seasonal_naive": [2.0, 2.0, 2.0]})
    held_out = bt.select_held_out(backtest, "mase", ["naive", "seasonal_naive"])
    scores = bt.summarise(backtest, ["model"]).assign(seconds=0.0)
    metrics = summary_metrics(backtest, scores, {"a": "seasonal_naive"},
                              ["naive", "seasonal_naive"], held_out)  # fmt: skip
    assert metrics["backtest"]["selected"]["skill"] == pytest.approx(0.0)
    assert metrics["held_out_selection"]["skill"] == pytest.approx(1 - 5.0 / 2.0)
    assert not metrics["held_out_selection"]["skill"] >= 0


def test_the_selected_model_has_the_lowest_backtest_mase(forecast_artifact: Path) -> None:
    scores = pd.read_csv(forecast_artifact / "scores.csv")
    chosen = {s["series_id"]: s["model"] for s in read_manifest(forecast_artifact).extra["series"]}
    for sid, group in scores.groupby("series_id"):
        assert chosen[sid] == group.sort_values("mase")["model"].iloc[0]


def test_backtest_points_carry_cutoffs_and_steps(forecast_artifact: Path) -> None:
    points = pd.read_parquet(forecast_artifact / "backtest.parquet")
    assert set(points["step"]) == set(range(1, HORIZON + 1))
    assert (points["ds"] >= points["cutoff"]).all()
    assert points.groupby(["series_id", "model"])["cutoff"].nunique().eq(2).all()


def test_parallel_fitting_gives_the_same_models(forecast_files, tmp_path: Path,
                                                forecast_artifact: Path) -> None:  # fmt: skip
    config = ForecastConfig(horizon=HORIZON, models=FAST_MODELS, n_jobs=2, max_windows=2)
    path = run(forecast_files.train, config, Settings(artifacts_root=tmp_path, tracking=False))
    ours = pd.read_parquet(path / "forecast.parquet")
    reference = pd.read_parquet(forecast_artifact / "forecast.parquet")
    pd.testing.assert_frame_equal(ours, reference, check_exact=False, rtol=1e-9)


def test_series_too_short_are_named_and_nothing_is_published(tmp_path: Path) -> None:
    frame = pd.DataFrame({"ds": pd.date_range("2024-01-01", periods=40, freq="D"), "y": 1.0})
    path = tmp_path / "short.csv"
    frame.assign(y=range(40)).to_csv(path, index=False)
    settings = Settings(artifacts_root=tmp_path / "store", tracking=False)
    with pytest.raises(UserError, match=r"too short for a 30-step horizon.*series \(40\)"):
        run(path, ForecastConfig(models=FAST_MODELS, n_jobs=1), settings)
    assert ArtifactStore(settings.artifacts_root, "forecast").versions() == []


@pytest.mark.slow
def test_make_train_forecast_on_the_built_in_series(tmp_path: Path) -> None:
    """Every model (Prophet and the LSTM included) on the built-in daily series, as `make
    train-forecast` runs it: a model per series, chosen by backtest, each compared with
    seasonal naive."""
    makefile = Path("Makefile").read_text()
    assert re.search(r"^FORECAST_TRAIN_ARGS \?=\s*$", makefile, re.M), "update this test's args"
    env = {"MLP_ARTIFACTS_ROOT": str(tmp_path / "store"), "MLP_TRACKING": "false",
           "PATH": "/usr/bin:/bin"}  # fmt: skip
    data = tmp_path / "daily.csv"
    subprocess.run([sys.executable, "-m", "forecast", "data", "--out", str(data)], check=True,
                   env=env, capture_output=True)  # fmt: skip
    done = subprocess.run([sys.executable, "-m", "forecast", "train", "--data", str(data)],
                          env=env, capture_output=True, text=True, timeout=900)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    artifact = Path(done.stdout.strip())
    metrics = json.loads((artifact / "manifest.json").read_text())["metrics"]["backtest"]
    assert set(metrics) == {"naive", "seasonal_naive", "ets", "prophet", "lstm", "selected"}
    # The built-in series have weekly and yearly seasonality and holidays: the selection beats
    # seasonal naive, and the models' intervals cover roughly their nominal 80%.
    assert metrics["selected"]["relative_mase"] < 0.9
    for name in ("ets", "prophet", "lstm"):
        assert 0.5 < metrics[name]["coverage"] <= 1.0, (name, metrics[name])


def test_seasonal_naive_is_always_the_yardstick(forecast_files, tmp_path: Path) -> None:
    config = ForecastConfig(horizon=HORIZON, models=("naive", "ets"), n_jobs=1, max_windows=1)
    path = run(forecast_files.train, config, Settings(artifacts_root=tmp_path, tracking=False))
    manifest = read_manifest(path)
    metrics = manifest.metrics["backtest"]
    assert list(metrics) == ["naive", "ets", "seasonal_naive", "selected"]
    assert 0 < metrics["selected"]["relative_mase"] < 10
    assert {s["model"] for s in manifest.extra["series"]} <= {"naive", "ets"}
    steps = pd.read_csv(path / "scores_by_step.csv")
    assert set(steps["step"]) == set(range(1, HORIZON + 1)) and len(steps) == 3 * HORIZON


def test_a_model_failing_on_the_whole_series_gives_way_to_the_next(
    forecast_files, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The backtest's winner raises on the full series: the runner-up is saved instead, and
    the failure is recorded."""
    from forecast import train as train_module
    from forecast.baselines import SeasonalNaive
    from forecast.data import load as load_series

    class FailsOnEverything(SeasonalNaive):
        def _fit(self, history: pd.DataFrame) -> None:
            if len(history) >= 200:
                raise np.linalg.LinAlgError("singular matrix on the whole series")
            super()._fit(history)

    real_build = train_module.build

    def build(name: str, **options):
        if name == "seasonal_naive":
            return FailsOnEverything(options["freq"], options["season"])
        return real_build(name, **options)

    monkeypatch.setattr(train_module, "build", build)
    history = load_series(forecast_files.train).series("store_01")
    plan = train_module.Plan("D", 7, 7, 30, 7)
    config = ForecastConfig(models=("naive", "seasonal_naive"), n_jobs=1)
    result = train_module.fit_series("store_01", history, tmp_path / "m", plan, config)
    assert result.selected == "naive"
    assert "singular matrix" in result.failures["seasonal_naive (final fit)"]
    assert (tmp_path / "m" / "forecaster.json").is_file()
