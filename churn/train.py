"""Fitting the churn model: baseline and boosted candidates, selection, calibration, threshold.

`fit` is the pure core (frames in, a `ChurnModel` and a record of the search out); `run` is the
edge that reads the file, evaluates on the test split, writes the artifact and tracks the run.

Why the splits are what they are: the validation split early-stops boosting and picks the winner
by PR-AUC (the metric that cares about the minority class); the calibration split is held out
from both so the calibrator and the threshold are fitted on scores the model never trained on;
the test split is used once, for the numbers we report.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score

from churn.calibration import Calibrator, choose_threshold
from churn.config import ChurnConfig
from churn.data import labels, load_customers, split
from churn.evaluate import evaluate, write_model_card
from churn.features import ChurnFeatures
from churn.model import MODEL_DIR, ChurnModel, LogisticScorer
from churn.monitor import reference_profile
from churn.schema import TELCO_SCHEMA
from churn.search import Candidate, search_lightgbm, search_xgboost
from churn.serve import ChurnPrediction, CustomerRecord
from common.artifacts import ArtifactStore, package_versions
from common.etl import fingerprint
from common.settings import Settings
from common.tracking import Tracker

logger = logging.getLogger(__name__)
MODEL_LIBRARIES = ["numpy", "pandas", "sklearn", "xgboost", "lightgbm", "optuna"]


def fit_logistic(X: np.ndarray, y: np.ndarray) -> LogisticScorer:
    """The baseline: class-weighted logistic regression on standardised features."""
    mean, scale = X.mean(axis=0), X.std(axis=0)
    scale[scale == 0] = 1.0  # a constant column carries nothing; keep it from dividing by zero
    lr = LogisticRegression(C=1.0, class_weight="balanced", max_iter=2000)
    lr.fit((X - mean) / scale, y)
    return LogisticScorer(mean, scale, lr.coef_[0], float(lr.intercept_[0]))


def fit(parts: dict[str, pd.DataFrame], config: ChurnConfig) -> tuple[ChurnModel, list[Candidate]]:
    """Fit every family, keep the best on validation PR-AUC, calibrate it, pick the threshold."""
    features = ChurnFeatures(engineered=config.engineered_features).fit(parts["train"])
    X, y = features.transform(parts["train"]), labels(parts["train"])
    Xv, yv = features.transform(parts["val"]), labels(parts["val"])
    candidates = []
    for family in config.families:
        logger.info("fitting %s on %d rows", family, len(X))
        if family == "logistic":
            scorer = fit_logistic(X, y)
            score = average_precision_score(yv, scorer.margin(Xv))
            candidates.append(Candidate("logistic", scorer, score))
        elif family == "xgboost":
            candidates.append(search_xgboost(X, y, Xv, yv, config))
        else:
            candidates.append(search_lightgbm(X, y, Xv, yv, config))
        logger.info("%s: validation PR-AUC %.4f", family, candidates[-1].val_pr_auc)
    winner = max(candidates, key=lambda c: c.val_pr_auc)

    Xc, yc = features.transform(parts["calibration"]), labels(parts["calibration"])
    # A second opinion no search has seen: the boosted families' validation score is the best of
    # n_trials tries on that split, so it flatters them next to the single-fit baseline.
    for candidate in candidates:
        candidate.holdout_pr_auc = average_precision_score(yc, candidate.scorer.margin(Xc))
    calibrator = Calibrator(config.calibration).fit(winner.scorer.margin(Xc), yc)
    threshold = choose_threshold(
        yc,
        calibrator.transform(winner.scorer.margin(Xc)),
        cost_missed=config.cost_missed_churner,
        cost_offer=config.cost_retention_offer,
    )
    model = ChurnModel(features, winner.family, winner.scorer, calibrator, threshold)
    return model, candidates


def run(data: Path, config: ChurnConfig, settings: Settings) -> Path:
    """Train on a Telco CSV/Parquet file and publish an artifact; returns its directory.

    A failure anywhere before publishing leaves the store exactly as it was.
    """
    logger.info("loading %s", data)
    df = load_customers(data, require_label=True)
    data_fingerprint = fingerprint(df)
    parts = split(df, config)
    model, candidates = fit(parts, config)
    store = ArtifactStore(settings.artifacts_root, "churn")
    with store.create() as draft:
        model.save(draft.path / MODEL_DIR)
        logger.info("evaluating %s on %d test rows", model.family, len(parts["test"]))
        test_metrics = evaluate(model, parts["test"], config, draft.path)
        reference_profile(model, parts["train"], parts["test"], config.seed).save(draft.path)
        metrics = {
            "validation": {c.family: {"pr_auc": c.val_pr_auc} for c in candidates},
            "calibration": {c.family: {"pr_auc": c.holdout_pr_auc} for c in candidates},
            "test": test_metrics,
        }
        rows = {name: len(part) for name, part in parts.items()}
        candidate_records = [
            {"family": c.family, "val_pr_auc": c.val_pr_auc,
             "calibration_pr_auc": c.holdout_pr_auc, "params": c.params}
            for c in candidates
        ]  # fmt: skip
        draft.info.update(
            data_fingerprint=data_fingerprint,
            seed=config.seed,
            config=config.model_dump(mode="json"),
            package_versions=package_versions(MODEL_LIBRARIES),
            input_schema=CustomerRecord.model_json_schema(),
            output_schema=ChurnPrediction.model_json_schema(),
            metrics=metrics,
            extra={
                "family": model.family,
                "threshold": model.threshold,
                "candidates": candidate_records,
                "rows": rows,
                "data_path": str(Path(data).resolve()),
                "data_schema": TELCO_SCHEMA.to_dict(),
            },
        )
        write_model_card(
            draft.path, draft.version, model, metrics, config,
            rows=rows, candidates=candidate_records, data_fingerprint=data_fingerprint,
        )  # fmt: skip
    assert draft.final_path is not None
    _track(draft.final_path, draft.version, config, metrics, settings)
    return draft.final_path


def _track(
    path: Path, version: str, config: ChurnConfig, metrics: dict[str, Any], settings: Settings
) -> None:
    """Log the published run to MLflow; any failure only warns (see common.tracking)."""
    with Tracker(
        settings.resolved_tracking_uri(),
        "churn",
        enabled=settings.tracking,
        artifact_location=settings.tracking_artifact_location(),
        run_name=version,
    ) as tracker:
        tracker.set_tags({"artifact_version": version, "artifact_dir": str(path)})
        tracker.log_params(config.model_dump(mode="json"))
        tracker.log_metrics(metrics)
        tracker.log_artifacts(path, "artifact")
