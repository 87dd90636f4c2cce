"""One monitoring run over a batch of new data, for any project: drift, performance, a report,
alerts. The project's `monitor` module loads its model and data and calls `monitor_batch`.

Layout of a project's monitoring folder (`MLP_MONITORING_ROOT/<project>/`):

    runs/<run id>/report.json, report.html     one folder per run
    alerts.jsonl                               every alert sent (the JSON-lines sink)
    state.json                                 open alerts and streaks, for the next run

Exit status for cron and CI (`exit_code`): 0 when no critical alert is open, 3 when one is,
1 when an alert could not be delivered (the state is then left as it was, so the next run sends
the same alerts again). 2 stays what it is for every command: a usage or input error.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from common.monitoring import performance
from common.monitoring.alerts import Alert, AlertConfig, AlertState, Rule, evaluate, open_alerts
from common.monitoring.drift import DriftResult, detect_drift
from common.monitoring.profile import ReferenceProfile
from common.monitoring.report import write_report
from common.monitoring.sinks import Sink, build_sinks, deliver

EXIT_OK, EXIT_DELIVERY_FAILED, EXIT_CRITICAL = 0, 1, 3


@dataclass
class MonitorResult:
    run_id: str
    created_at: datetime
    rows: int
    drift: DriftResult
    metrics: dict[str, float]
    alerts: list[Alert]  # sent by this run: newly firing and resolved
    open: list[Rule]  # open after this run
    failures: list[str]  # sinks that failed
    report_dir: Path

    @property
    def exit_code(self) -> int:
        if self.failures:
            return EXIT_DELIVERY_FAILED
        return EXIT_CRITICAL if any(r.severity == "critical" for r in self.open) else EXIT_OK


def batch_metrics(
    profile: ReferenceProfile,
    drift: DriftResult,
    scores: np.ndarray | None,
    labels: np.ndarray | None,
) -> dict[str, float]:
    """Every number a rule can name: `drift.*`, `performance.*` (labels), `estimated.*` (CBPE,
    for probabilities with a threshold), with their changes against the reference
    (`performance.roc_auc_drop`, `estimated.roc_auc_drop`, ...)."""
    metrics = {"data.rows": float(drift.rows)}
    metrics |= drift.metrics()
    reference = profile.performance
    if scores is not None and profile.threshold is not None:
        estimate = performance.estimated(scores, profile.threshold)
        metrics |= {f"estimated.{k}": v for k, v in estimate.items()}
        # Against the estimate on the reference data, not its realised metrics: compared like
        # with like, any bias of the estimator cancels.
        drops = performance.changes(estimate, profile.estimated)
        metrics |= {f"estimated.{k}": v for k, v in drops.items()}
        if labels is not None:
            real = performance.realised(labels, scores, profile.threshold)
            metrics |= {f"performance.{k}": v for k, v in real.items()}
            metrics |= {
                f"performance.{k}": v for k, v in performance.changes(real, reference).items()
            }
            # How far CBPE was off on this batch: the check on its no-concept-drift assumption.
            metrics["performance.roc_auc_estimate_error"] = estimate["roc_auc"] - real["roc_auc"]
    return metrics


def monitor_batch(
    *,
    profile: ReferenceProfile,
    columns: Mapping[str, Any],
    scores: np.ndarray | None,
    labels: np.ndarray | None,
    config: AlertConfig,
    folder: Path,
    context: Mapping[str, str],
    now: datetime | None = None,
    sinks: list[Sink] | None = None,
    extra_metrics: Mapping[str, float] | None = None,
) -> MonitorResult:
    """Compare a batch with the reference, write the report, and send the alerts it raises.

    `extra_metrics` are the project's own numbers for rules to name (e.g. vision's
    `confidence.low_rate`), added to the generic ones."""
    now = now or datetime.now(UTC)
    run_id = f"{now:%Y%m%dT%H%M%S.%f}-{uuid.uuid4().hex[:4]}"  # sorts in time order
    report_dir = folder / "runs" / run_id
    drift = detect_drift(profile, columns, scores)
    metrics = batch_metrics(profile, drift, scores, labels) | dict(extra_metrics or {})

    state_path = folder / "state.json"
    state = AlertState.load(state_path)
    full_context = {**context, "run": run_id, "report": str(report_dir / "report.html")}
    alerts, next_state = evaluate(config.rules, metrics, state, now=now, context=full_context)
    failures = deliver(alerts, sinks if sinks is not None else build_sinks(config.sinks, folder))
    if not failures:  # at least once: keep the old state so the next run sends these again
        next_state.save(state_path)
    still_open = open_alerts(config.rules, next_state)
    summary = {
        "run_id": run_id,
        "created_at": now.isoformat(timespec="microseconds"),
        "context": dict(context),
        "rows": int(metrics["data.rows"]),
        "metrics": metrics,
        "drift": drift.to_dict(),
        "alerts": [a.to_dict() for a in alerts],
        "open_alerts": [r.name for r in still_open],
        "critical_open": [r.name for r in still_open if r.severity == "critical"],
        "delivery_failures": failures,
    }
    write_report(report_dir, summary, drift, profile, scores)
    return MonitorResult(run_id, now, summary["rows"], drift, metrics, alerts, still_open,
                         failures, report_dir)  # fmt: skip


def load_runs(folder: Path) -> list[dict[str, Any]]:
    """Every run's `report.json` in a monitoring folder, oldest first (for the dashboards)."""
    reports = sorted((folder / "runs").glob("*/report.json"))
    return [json.loads(p.read_text()) for p in reports]
