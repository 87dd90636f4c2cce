"""Unit tests of common.tracking: flattening, a real sqlite-backed run, and failure isolation.

The MLflow runs share one sqlite database per module: creating it costs seconds (migrations).
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from common.tracking import Tracker, flatten

mlflow = pytest.importorskip("mlflow", reason="MLflow is a training-time extra")


class RecordingClient:
    """Stands in for MlflowClient: records calls, optionally fails them."""

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.calls: list[tuple[str, tuple, dict]] = []

    def __getattr__(self, name: str) -> Any:
        def call(*args: Any, **kwargs: Any) -> None:
            self.calls.append((name, args, kwargs))
            if self.fail:
                raise RuntimeError(f"{name} failed")

        return call


def tracker_with(client: RecordingClient) -> Tracker:
    tracker = Tracker("fake://", "exp")
    tracker._client = client
    tracker.run_id = "run-1"
    return tracker


@pytest.fixture(scope="module")
def tracking_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"


# -- flatten -------------------------------------------------------------------------------------


def test_flatten_nested_mappings() -> None:
    nested = {"test": {"auc": 0.8, "cm": {"tp": 3}}, "seed": 7, "empty": {}, "list": [1, 2]}

    assert flatten(nested) == {"test.auc": 0.8, "test.cm.tp": 3, "seed": 7, "list": [1, 2]}
    assert flatten({"a": 1}, prefix="p.") == {"p.a": 1}
    assert flatten({}) == {}


# -- a real run ----------------------------------------------------------------------------------


def test_a_run_logs_everything_and_finishes(tracking_uri: str, tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    plots = tmp_path / "plots"
    plots.mkdir()
    (plots / "roc.csv").write_text("0,1\n")

    with Tracker(
        tracking_uri, "churn", artifact_location=tmp_path / "runs", run_name="first"
    ) as tracker:
        tracker.log_params({"model": "xgb", "search": {"n_trials": 2, "space": {"depth": 3}}})
        tracker.log_metrics(
            {"test": {"auc": 0.84, "brier": np.float64(0.1)}, "rows": 100, "ok": True, "why": "x"}
        )
        tracker.set_tags({"git_commit": "abc123"})
        tracker.log_artifacts(plots, "plots")

    assert tracker.enabled
    client = MlflowClient(tracking_uri=tracking_uri)
    run = client.get_run(tracker.run_id)
    assert run.info.status == "FINISHED"
    assert run.info.run_name == "first"
    assert run.data.params == {"model": "xgb", "search.n_trials": "2", "search.space.depth": "3"}
    # Numbers only: booleans and strings are not metrics.
    assert run.data.metrics == {"test.auc": 0.84, "test.brier": 0.1, "rows": 100.0}
    assert run.data.tags["git_commit"] == "abc123"
    assert [f.path for f in client.list_artifacts(tracker.run_id, "plots")] == ["plots/roc.csv"]
    experiment = client.get_experiment(run.info.experiment_id)
    assert experiment.name == "churn"
    assert experiment.artifact_location == (tmp_path / "runs").resolve().as_uri()


def test_an_exception_marks_the_run_failed_and_propagates(tracking_uri: str) -> None:
    from mlflow.tracking import MlflowClient

    with pytest.raises(ValueError, match="bad data"), Tracker(tracking_uri, "churn") as tracker:
        tracker.log_params({"a": 1})
        raise ValueError("bad data")

    run = MlflowClient(tracking_uri=tracking_uri).get_run(tracker.run_id)
    assert run.info.status == "FAILED"
    assert run.data.params == {"a": "1"}


# -- failures never reach the caller -------------------------------------------------------------


def test_an_unreachable_server_only_warns(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    uri = "http://127.0.0.1:9"

    with caplog.at_level(logging.WARNING, logger="common.tracking"), Tracker(uri, "x") as tracker:
        tracker.log_params({"a": 1})
        tracker.log_metrics({"auc": 0.5})
        tracker.set_tags({"k": "v"})
        tracker.log_artifacts(Path("."))

    assert not tracker.enabled
    assert tracker.run_id is None
    warnings = [r for r in caplog.records if r.name == "common.tracking"]
    assert len(warnings) == 1  # one warning, then every call is a no-op
    assert warnings[0].levelno == logging.WARNING
    assert "http://127.0.0.1:9 failed to start the run" in warnings[0].getMessage()
    assert "the run goes on untracked" in warnings[0].getMessage()


def test_a_bad_sqlite_location_only_warns(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("")  # a file where the database's folder should be

    uri = f"sqlite:///{not_a_dir}/sub/m.db"

    with caplog.at_level(logging.WARNING, logger="common.tracking"), Tracker(uri, "x") as tracker:
        tracker.log_metrics({"auc": 0.5})

    assert not tracker.enabled
    assert "failed to start the run" in caplog.text


def test_a_failing_call_warns_once_and_disables_the_tracker(
    caplog: pytest.LogCaptureFixture,
) -> None:
    client = RecordingClient(fail=True)
    tracker = tracker_with(client)

    with caplog.at_level(logging.WARNING, logger="common.tracking"):
        tracker.log_params({"a": 1})
        tracker.log_metrics({"b": 2.0})
        tracker.set_tags({"c": "d"})
        tracker.__exit__(None, None, None)

    assert [name for name, _, _ in client.calls] == ["log_batch"]
    assert not tracker.enabled
    assert "failed to log parameters (RuntimeError: log_batch failed)" in caplog.text
    assert caplog.text.count("failed to") == 1


def test_disabled_tracker_does_nothing(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    db = tmp_path / "never.db"
    with caplog.at_level(logging.DEBUG), Tracker(f"sqlite:///{db}", "x", enabled=False) as t:
        t.log_params({"a": 1})
        t.log_metrics({"b": 1.0})
        t.set_tags({"c": "d"})
        t.log_artifacts(tmp_path)

    assert t.run_id is None
    assert t._client is None
    assert not db.exists()
    assert list(tmp_path.iterdir()) == []
    assert not [r for r in caplog.records if r.name == "common.tracking"]


def test_disabled_tracker_calls_no_client() -> None:
    client = RecordingClient(fail=True)
    tracker = tracker_with(client)
    tracker.enabled = False

    tracker.log_params({"a": 1})
    tracker.log_metrics({"b": 1.0})
    tracker.set_tags({"c": "d"})
    tracker.log_artifacts(Path("."))
    tracker.__exit__(None, None, None)

    assert client.calls == []


def test_params_are_truncated_to_mlflows_limit() -> None:
    client = RecordingClient()
    tracker_with(client).log_params({"long": "x" * 10_000})

    ((_, _, kwargs),) = client.calls
    (param,) = kwargs["params"]
    assert (param.key, len(param.value)) == ("long", 6000)


def test_disabled_tracker_does_not_need_mlflow(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("mlflow", "mlflow.entities", "mlflow.tracking"):
        monkeypatch.setitem(sys.modules, name, None)  # "import mlflow..." now fails

    with Tracker("sqlite:///unused.db", "x", enabled=False) as tracker:
        tracker.log_params({"a": 1})
        tracker.log_metrics({"b": 1.0})
    assert tracker.run_id is None and tracker._client is None  # nothing was started


def test_numpy_scalar_metrics_are_logged() -> None:
    client = RecordingClient()
    tracker_with(client).log_metrics({"rows": np.int64(100), "loss": np.float32(0.5)})

    ((_, _, kwargs),) = client.calls
    assert {(m.key, m.value) for m in kwargs["metrics"]} == {("rows", 100.0), ("loss", 0.5)}
