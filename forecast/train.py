"""Training forecasters end to end: series file -> backtest of every model per series -> the
best model per series, refitted on all its data -> a published artifact.

Series are independent, so they are fitted in parallel, one series per task, across processes
(`n_jobs`, default one per core) with a progress bar. Each worker saves its series' model into
the draft artifact itself: fitted Prophet and PyTorch models are then never pickled between
processes. Any failure before publishing leaves the store exactly as it was.

Artifact layout (besides model_card.md and plots/):

    manifest.json        metrics (`backtest.<model>.mase`, ...; `held_out_selection`, the
                         promotion gate's) and, in `extra.series`, each series' folder,
                         selected model, length, dates and what data fixed
    models/0000/         the selected model of the first series (forecast.model.Forecaster.save)
    forecast.parquet     each series' forecast for the horizon after its last point
    backtest.parquet     every backtest point of every model (forecast.backtest)
    scores.csv           per series and model: MAE, RMSE, sMAPE, MASE, coverage, seconds
    scores_by_step.csv   per model and horizon step, over every series: the same metrics
    expectations.csv     each series' expected error, for monitoring (forecast.monitor)
    monitoring/          the reference profile of the backtest's residuals
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from common.artifacts import ArtifactStore, package_versions
from common.errors import UserError
from common.settings import Settings
from common.tracking import Tracker
from forecast import backtest as bt
from forecast import frequency
from forecast.config import ALL_MODELS, ForecastConfig
from forecast.data import SeriesData, fingerprint, load
from forecast.evaluate import summary_metrics, write_model_card, write_plots
from forecast.model import build
from forecast.monitor import expectations, reference_profile
from forecast.serve import MODEL_LIBRARIES, ForecastRequest, ForecastResponse

logger = logging.getLogger(__name__)
MODELS_DIR = "models"
#: Backtested on every series, selectable or not: every model is reported against it.
YARDSTICK = "seasonal_naive"


@dataclass(frozen=True)
class Plan:
    """What every series is fitted with, resolved from the config and the data."""

    freq: str
    season: int
    horizon: int
    initial: int
    period: int


def plan_for(config: ForecastConfig, freq: str) -> Plan:
    season = config.season or frequency.season_length(freq)
    horizon = config.horizon or frequency.default_horizon(freq)
    initial = config.initial or max(3 * season, 3 * horizon)
    return Plan(freq, season, horizon, initial, config.period or horizon)


@dataclass
class SeriesResult:
    """One series' outcome, small enough to send back from a worker process."""

    series_id: str
    folder: str
    selected: str
    backtest: pd.DataFrame
    scores: pd.DataFrame
    forecast: pd.DataFrame
    seconds: dict[str, float]
    failures: dict[str, str]
    #: Each window after the first, forecast by the model chosen on the windows before it.
    held_out: pd.DataFrame


def fit_series(
    series_id: str, history: pd.DataFrame, folder: Path, plan: Plan, config: ForecastConfig,
    progress: bool = False, filled: np.ndarray | None = None,
) -> SeriesResult:  # fmt: skip
    """Backtest every configured model on one series, pick the best, refit it on all the data
    and save it into `folder`. Seasonal naive is always backtested, as the yardstick of the
    report, but only selected if configured. If the chosen model fails on the whole series,
    the next best is taken and the failure recorded."""
    names = list(dict.fromkeys([*config.models, YARDSTICK]))
    models = {
        name: partial(build, name, freq=plan.freq, season=plan.season, horizon=plan.horizon,
                      config=config, progress=progress)
        for name in names
    }  # fmt: skip
    cuts = bt.cutoffs(len(history), initial=plan.initial, period=plan.period,
                      horizon=plan.horizon, max_windows=config.max_windows)  # fmt: skip
    # `filled`: the points data preparation interpolated, kept out of the backtest's fits and
    # scores (see run_backtest); the final model is fitted on the interpolated series, all past.
    result = bt.run_backtest(series_id, history, models, season=plan.season,
                             horizon=plan.horizon, cuts=cuts, filled=filled)  # fmt: skip
    scores = bt.summarise(result.frame, by=["model"])
    scores["seconds"] = scores["model"].map(result.seconds)
    candidates = scores[scores["model"].isin(config.models)]
    held_out = bt.select_held_out(result.frame[result.frame["model"].isin(config.models)],
                                  config.select_by, ALL_MODELS)  # fmt: skip
    failures = dict(result.failures)
    start = time.perf_counter()
    while True:
        # Ties go to the simpler model: the order of ALL_MODELS, baselines first.
        selected = bt.select(candidates, config.select_by, ALL_MODELS)
        try:
            model = models[selected]().fit(history)
            break
        except Exception as exc:  # recorded and reported, as in the backtest
            failures[f"{selected} (final fit)"] = f"{type(exc).__name__}: {exc}"
            logger.warning("%s: %s failed on the whole series: %s", series_id, selected, exc)
            candidates = candidates[candidates["model"] != selected]
    model.save(folder)  # before predicting: a saved Prophet serves from its stored forecast
    forecast = model.predict(plan.horizon).assign(series_id=series_id, model=selected)
    seconds = {**result.seconds, "final_fit": time.perf_counter() - start}
    return SeriesResult(series_id, folder.name, selected, result.frame,
                        scores.assign(series_id=series_id), forecast, seconds,
                        failures, held_out)  # fmt: skip


def _init_worker() -> None:
    # Each worker fits one series at a time: one thread each, so n_jobs processes share the
    # cores instead of every process's torch starting a thread per core.
    os.environ["OMP_NUM_THREADS"] = "1"
    import torch

    torch.set_num_threads(1)


