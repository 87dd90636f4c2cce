"""Benchmark: does churn monitoring stay quiet when nothing changed, and speak up when it matters?

    python -m benchmarks.monitor_churn [--model DIR] [--batch-rows 2000]

With the rules in churn/alerts.yaml, each batch judged alone (a fresh alert state):
- false alarms: 20 seeded batches from the training distribution; goal: at most 5% raise any
  alert (with labels, so every rule is in play);
- detection: injected covariate shifts of several sizes (`generate_customers(shift=...)`), 10
  batches each. The real change of ROC-AUC a shift causes is measured on 100,000 labelled
  customers, so it is the population's, not a batch's noise. Goal: every shift that moves the
  real ROC-AUC by 0.02 or more is flagged in every batch, without labels (drift and CBPE only),
  since labels arrive months late in churn;
- CBPE: estimated minus realised ROC-AUC on the 20 same-distribution batches and on the
  shifted ones.

Without --model it trains one on 7,043 generated customers (default configuration) in a
temporary store. Results go to benchmarks/results/monitor_churn.json.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import roc_auc_score
from tqdm import tqdm

from benchmarks.measure import save

SHIFTS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0)
POPULATION_ROWS = 100_000


def train_model(root: Path) -> Path:
    from churn.config import ChurnConfig
    from churn.data import write_customers
    from churn.train import run
    from common.settings import Settings

    data = write_customers(root / "telco.csv", 7043, seed=42, progress=False)
    return run(data, ChurnConfig(), Settings(artifacts_root=root / "artifacts", tracking=False))


def judge(predictor: Any, profile: Any, rules: list, frame: Any, with_labels: bool) -> dict:
    """One batch through the monitor's metrics and rules, as a first window (no history)."""
    from churn.data import labels
    from common.monitoring.alerts import AlertState, evaluate
    from common.monitoring.drift import detect_drift
    from common.monitoring.run import batch_metrics

    scores = np.asarray(predictor.model.predict_proba(frame), dtype=np.float64)
    y = labels(frame)
    drift = detect_drift(profile, frame, scores)
    measured = batch_metrics(profile, drift, scores, y)  # labels kept for the CBPE error
    # Without labels, the rules see what a run without labels would: no `performance.*`.
    metrics = {k: v for k, v in measured.items()
               if with_labels or not k.startswith("performance.")}  # fmt: skip
    alerts, _ = evaluate(rules, metrics, AlertState(), now=datetime.now(UTC))
    return {
        "alerts": sorted(a.rule for a in alerts),
        "roc_auc": measured["performance.roc_auc"],
        "estimated_roc_auc": measured["estimated.roc_auc"],
        "prediction_psi": metrics["drift.prediction_psi"],
        "estimated_roc_auc_drop": metrics["estimated.roc_auc_drop"],
        "share_drifted": metrics["drift.share_drifted"],
    }


def flagged_share(batches: list[dict]) -> float:
    return sum(bool(b["alerts"]) for b in batches) / len(batches)


def median(batches: list[dict], key: str) -> float:
    return statistics.median(b[key] for b in batches)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="Artifact directory (default: train one).")
    parser.add_argument("--batch-rows", type=int, default=2000)
    args = parser.parse_args()

    from churn.data import generate_customers, labels
    from churn.monitor import DEFAULT_RULES
    from churn.serve import ChurnPredictor
    from common.monitoring.alerts import AlertConfig
    from common.monitoring.profile import ReferenceProfile

    with tempfile.TemporaryDirectory() as tmp:
        model = args.model or train_model(Path(tmp))
        predictor = ChurnPredictor.from_artifact(model)
        profile = ReferenceProfile.load(model)
    rules = AlertConfig.load(DEFAULT_RULES).rules
    n = args.batch_rows

    same = [
        judge(predictor, profile, rules, generate_customers(n, seed=1000 + i), with_labels=True)
        for i in tqdm(range(20), desc="same distribution")
    ]
    errors = [b["estimated_roc_auc"] - b["roc_auc"] for b in same]

    def population_auc(shift: float) -> float:
        frame = generate_customers(POPULATION_ROWS, seed=7, shift=shift)
        return float(roc_auc_score(labels(frame), predictor.model.predict_proba(frame)))

    base_auc = population_auc(0.0)
    detection = []
    for shift in tqdm(SHIFTS, desc="shifts"):
        batches = [
            judge(predictor, profile, rules,
                  generate_customers(n, seed=2000 + i, shift=shift), with_labels=False)
            for i in range(10)
        ]  # fmt: skip
        labelled = [
            judge(predictor, profile, rules,
                  generate_customers(n, seed=2000 + i, shift=shift), with_labels=True)
            for i in range(10)
        ]  # fmt: skip
        auc_change = population_auc(shift) - base_auc
        detection.append(
            {
                "shift": shift,
                "real_roc_auc_change": round(auc_change, 4),
                "flagged_without_labels": flagged_share(batches),
                "flagged_with_labels": flagged_share(labelled),
                "median_prediction_psi": round(median(batches, "prediction_psi"), 4),
                "min_estimated_roc_auc_drop": round(
                    min(b["estimated_roc_auc_drop"] for b in batches), 4
                ),
                "cbpe_error_mean": round(
                    statistics.mean(b["estimated_roc_auc"] - b["roc_auc"] for b in batches), 4
                ),
                "alerts_seen": sorted({a for b in batches for a in b["alerts"]}),
            }
        )

    must_flag = [d for d in detection if abs(d["real_roc_auc_change"]) >= 0.02]
    results = {
        "model": str(args.model) if args.model else f"trained here ({predictor.model.family})",
        "batch_rows": n,
        "false_alarms": {
            "batches": len(same),
            "with_any_alert": sum(bool(b["alerts"]) for b in same),
            "rate": sum(bool(b["alerts"]) for b in same) / len(same),
            "alerts_seen": sorted({a for b in same for a in b["alerts"]}),
            "max_prediction_psi": round(max(b["prediction_psi"] for b in same), 4),
            "max_estimated_roc_auc_drop": round(max(b["estimated_roc_auc_drop"] for b in same), 4),
        },
        "detection": detection,
        "cbpe_same_distribution": {
            "mean_error": round(statistics.mean(errors), 4),
            "mean_abs_error": round(statistics.mean(abs(e) for e in errors), 4),
            "max_abs_error": round(max(abs(e) for e in errors), 4),
            "realised_roc_auc_sd": round(statistics.stdev(b["roc_auc"] for b in same), 4),
        },
        "population_roc_auc": round(base_auc, 4),
        "goals": {
            "false_alarm_rate_max": 0.05,
            "false_alarm_rate_met": sum(bool(b["alerts"]) for b in same) / len(same) <= 0.05,
            "every_shift_moving_auc_by_0.02_flagged": all(
                d["flagged_without_labels"] == 1.0 for d in must_flag
            ),
        },
    }
    save("monitor_churn", results)


if __name__ == "__main__":
    main()
