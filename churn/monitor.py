"""Monitoring the churn model: its reference profile at training time, and a monitoring run over a
new batch of customers (`python -m churn monitor --current new.csv [--labels]`).

The features watched are the raw Telco columns a request carries, the ones a data owner can
act on ("we signed up more fiber customers"), not the one-hot matrix. The score is the
calibrated churn probability. The profile's score distribution and reference performance come
from the held-out test split: training-split scores of a boosted model are more confident than
anything it will see in service, so they would make every new batch look drifted.

Rules live in `churn/alerts.yaml` (or `--rules FILE`); the generic parts are common.monitoring.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from churn.data import labels, load_customers, require_both_classes
from churn.model import ChurnModel
from churn.schema import KEY, LABEL, TELCO_SCHEMA
from churn.serve import ChurnPredictor
from common.artifacts import ArtifactStore
from common.errors import ArtifactError
from common.monitoring import performance
from common.monitoring.alerts import AlertConfig
from common.monitoring.profile import ReferenceProfile, build_profile
from common.monitoring.run import MonitorResult, monitor_batch
from common.monitoring.sinks import Sink
from common.settings import Settings

DEFAULT_RULES = Path(__file__).with_name("alerts.yaml")
#: Every input column but the ID, as numeric or categorical.
WATCHED: dict[str, Literal["numeric", "category"]] = {
    c.name: "category" if c.kind == "category" else "numeric"
    for c in TELCO_SCHEMA.columns
    if c.name not in (KEY, LABEL)
}
REFERENCE_METRICS = ("roc_auc", "pr_auc", "precision", "recall", "base_rate")


def reference_profile(
    model: ChurnModel, train: pd.DataFrame, test: pd.DataFrame, seed: int = 0
) -> ReferenceProfile:
    """The profile stored in a churn artifact: training features, held-out scores and metrics."""
    y, p = labels(test), model.predict_proba(test)
    measured = performance.realised(y, p, model.threshold)
    return build_profile(
        train,
        WATCHED,
        scores=p,
        score_name="churn_probability",
        performance={k: measured[k] for k in (*REFERENCE_METRICS, "calibration_error")},
        estimated=performance.estimated(p, model.threshold),
        threshold=model.threshold,
        seed=seed,
    )


def monitor(
    current: Path,
    *,
    with_labels: bool,
    settings: Settings,
    model: Path | None = None,
    rules: Path | None = None,
    sinks: list[Sink] | None = None,
    now: datetime | None = None,
) -> MonitorResult:
    """Score a batch with the served model, compare it with the reference, raise alerts."""
    store = ArtifactStore(settings.artifacts_root, "churn")
    predictor = ChurnPredictor.from_artifact(store.resolve_serving(model))
    profile = ReferenceProfile.load(predictor.path)
    if profile is None:
        raise ArtifactError(
            f"{predictor.path} has no reference profile (trained before monitoring existed): "
            "train again with `make train-churn`"
        )
    config = AlertConfig.load(rules or DEFAULT_RULES)
    frame = load_customers(current, require_label=with_labels)
    y = None
    if with_labels:
        require_both_classes(frame, str(current))
        y = labels(frame)
    scores = np.asarray(predictor.model.predict_proba(frame), dtype=np.float64)
    return monitor_batch(
        profile=profile,
        columns=frame,
        scores=scores,
        labels=y,
        config=config,
        folder=settings.monitoring_root / "churn",
        context={"project": "churn", "model": predictor.manifest.version, "data": str(current)},
        now=now,
        sinks=sinks,
    )
