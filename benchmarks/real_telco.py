"""Benchmark: the churn pipeline on IBM's real Telco file (expected test ROC-AUC ≈ 0.84-0.85).

Checks the README's claim on the real data rather than on the synthetic twin: trains with the
default configuration and reports the test metrics and the winning family. Above 0.90 would mean
the pipeline leaks the label; well below 0.82 that something is broken.

    python -m benchmarks.real_telco                  # downloads IBM's file (needs network)
    python -m benchmarks.real_telco --data PATH.csv  # or uses a copy you already have
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from benchmarks.measure import measure, save
from churn.data import download_telco
from common.etl import fingerprint, read_table

EXPECTED = (0.82, 0.90)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, help="IBM's CSV; downloaded when not given")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = args.data or download_telco(Path(tmp) / "telco.csv")
        env = {"MLP_ARTIFACTS_ROOT": str(Path(tmp) / "artifacts"), "MLP_TRACKING": "false"}
        run = measure([sys.executable, "-m", "churn", "train", "--data", str(data)], env=env)
        if run.returncode != 0:
            print("training failed", file=sys.stderr)
            return 1
        manifest = json.loads((Path(run.stdout) / "manifest.json").read_text())
    test = manifest["metrics"]["test"]
    passed = EXPECTED[0] <= test["roc_auc"] <= EXPECTED[1]
    save(
        "real_telco",
        {
            "data_fingerprint": fingerprint(read_table(data)),
            "rows": sum(manifest["extra"]["rows"].values()),
            "expected_roc_auc": EXPECTED,
            "passed": passed,
            "winner": manifest["extra"]["family"],
            "test": {k: test[k] for k in ("roc_auc", "pr_auc", "brier", "threshold", "recall")},
            "candidates": manifest["extra"]["candidates"],
            "train": run,
        },
    )
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
