"""Benchmark: `make train-churn` end to end on the default data (goal: at most 60 s).

Each repetition starts from nothing: no data file, no artifacts, a fresh MLflow database, so the
time includes generating the 7,043 customers, importing everything, the search, calibration,
evaluation, plots, the model card and tracking, exactly what a newcomer waits for.

    python -m benchmarks.train_churn [--repeat 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

from benchmarks.measure import measure, save

ROOT = Path(__file__).resolve().parents[1]
GOAL_S = 60.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    runs = []
    for i in range(args.repeat):
        with tempfile.TemporaryDirectory() as tmp:
            data = Path(tmp) / "telco.csv"
            env = {"MLP_ARTIFACTS_ROOT": str(Path(tmp) / "artifacts")}
            run = measure(["make", "-s", "train-churn", f"CHURN_DATA={data}"], env=env, cwd=ROOT)
            print(
                f"run {i + 1}: {run.wall_s:.1f} s, peak RSS {run.peak_rss_mb:.0f} MB",
                file=sys.stderr,
            )
            if run.returncode != 0:
                print("make train-churn failed", file=sys.stderr)
                return 1
            runs.append(run)
    median = statistics.median(r.wall_s for r in runs)
    save("train_churn", {"goal_s": GOAL_S, "median_wall_s": median, "passed": median <= GOAL_S,
                         "runs": runs})  # fmt: skip
    return 0 if median <= GOAL_S else 1


if __name__ == "__main__":
    sys.exit(main())
