"""Benchmark: forecast accuracy and speed on the built-in series, and the API's latency.

    python -m benchmarks.forecast [--seconds 10] [--series 100] [--skip-accuracy] [--skip-scale]

Measures on this machine:
- backtest accuracy of every model on the built-in daily, hourly and monthly series (6 series
  each, every model, the default backtest): MASE and MASE relative to seasonal naive, interval
  coverage, and fit+backtest seconds per series per model (single-threaded workers);
- 100 built-in daily series end to end (`python -m forecast train`, every model, all cores):
  wall time and peak memory of the largest process;
- `/predict` p50 for a 30-day horizon with intervals (one uvicorn worker pinned to CPU 0, a
  keep-alive client on CPU 1): without history (the stored forecast) and with 30 days of
  history (a fresh, conditioned forecast by the series' model), for an artifact whose series
  are served by each kind of model; goal <= 25 ms. Also each model's in-process `predict(30,
  history=...)`.

Results go to benchmarks/results/forecast.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd

from benchmarks.measure import client_p50, free_port, measure, on_cpu, pinned, save, wait_ready

ENV = {"MLP_TRACKING": "false", "MLP_SERVE_LOG_LEVEL": "warning"}
JSON = "application/json"


def train(data: Path, store: Path, *args: str) -> tuple[Path, float, float]:
    env = {**ENV, "MLP_ARTIFACTS_ROOT": str(store)}
    run = measure([sys.executable, "-m", "forecast", "train", "--data", str(data), *args], env=env)
    if run.returncode:
        raise RuntimeError(f"training failed: {run.command}")
    return Path(run.stdout.splitlines()[-1]), run.wall_s, run.peak_rss_mb


def accuracy(workdir: Path) -> dict[str, Any]:
    """Every model on 6 built-in series of each frequency."""
    from forecast.synthetic import generate

    out: dict[str, Any] = {}
    for freq in ("D", "h", "MS"):
        data = workdir / f"builtin_{freq}.csv"
        generate(freq, n_series=6, seed=42).to_csv(data, index=False)
        artifact, wall, _ = train(data, workdir / "store-accuracy")
        manifest = json.loads((artifact / "manifest.json").read_text())
        backtest = manifest["metrics"]["backtest"]
        out[freq] = {
            "wall_s": wall, "horizon": manifest["extra"]["horizon"],
            "models": {
                name: {k: round(m[k], 4) for k in ("mase", "relative_mase", "coverage", "smape",
                                                    "seconds_per_series", "selected") if k in m}
                for name, m in backtest.items()
            },
        }  # fmt: skip
        print(f"{freq}: {json.dumps(out[freq]['models'])}", file=sys.stderr)
    return out


def scale(workdir: Path, n_series: int) -> dict[str, Any]:
    from forecast.synthetic import generate

    data = workdir / f"daily_{n_series}.csv"
    generate("D", n_series=n_series, seed=7).to_csv(data, index=False)
    artifact, wall, rss = train(data, workdir / "store-scale")
    manifest = json.loads((artifact / "manifest.json").read_text())
    return {"series": n_series, "points_per_series": 1095, "wall_s": wall, "peak_rss_mb": rss,
            "cores": os.cpu_count(), "selected": manifest["extra"]["selected_counts"],
            "wall_s_per_series": round(wall / n_series, 2)}  # fmt: skip


def in_process_p50(artifact: Path, history: pd.DataFrame, repeats: int = 30) -> dict[str, float]:
    from forecast.serve import ForecastPredictor

    predictor = ForecastPredictor.from_artifact(artifact)
    out = {}
    for sid in predictor.ids:
        samples = []
        for _ in range(repeats):
            start = time.perf_counter()
            predictor.forecast(sid, 30, history)
            samples.append(time.perf_counter() - start)
        out[predictor.selected[sid]] = round(statistics.median(samples[3:]) * 1e3, 3)
    return out


def api(workdir: Path, seconds: float) -> dict[str, Any]:
    """One artifact per model kind (a single series each), served and timed."""
    from forecast.synthetic import generate

    frame = generate("D", n_series=1, periods=760, seed=3)
    data, recent = workdir / "api.csv", frame.iloc[-30:]
    frame.iloc[:-30].to_csv(data, index=False)
    history = [{"ds": d.isoformat(), "y": float(y)} for d, y in zip(recent["ds"], recent["y"],
                                                                    strict=True)]  # fmt: skip
    results: dict[str, Any] = {"goal_p50_ms": 25}
    for model in ("seasonal_naive", "ets", "prophet", "lstm"):
        artifact, _, _ = train(data, workdir / "store-api", "--models", model, "--n-jobs", "1")
        with on_cpu(0):
            results.setdefault("in_process_conditioned_ms", {}).update(
                in_process_p50(artifact, recent[["ds", "y"]]))  # fmt: skip
        port = free_port()
        command = [sys.executable, "-m", "forecast", "serve", "--model", str(artifact),
                   "--port", str(port)]  # fmt: skip
        server = subprocess.Popen(pinned(command, 0), env={**os.environ, **ENV},
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        try:
            wait_ready(f"http://127.0.0.1:{port}", timeout=120)
            with on_cpu(1):
                plain = json.dumps({"horizon": 30}).encode()
                conditioned = json.dumps({"horizon": 30, "history": history}).encode()
                results[model] = {
                    "api_p50_ms_stored": client_p50(port, plain, JSON, seconds),
                    "api_p50_ms_with_history": client_p50(port, conditioned, JSON, seconds),
                }
        finally:
            server.terminate()
            server.wait(timeout=30)
        print(f"api {model}: {results[model]}", file=sys.stderr)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10, help="Length of each API run.")
    parser.add_argument("--series", type=int, default=100, help="Series in the scale run.")
    parser.add_argument("--skip-accuracy", action="store_true")
    parser.add_argument("--skip-scale", action="store_true")
    parser.add_argument("--skip-api", action="store_true")
    args = parser.parse_args()
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        if not args.skip_accuracy:
            results["accuracy"] = accuracy(workdir)
        if not args.skip_scale:
            results["scale"] = scale(workdir, args.series)
        if not args.skip_api:
            results["api"] = api(workdir, args.seconds)
    save("forecast", results)


if __name__ == "__main__":
    main()
