"""How well a binary classifier is doing: measured when labels have arrived, estimated when not.

Realised: ROC-AUC, PR-AUC, expected calibration error, precision and recall at the threshold.

Estimated (confidence-based performance estimation, the approach NannyML calls CBPE): if the
probabilities are calibrated, a row scored p is a positive with probability p, so the expected
confusion matrix at any threshold is a sum of probabilities, and so is the expected ROC curve.
This needs no labels, and it follows covariate shift (a new mix of customers), but it assumes
no concept drift: if the same customer now churns for different reasons, the probabilities are
no longer calibrated and the estimate is wrong without knowing it. Labels, when they come, are
the check.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score

#: Metrics where a drop means trouble, and metrics where a rise does.
HIGHER_IS_BETTER = ("roc_auc", "pr_auc", "precision", "recall")
LOWER_IS_BETTER = ("calibration_error",)


def calibration_error(y: np.ndarray, p: np.ndarray, bins: int = 10) -> float:
    """Expected calibration error: |observed rate - mean probability| over equal-width bins,
    weighted by the share of rows in each."""
    which = np.minimum((np.asarray(p) * bins).astype(int), bins - 1)
    total = 0.0
    for b in np.unique(which):
        in_bin = which == b
        total += in_bin.mean() * abs(y[in_bin].mean() - p[in_bin].mean())
    return float(total)


def realised(y: np.ndarray, p: np.ndarray, threshold: float) -> dict[str, float]:
    """Measured performance; needs both classes among the labels."""
    y = np.asarray(y).astype(int)
    p = np.asarray(p, dtype=np.float64)
    if len(np.unique(y)) < 2:
        raise ValueError("the labels hold one class only: ROC-AUC and PR-AUC are undefined")
    flagged = p >= threshold
    tp = float((flagged & (y == 1)).sum())
    return {
        "roc_auc": float(roc_auc_score(y, p)),
        "pr_auc": float(average_precision_score(y, p)),
        "calibration_error": calibration_error(y, p),
        "precision": tp / max(flagged.sum(), 1),
        "recall": tp / max((y == 1).sum(), 1),
        "base_rate": float(y.mean()),
    }


def estimated(p: np.ndarray, threshold: float) -> dict[str, float]:
    """CBPE: the performance calibrated probabilities `p` imply, without labels."""
    p = np.asarray(p, dtype=np.float64)
    order = np.argsort(-p, kind="stable")
    positives, negatives = p.sum(), (1 - p).sum()
    # The expected ROC curve: walking down the ranking, each row adds p expected true positives
    # and 1 - p expected false positives. Rows with equal p lie on one straight segment, so ties
    # need no special handling.
    tpr = np.concatenate([[0.0], np.cumsum(p[order]) / max(positives, 1e-12)])
    fpr = np.concatenate([[0.0], np.cumsum(1 - p[order]) / max(negatives, 1e-12)])
    flagged = p >= threshold
    tp, fp = p[flagged].sum(), (1 - p[flagged]).sum()
    return {
        "roc_auc": float(np.trapezoid(tpr, fpr)),
        "precision": float(tp / max(tp + fp, 1e-12)),
        "recall": float(tp / max(positives, 1e-12)),
        "base_rate": float(p.mean()),
    }


def changes(current: Mapping[str, float], reference: Mapping[str, float]) -> dict[str, float]:
    """`<metric>_drop` (reference minus current) for metrics where higher is better, and
    `<metric>_increase` for those where lower is; the numbers alert rules compare."""
    out = {}
    for name in HIGHER_IS_BETTER:
        if name in current and name in reference:
            out[f"{name}_drop"] = reference[name] - current[name]
    for name in LOWER_IS_BETTER:
        if name in current and name in reference:
            out[f"{name}_increase"] = current[name] - reference[name]
    return out
