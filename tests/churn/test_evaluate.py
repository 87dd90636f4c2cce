"""Evaluation: metrics by hand, the plots and model card, and re-evaluating a saved model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from churn.config import ChurnConfig
from churn.evaluate import evaluate_artifact, metrics_at
from common.artifacts import read_manifest
from common.errors import UserError
from common.settings import Settings

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_metrics_at_threshold_by_hand() -> None:
    y = np.array([1, 1, 0, 0, 0])
    p = np.array([0.9, 0.2, 0.6, 0.1, 0.05])
    config = ChurnConfig(cost_missed_churner=100, cost_retention_offer=10)
    m = metrics_at(y, p, 0.5, config)
    assert m["confusion"] == {"tn": 2, "fp": 1, "fn": 1, "tp": 1}
    assert (m["precision"], m["recall"]) == (0.5, 0.5)
    assert m["cost"] == 100 + 2 * 10
    assert m["roc_auc"] == pytest.approx(5 / 6)  # 5 of 6 churner/stayer pairs ranked right
    assert m["base_rate"] == pytest.approx(0.4)


def test_artifact_holds_real_plots_and_a_model_card(trained_artifact: Path) -> None:
    for plot in ["roc", "pr", "calibration", "lift", "cost", "importance"]:
        data = (trained_artifact / "plots" / f"{plot}.png").read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 10_000, plot
    card = (trained_artifact / "model_card.md").read_text()
    manifest = read_manifest(trained_artifact)
    assert f"{manifest.metric('test.roc_auc'):.4f}" in card
    assert "Intended use" in card and "Caveats" in card


def test_per_customer_contributions_are_saved(trained_artifact: Path) -> None:
    import pandas as pd

    shap = pd.read_csv(trained_artifact / "explanations" / "test_contributions.csv")
    assert {"customerID", "Contract", "tenure", "bias"} <= set(shap.columns)
    importance = pd.read_csv(trained_artifact / "explanations" / "importance.csv")
    assert importance["mean_abs_contribution"].is_monotonic_decreasing


def test_re_evaluation_rebuilds_the_same_test_split(trained_artifact: Path, tmp_path: Path) -> None:
    import json

    settings = Settings(artifacts_root=tmp_path, tracking=False)
    out = evaluate_artifact(trained_artifact, None, settings)
    again = json.loads((out / "metrics.json").read_text())
    manifest = read_manifest(trained_artifact)
    assert again["roc_auc"] == pytest.approx(manifest.metric("test.roc_auc"), abs=1e-12)
    assert again["n_rows"] == manifest.extra["rows"]["test"]
    assert (out / "plots" / "roc.png").exists()


def test_re_evaluation_on_a_holdout_file(trained_artifact: Path, tmp_path: Path) -> None:
    import json

    from churn.data import write_customers

    holdout = write_customers(tmp_path / "holdout.csv", 2000, seed=99, progress=False)
    out = evaluate_artifact(trained_artifact, holdout, Settings(artifacts_root=tmp_path))
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n_rows"] == 2000 and 0.75 < metrics["roc_auc"] < 0.92


def test_re_evaluation_refuses_changed_training_data(telco_frame, tmp_path: Path) -> None:
    """The test split cannot be rebuilt from a file that changed after training."""
    from churn.train import run

    data = tmp_path / "telco.csv"
    telco_frame.head(3000).to_csv(data, index=False)
    settings = Settings(artifacts_root=tmp_path / "artifacts", tracking=False)
    path = run(data, ChurnConfig(n_trials=1, families=("logistic",)), settings)
    telco_frame.head(2999).to_csv(data, index=False)  # one customer fewer
    with pytest.raises(UserError, match=r"changed since model .* was trained"):
        evaluate_artifact(path, None, settings)


def test_re_evaluation_refuses_a_single_class_holdout(
    trained_artifact: Path, telco_frame, tmp_path: Path
) -> None:
    holdout = tmp_path / "stayers.csv"
    telco_frame[telco_frame["Churn"] == "No"].head(300).to_csv(holdout, index=False)
    with pytest.raises(UserError, match="only one class \\('No'"):
        evaluate_artifact(trained_artifact, holdout, Settings(artifacts_root=tmp_path))
