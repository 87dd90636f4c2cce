"""The churn monitor: the profile training stores, `python -m churn monitor` on a batch from the
training distribution (quiet) and on a shifted one (alerts, exit status 3), dedupe across runs,
and the running API's drift gauges."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from churn.__main__ import app
from churn.data import write_customers
from churn.monitor import WATCHED
from churn.serve import ChurnPredictor
from common.artifacts import ArtifactStore, read_manifest
from common.monitoring.profile import ReferenceProfile
from common.serving.app import create_app
from common.settings import ServeSettings
from tests.common.test_common_serving import wait_ready

runner = CliRunner()


def invoke(*args: object):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture
def published(settings, trained_artifact: Path) -> Path:
    store = ArtifactStore(settings.artifacts_root, "churn")
    target = shutil.copytree(trained_artifact, store.project_dir / trained_artifact.name)
    store.set_alias("latest", trained_artifact.name)
    return Path(target)


@pytest.fixture(scope="module")
def batches(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("batches")
    return {
        "same": write_customers(root / "same.csv", 2000, seed=101, progress=False),
        "shifted": write_customers(root / "shifted.csv", 2000, seed=102, shift=1.0, progress=False),
    }


def test_training_stores_a_reference_profile(trained_artifact: Path) -> None:
    profile = ReferenceProfile.load(trained_artifact)
    assert profile is not None
    assert set(profile.features) == set(WATCHED) and "customerID" not in profile.features
    assert profile.features["Contract"].kind == "category"
    assert profile.features["tenure"].kind == "numeric"
    assert profile.score_name == "churn_probability" and profile.score_histogram is not None
    manifest = read_manifest(trained_artifact)
    # The yardstick is the test split's: the same ROC-AUC the manifest reports.
    assert profile.performance["roc_auc"] == pytest.approx(manifest.metric("test.roc_auc"))
    assert profile.threshold == pytest.approx(manifest.extra["threshold"])
    assert set(profile.estimated) >= {"roc_auc", "precision", "recall"}


def test_monitor_is_quiet_on_the_training_distribution(settings, published, batches) -> None:
    result = invoke("monitor", "--current", batches["same"], "--labels")
    assert result.exit_code == 0, result.output
    report = Path(result.stdout.strip())
    assert report.name == "report.html" and report.exists()
    summary = json.loads((report.parent / "report.json").read_text())
    assert summary["alerts"] == [] and summary["drift"]["drifted"] == []
    assert "performance.roc_auc" in summary["metrics"]
    assert not (settings.monitoring_root / "churn" / "alerts.jsonl").exists()


def test_monitor_alerts_on_a_shift_then_dedupes_then_resolves(settings, published, batches) -> None:
    first = invoke("monitor", "--current", batches["shifted"])
    assert first.exit_code == 3, first.output  # a critical alert is open
    history = settings.monitoring_root / "churn" / "alerts.jsonl"
    sent = [json.loads(line) for line in history.read_text().splitlines()]
    assert {"prediction-drift-major", "feature-drift-major"} <= {a["rule"] for a in sent}
    assert all(a["status"] == "firing" and a["context"]["project"] == "churn" for a in sent)
    html = Path(first.stdout.strip()).read_text()
    assert "prediction-drift-major" in html and "data:image/png;base64" in html

    again = invoke("monitor", "--current", batches["shifted"])
    assert again.exit_code == 3  # still open, so still failing for cron...
    assert len(history.read_text().splitlines()) == len(sent)  # ...but not sent twice

    recovered = invoke("monitor", "--current", batches["same"])
    assert recovered.exit_code == 0
    resolved = [json.loads(line) for line in history.read_text().splitlines()][len(sent) :]
    assert {a["rule"] for a in resolved} == {a["rule"] for a in sent}
    assert all(a["status"] == "resolved" for a in resolved)


def test_monitor_errors_name_the_problem(settings, published, batches, tmp_path) -> None:
    unlabelled = tmp_path / "unlabelled.csv"
    unlabelled.write_text(batches["same"].read_text().replace(",Churn", ",Other", 1))
    result = invoke("monitor", "--current", unlabelled, "--labels")
    assert result.exit_code == 2 and "Churn" in result.output
    bad_rules = tmp_path / "rules.yaml"
    bad_rules.write_text("rules:\n  - name: x\n    metric: drift.max_psi\n")
    result = invoke("monitor", "--current", batches["same"], "--rules", bad_rules)
    assert result.exit_code == 2 and "above" in result.output and "rules.yaml" in result.output


def test_monitor_refuses_an_artifact_with_its_profile_gone(settings, published, batches) -> None:
    (published / "monitoring" / "reference.json").unlink()
    result = invoke("monitor", "--current", batches["same"], "--model", published)
    assert result.exit_code == 2
    assert "monitoring/reference.json is missing" in result.output


def test_the_api_exposes_drift_gauges_over_its_recent_requests(
    trained_artifact: Path, batches
) -> None:
    settings = ServeSettings(model_dir=trained_artifact, drift_min_rows=100)
    with TestClient(create_app(ChurnPredictor, settings)) as client:
        wait_ready(client)
        before = client.get("/metrics").text
        assert "model_drift_window_rows 0.0" in before and "model_feature_psi" not in before
        customers = pd.read_csv(batches["shifted"], dtype=str).drop(columns="Churn").head(300)
        body = customers.to_csv(index=False)
        answer = client.post("/invocations", content=body, headers={"Content-Type": "text/csv"})
        assert answer.status_code == 200, answer.text
        metrics = client.get("/metrics").text
    assert "model_drift_window_rows 300.0" in metrics
    psi = {
        line.split('"')[1]: float(line.split()[-1])
        for line in metrics.splitlines()
        if line.startswith("model_feature_psi{")
    }
    assert set(psi) == set(WATCHED)
    assert psi["Contract"] > 0.1 and psi["gender"] < 0.1  # the shift moved contracts, not gender
    assert "model_prediction_psi" in metrics and "model_drifted_features_share" in metrics
