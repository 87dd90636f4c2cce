"""Benchmark: does forecast monitoring stay quiet on healthy actuals, and catch level shifts?

    python -m benchmarks.monitor_forecast [--seeds 5] [--series 6] [--periods 30]

With the rules in forecast/alerts.yaml, each stream judged alone (a fresh alert state):
- false alarms: for each seed, the built-in daily series (every model, default backtest) and
  their healthy continuation of `--periods` days (one horizon by default). Goal: no run raises
  any alert; per series, how many would have tripped a rule;
- detection: the same continuation with a level shift of 1, 2 and 3 standard deviations of the
  series from day 10: the share of series whose error CUSUM or level-shift rule fires, and the
  median delay (in days after the shift) until the CUSUM crosses its threshold.

Results go to benchmarks/results/monitor_forecast.json.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from benchmarks.measure import save

SHIFTS = (1.0, 2.0, 3.0)
SHIFT_AFTER = 10


def thresholds() -> dict[str, float]:
    from common.monitoring.alerts import AlertConfig
    from forecast.monitor import DEFAULT_RULES

    rules = {r.metric: r for r in AlertConfig.load(DEFAULT_RULES).rules}
    return {
        "cusum": float(rules["error.cusum"].above),
        "shift": float(rules["level_shift.ratio"].above),
        "coverage": float(rules["coverage.min"].below),
    }


def run_monitor(
    actuals: Path, artifact: Path, root: Path
) -> tuple[Any, pd.DataFrame, pd.DataFrame]:
    from common.settings import Settings
    from forecast.monitor import monitor

    settings = Settings(artifacts_root=artifact.parent.parent, monitoring_root=root,
                        tracking=False)  # fmt: skip
    result = monitor(actuals, settings=settings, model=artifact, sinks=[])
    series = pd.read_csv(result.report_dir / "series.csv", dtype={"series_id": str})
    stream = pd.read_parquet(result.report_dir / "stream.parquet")
    return result, series, stream


def tripped(series: pd.DataFrame, limits: dict[str, float]) -> pd.Series:
    return (
        (series["cusum"] > limits["cusum"])
        | (series["shift_ratio"] > limits["shift"])
        | (series["coverage"] < limits["coverage"])
    )


def one_seed(seed: int, n_series: int, periods: int, workdir: Path) -> dict[str, Any]:
    from common.settings import Settings
    from forecast.config import ForecastConfig
    from forecast.synthetic import generate, inject_level_shift
    from forecast.train import run

    frame = generate("D", n_series=n_series, periods=1095 + periods, seed=seed)
    cut = sorted(frame["ds"].unique())[1094]
    train, future = frame[frame["ds"] <= cut], frame[frame["ds"] > cut]
    folder = workdir / f"seed{seed}"
    folder.mkdir()
    train.to_csv(folder / "train.csv", index=False)
    future.to_csv(folder / "healthy.csv", index=False)
    artifact = run(folder / "train.csv", ForecastConfig(seed=seed),
                   Settings(artifacts_root=folder / "store", tracking=False))  # fmt: skip
    limits = thresholds()
    result, series, _ = run_monitor(folder / "healthy.csv", artifact, folder / "mon-healthy")
    out: dict[str, Any] = {
        "seed": seed, "healthy_alerts": [a.rule for a in result.alerts],
        "healthy_series_tripped": int(tripped(series, limits).sum()),
        "healthy_max": {"cusum": float(series["cusum"].max()),
                        "shift_ratio": float(series["shift_ratio"].max()),
                        "coverage_min": float(series["coverage"].min())},
        "shifts": {},
    }  # fmt: skip
    shift_at = pd.Timestamp(cut) + pd.Timedelta(days=SHIFT_AFTER + 1)
    for size in SHIFTS:
        path = folder / f"shift{size:g}.csv"
        inject_level_shift(future, at=shift_at, size=size).to_csv(path, index=False)
        result, series, stream = run_monitor(path, artifact, folder / f"mon-{size:g}")
        delays = []
        for _, points in stream.groupby("series_id"):
            after = points[points["ds"] >= shift_at].reset_index(drop=True)
            crossed = np.flatnonzero(after["cusum"].to_numpy() > limits["cusum"])
            if crossed.size:
                delays.append(int(crossed[0]) + 1)
        out["shifts"][f"{size:g}"] = {
            "alerts": sorted({a.rule for a in result.alerts}),
            "series_detected": int(tripped(series, limits).sum()),
            "series_cusum_crossed": len(delays),
            "median_delay_days": statistics.median(delays) if delays else None,
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--series", type=int, default=6)
    parser.add_argument("--periods", type=int, default=30, help="Days of actuals.")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        runs = [one_seed(seed, args.series, args.periods, Path(tmp))
                for seed in tqdm(range(1, args.seeds + 1), desc="seeds")]  # fmt: skip
    total = args.seeds * args.series
    summary = {
        "streams": args.seeds, "series": total, "periods": args.periods,
        "healthy_runs_with_an_alert": sum(bool(r["healthy_alerts"]) for r in runs),
        "healthy_series_tripped": sum(r["healthy_series_tripped"] for r in runs),
        "detection": {
            f"{size:g}": {
                "series_detected": sum(r["shifts"][f"{size:g}"]["series_detected"] for r in runs),
                "of": total,
                "runs_alerting": sum(bool(r["shifts"][f"{size:g}"]["alerts"]) for r in runs),
            }
            for size in SHIFTS
        },
    }  # fmt: skip
    save("monitor_forecast", {"summary": summary, "runs": runs})


if __name__ == "__main__":
    main()
