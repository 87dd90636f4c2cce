"""The churn command line, and every bad input the user can give it.

Each bad input must give exit code 2, a message naming the problem, and leave existing artifacts
exactly as they were.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from churn.__main__ import app
from common.artifacts import ArtifactStore

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture
def store(settings) -> ArtifactStore:
    return ArtifactStore(settings.artifacts_root, "churn")


@pytest.fixture
def published(store: ArtifactStore, trained_artifact: Path) -> Path:
    """A copy of the session's trained model in this test's store, aliased `latest`."""
    target = shutil.copytree(trained_artifact, store.project_dir / trained_artifact.name)
    store.set_alias("latest", trained_artifact.name)
    return Path(target)


def snapshot(store: ArtifactStore) -> tuple:
    """Everything a failed command must leave exactly as it was."""
    files = (
        sorted(str(p.relative_to(store.root)) for p in store.root.rglob("*"))
        if store.root.exists()
        else []
    )
    return store.versions(), store.aliases(), files


def test_data_writes_the_builtin_file(tmp_path: Path, settings) -> None:
    out = tmp_path / "telco.csv"
    result = invoke("data", "--rows", 1000, "--out", out)
    assert result.exit_code == 0, result.output
    assert Path(result.stdout.strip()) == out
    df = pd.read_csv(out)
    assert len(df) == 1000 and df.columns[0] == "customerID" and df.columns[-1] == "Churn"


@pytest.mark.slow
def test_train_prints_the_artifact_directory(settings, telco_csv: Path, store) -> None:
    result = invoke("train", "--data", telco_csv, "--trials", 1)
    assert result.exit_code == 0, result.output
    path = Path(result.stdout.strip())
    manifest = json.loads((path / "manifest.json").read_text())
    assert 0.78 < manifest["metrics"]["test"]["roc_auc"] < 0.90
    assert "pr_auc" in manifest["metrics"]["test"]
    assert store.resolve("latest") == path


def test_promote_passes_and_fails_the_gate(published: Path, store: ArtifactStore) -> None:
    result = invoke("promote", "latest", "--min-roc-auc", 0.99)
    assert result.exit_code == 2 and "not promoted" in result.stderr and "0.99" in result.stderr
    assert "production" not in store.aliases()
    result = invoke("promote", "latest")
    assert result.exit_code == 0, result.output
    assert store.aliases()["production"] == published.name


def test_evaluate_the_latest_model(published: Path, settings) -> None:
    result = invoke("evaluate")
    assert result.exit_code == 0, result.output
    assert (Path(result.stdout.strip()) / "metrics.json").exists()


def test_corrupted_artifact_is_refused(published: Path, store: ArtifactStore) -> None:
    model_json = published / "model" / "model.json"
    model_json.write_text(model_json.read_text().replace('"threshold"', '"threshold_"'))
    before = snapshot(store)
    for command in (["evaluate"], ["promote", "latest"]):
        result = invoke(*command)
        assert result.exit_code == 2
        assert "model/model.json does not match its checksum" in result.stderr
    assert snapshot(store) == before


def _write_bad(tmp_path: Path, telco_frame: pd.DataFrame, change) -> Path:
    df = telco_frame.head(300).copy()
    df = change(df)
    path = tmp_path / "bad.csv"
    df.to_csv(path, index=False)
    return path


BAD_INPUTS = {
    "missing column": (lambda df: df.drop(columns=["Contract"]), ["'Contract'", "is missing"]),
    "unknown category": (
        lambda df: df.assign(Contract=df["Contract"].where(df.index != 4, "Weekly")),
        ["'Contract'", "unknown categories", "'Weekly'", "row", "5"],
    ),
    "non-numeric charges": (
        lambda df: df.assign(
            MonthlyCharges=df["MonthlyCharges"].astype(str).where(df.index != 9, "abc")
        ),
        ["'MonthlyCharges'", "not numeric", "10", "'abc'"],
    ),
    "negative tenure": (
        lambda df: df.assign(tenure=df["tenure"].where(df.index != 0, -3)),
        ["'tenure'", "below the minimum 0", "-3"],
    ),
    "only one class": (lambda df: df.assign(Churn="No"), ["only one class", "'No'"]),
    "no label": (lambda df: df.drop(columns=["Churn"]), ["'Churn'", "is missing"]),
}  # fmt: skip


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_training_data_is_refused_and_changes_nothing(
    case: str, tmp_path: Path, telco_frame: pd.DataFrame, published: Path, store: ArtifactStore
) -> None:
    change, expected = BAD_INPUTS[case]
    path = _write_bad(tmp_path, telco_frame, change)
    before = snapshot(store)
    result = invoke("train", "--data", path)
    assert result.exit_code == 2, result.output
    assert "\nerror: " in result.stderr
    for text in expected:
        assert text in result.stderr, (text, result.stderr)
    assert "Traceback" not in result.output
    assert snapshot(store) == before


@pytest.mark.parametrize("content", ["", "customerID,gender\n"], ids=["empty", "header only"])
def test_empty_files_are_refused(content: str, tmp_path: Path, published, store) -> None:
    path = tmp_path / "empty.csv"
    path.write_text(content)
    before = snapshot(store)
    result = invoke("train", "--data", path)
    assert result.exit_code == 2
    assert str(path) in result.stderr and ("empty" in result.stderr or "no rows" in result.stderr)
    assert snapshot(store) == before


def test_missing_file_is_refused(tmp_path: Path, settings) -> None:
    result = invoke("train", "--data", tmp_path / "nope.csv")
    assert result.exit_code == 2 and "no such file" in result.stderr


@pytest.mark.slow
def test_real_command_line_warns_about_duplicate_ids_and_prints_the_path(
    tmp_path: Path, telco_frame: pd.DataFrame
) -> None:
    """`python -m churn train` as a user runs it: stdout is the artifact dir and nothing else."""
    import os
    import subprocess
    import sys

    df = pd.concat([telco_frame.head(3000), telco_frame.head(5)])
    path = tmp_path / "dupes.csv"
    df.to_csv(path, index=False)
    env = {**os.environ, "MLP_ARTIFACTS_ROOT": str(tmp_path / "artifacts"), "MLP_TRACKING": "0"}
    result = subprocess.run(
        [sys.executable, "-m", "churn", "train", "--data", str(path), "--trials", "1"],
        capture_output=True, text=True, env=env, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "customerID': has duplicate values; later rows dropped (5 rows: 3001" in result.stderr
    [line] = result.stdout.splitlines()
    manifest = json.loads((Path(line) / "manifest.json").read_text())
    assert sum(manifest["extra"]["rows"].values()) == 3000


def test_invalid_options_are_explained(tmp_path: Path, settings, telco_csv: Path) -> None:
    result = invoke("train", "--data", telco_csv, "--cost-missed", -5)
    assert result.exit_code == 2 and "cost_missed_churner" in result.stderr


def test_unknown_model_reference(settings) -> None:
    result = invoke("evaluate", "v-does-not-exist")
    assert result.exit_code == 2 and "no artifact 'v-does-not-exist'" in result.stderr


def test_a_bad_setting_is_a_clear_error(settings, monkeypatch: pytest.MonkeyPatch) -> None:
    from common.settings import get_settings

    monkeypatch.setenv("MLP_SEED", "abc")
    get_settings.cache_clear()
    result = invoke("promote", "latest")
    assert result.exit_code == 2
    assert "invalid settings or options: seed" in result.stderr


def test_download_falls_back_to_generated_data_only_when_offline(tmp_path: Path, settings) -> None:
    out = tmp_path / "telco.csv"
    unreachable = (tmp_path / "nowhere.csv").as_uri()
    result = invoke("data", "--download", "--url", unreachable, "--out", out, "--rows", 1000)
    assert result.exit_code == 0, result.output
    assert "failed" in result.stderr and "generating 1000 synthetic customers" in result.stderr
    assert len(pd.read_csv(out)) == 1000


def test_failed_download_keeps_an_existing_file(
    tmp_path: Path, settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    import churn.data

    def offline(dest: Path, url: str) -> Path:
        raise churn.data.DownloadError(f"downloading {url} failed (offline)")

    monkeypatch.setattr(churn.data, "download_telco", offline)
    out = tmp_path / "telco.csv"
    out.write_text("the real file from an earlier download\n")
    result = invoke("data", "--download", "--out", out, "--rows", 1000)
    assert result.exit_code == 0, result.stderr
    assert "failed (offline)" in result.stderr and "kept the existing" in result.stderr
    assert result.stdout.strip() == str(out)
    assert out.read_text() == "the real file from an earlier download\n"


def test_download_of_something_that_is_not_the_table_is_an_error(tmp_path: Path, settings) -> None:
    page = tmp_path / "page.csv"
    page.write_text("<html><body>Rate limited</body></html>\n")
    out = tmp_path / "telco.csv"
    result = invoke("data", "--download", "--url", page.as_uri(), "--out", out)
    assert result.exit_code == 2
    assert "did not return the Telco churn table" in result.stderr
    assert not out.exists()  # and nothing generated in its place


def test_data_defaults_to_the_data_root(settings) -> None:
    result = invoke("data", "--rows", 1000)
    assert result.exit_code == 0, result.output
    assert Path(result.stdout.strip()) == settings.data_root / "churn" / "telco.csv"


def test_serve_without_a_model_is_a_clear_error(settings) -> None:
    result = runner.invoke(app, ["serve"])
    assert result.exit_code == 2
    assert "no artifact 'latest'" in result.output and "train a model first" in result.output


def test_serve_runs_until_sigterm_and_logs_json(published: Path, settings) -> None:
    """The real command: ready on 127.0.0.1, JSON logs on stderr, clean exit on SIGTERM."""
    import os
    import signal
    import socket
    import subprocess
    import sys
    import time
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "churn", "serve", "--port", str(port)],
        env={**os.environ, "MLP_TRACKING": "false"},
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=1) as r:
                    assert json.load(r) == {"status": "ready"}
                    break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline
                time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=30)
    finally:
        proc.kill()
    # Uvicorn shuts down gracefully, then re-raises the signal, as a well-behaved process does.
    assert proc.returncode in (0, -signal.SIGTERM)
    lines = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    assert any(line["message"] == "Application shutdown complete." for line in lines)
    assert any(line["message"] == "model loaded" and line["version"] == published.name
               for line in lines)  # fmt: skip
    assert not any(line.get("path") == "/ready" for line in lines)  # probes log at DEBUG
