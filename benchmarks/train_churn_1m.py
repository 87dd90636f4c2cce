"""Benchmark: train the churn model on 1,000,000 synthetic customers (goal: peak RSS <= 4 GB).

Generates the file in chunks (timed separately), then runs `python -m churn train` on it as a
user would and records wall time and the training process's peak resident memory.

    python -m benchmarks.train_churn_1m [--rows 1000000] [--trials 12]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from benchmarks.measure import measure, save

GOAL_MB = 4096.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--trials", type=int, default=None, help="default: the config's")
    args = parser.parse_args()
    py = sys.executable
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "telco_1m.csv"
        env = {"MLP_ARTIFACTS_ROOT": str(Path(tmp) / "artifacts")}
        generate = measure(
            [py, "-m", "churn", "data", "--rows", str(args.rows), "--out", str(data)]
        )
        train_cmd = [py, "-m", "churn", "train", "--data", str(data)]
        if args.trials:
            train_cmd += ["--trials", str(args.trials)]
        train = measure(train_cmd, env=env)
        if train.returncode != 0:
            print("training failed", file=sys.stderr)
            return 1
        # `train` prints the artifact directory and nothing else on stdout: that is its contract.
        manifest = json.loads((Path(train.stdout) / "manifest.json").read_text())
    save(
        "train_churn_1m",
        {
            "rows": args.rows,
            "goal_peak_rss_mb": GOAL_MB,
            "passed": train.peak_rss_mb <= GOAL_MB,
            "generate": generate,
            "train": train,
            "winner": manifest["extra"]["family"],
            "test_roc_auc": manifest["metrics"]["test"]["roc_auc"],
            "n_trials": manifest["config"]["n_trials"],
        },
    )
    return 0 if train.peak_rss_mb <= GOAL_MB else 1


if __name__ == "__main__":
    sys.exit(main())