def fit_all(data: SeriesData, out: Path, plan: Plan, config: ForecastConfig) -> list[SeriesResult]:
    """Every series through `fit_series`, in parallel when there are several; results keep the
    data's order."""
    folders = {sid: out / f"{i:04d}" for i, sid in enumerate(data.ids)}
    jobs = min(config.n_jobs or os.cpu_count() or 1, len(folders))
    bar = tqdm(total=len(folders), desc="series", unit="series", disable=None)
    results: dict[str, SeriesResult] = {}
    if jobs == 1:
        for sid, folder in folders.items():
            results[sid] = fit_series(sid, data.series(sid), folder, plan, config, progress=True,
                                      filled=data.filled_mask(sid))  # fmt: skip
            bar.update()
    else:
        # spawn, not fork: forking a process that has started torch's or OpenMP's threads can
        # deadlock the child.
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(jobs, mp_context=context, initializer=_init_worker) as pool:
            futures = {
                pool.submit(
                    fit_series,
                    sid,
                    data.series(sid),
                    folder,
                    plan,
                    config,
                    filled=data.filled_mask(sid),
                ): sid
                for sid, folder in folders.items()
            }
            for future in as_completed(futures):
                results[futures[future]] = future.result()
                bar.update()
    bar.close()
    return [results[sid] for sid in data.ids]


def _frames(results: list[SeriesResult]) -> Iterator[pd.DataFrame]:
    for name in ("backtest", "scores", "forecast", "held_out"):
        yield pd.concat([getattr(r, name) for r in results], ignore_index=True)


def run(data_path: Path, config: ForecastConfig, settings: Settings) -> Path:
    """Train on a series file and publish an artifact; returns its directory."""
    data_path = Path(data_path).resolve()
    data = load(data_path, freq=config.freq, duplicates=config.duplicates)
    plan = plan_for(config, data.freq)
    need = plan.initial + plan.horizon
    lengths = data.frame.groupby("series_id", sort=False).size()
    short = lengths[lengths < need].to_dict()
    if short:
        examples = ", ".join(f"{s} ({n})" for s, n in list(short.items())[:5])
        raise UserError(
            f"{data_path}: {len(short)} series too short for a {plan.horizon}-step horizon: the "
            f"backtest needs {plan.initial} points to fit plus {plan.horizon} to forecast "
            f"({need}); e.g. {examples}. Shorten --horizon or --initial, or add data."
        )
    logger.info("data:\n%s", data.summary())
    logger.info("plan: %s", plan)
    store = ArtifactStore(settings.artifacts_root, "forecast")
    with Tracker(
        settings.resolved_tracking_uri(), "forecast", enabled=settings.tracking,
        artifact_location=settings.tracking_artifact_location(),
    ) as tracker:  # fmt: skip
        tracker.log_params(config.model_dump(mode="json") | {"plan": vars(plan)})
        with store.create() as draft:
            metrics, info = _write(draft.path, data, plan, config)
            info["data"] = str(data_path)
            draft.info.update(
                data_fingerprint=fingerprint(data), seed=config.seed,
                config=config.model_dump(mode="json"),
                package_versions=package_versions(MODEL_LIBRARIES),
                input_schema=ForecastRequest.model_json_schema(),
                output_schema=ForecastResponse.model_json_schema(),
                metrics=metrics, extra=info,
            )  # fmt: skip
            write_model_card(draft.path, draft.version, info, metrics)
        tracker.set_tags({"artifact_version": draft.version, "artifact_dir": str(draft.final_path)})
        tracker.log_metrics(metrics)
        tracker.log_artifacts(draft.final_path, "artifact")
    assert draft.final_path is not None
    return draft.final_path


def _write(
    out: Path, data: SeriesData, plan: Plan, config: ForecastConfig
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Fit every series into `out` and write the tables, profile and plots; the metrics and
    the manifest's extra information."""
    started = time.perf_counter()
    results = fit_all(data, out / MODELS_DIR, plan, config)
    elapsed = time.perf_counter() - started
    backtest, scores, forecast, held_out = _frames(results)
    backtest.to_parquet(out / "backtest.parquet", index=False)
    scores.to_csv(out / "scores.csv", index=False)
    forecast.to_parquet(out / "forecast.parquet", index=False)
    selected = {r.series_id: r.selected for r in results}
    names = list(dict.fromkeys([*config.models, YARDSTICK]))
    metrics = summary_metrics(backtest, scores, selected, names, held_out)
    bt.summarise(backtest, by=["model", "step"]).to_csv(out / "scores_by_step.csv", index=False)
    metrics["train_seconds"] = round(elapsed, 2)
    expectations(backtest, selected).to_csv(out / "expectations.csv", index=False)
    reference_profile(backtest, selected, seed=config.seed).save(out)
    write_plots(out, data, backtest, forecast, selected, metrics)
    info: dict[str, Any] = {
        "freq": data.freq, "season": plan.season, "horizon": plan.horizon,
        "initial": plan.initial, "period": plan.period, "level": config.level,
        "select_by": config.select_by, "selected_counts": {str(k): int(v) for k, v in
                            pd.Series(selected).value_counts().items()},
        "failures": {r.series_id: r.failures for r in results if r.failures},
        "series": [series_entry(r, data) for r in results],
    }  # fmt: skip
    return metrics, info


def series_entry(result: SeriesResult, data: SeriesData) -> dict[str, Any]:
    history = data.series(result.series_id)
    return {
        "series_id": result.series_id, "folder": f"{MODELS_DIR}/{result.folder}",
        "model": result.selected, "points": len(history),
        "start": history["ds"].iloc[0].isoformat(), "end": history["ds"].iloc[-1].isoformat(),
        "fixes": data.fixes.get(result.series_id, {}),
    }  # fmt: skip
