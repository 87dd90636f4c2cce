"""The forecast command line: what each command prints, its exit codes, and bad inputs (exit 2,
a message naming the problem, no traceback, the store left as it was)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from common.artifacts import ArtifactStore
from forecast.__main__ import app

runner = CliRunner()


def invoke(*args: object):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture
def store(settings) -> ArtifactStore:
    return ArtifactStore(settings.artifacts_root, "forecast")


@pytest.fixture
def published(store: ArtifactStore, forecast_artifact: Path) -> Path:
    """A copy of the session's model in this test's store, aliased `latest`."""
    target = shutil.copytree(forecast_artifact, store.project_dir / forecast_artifact.name)
    store.set_alias("latest", forecast_artifact.name)
    return Path(target)


def test_data_writes_the_series_and_their_continuation(tmp_path: Path, settings) -> None:
    out, actuals = tmp_path / "train.csv", tmp_path / "actuals.parquet"
    result = invoke("data", "--out", out, "--series", 2, "--periods", 100, "--actuals", actuals,
                    "--actual-periods", 10)  # fmt: skip
    assert result.exit_code == 0, result.output
    assert result.stdout.split() == [str(out), str(actuals)]
    train, future = pd.read_csv(out, parse_dates=["ds"]), pd.read_parquet(actuals)
    assert train.groupby("series_id").size().tolist() == [100, 100]
    assert future.groupby("series_id").size().tolist() == [10, 10]
    assert future["ds"].min() == train["ds"].max() + pd.Timedelta(days=1)


def test_data_with_a_shift_moves_only_the_later_actuals(tmp_path: Path, settings) -> None:
    common = ("--series", 1, "--periods", 100, "--actual-periods", 30)
    invoke("data", "--out", tmp_path / "a.csv", "--actuals", tmp_path / "clean.csv", *common)
    invoke("data", "--out", tmp_path / "b.csv", "--actuals", tmp_path / "moved.csv", *common,
           "--shift", 3, "--shift-after", 10)  # fmt: skip
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()
    clean, moved = (pd.read_csv(tmp_path / f)["y"] for f in ("clean.csv", "moved.csv"))
    assert (clean.iloc[:10] == moved.iloc[:10]).all()
    assert (moved.iloc[10:] > clean.iloc[10:]).all()


def test_train_prints_only_the_artifact_directory(
    forecast_files, settings, store: ArtifactStore
) -> None:
    result = invoke("train", "--data", forecast_files.train, "--horizon", 7,
                    "--models", "naive,seasonal_naive", "--n-jobs", 1)  # fmt: skip
    assert result.exit_code == 0, result.output
    path = Path(result.stdout.strip())
    assert path.is_dir() and store.resolve("latest") == path


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (("--models", "naive,arima"), "arima"),
        (("--horizon", 500), "too short for a 500-step horizon"),
        (("--freq", "QS"), "not supported"),
    ],
)
def test_train_refuses_bad_options_by_name(forecast_files, settings, store, args, named) -> None:
    result = invoke("train", "--data", forecast_files.train, "--n-jobs", 1, *args)
    assert result.exit_code == 2
    assert named in result.stderr and "Traceback" not in result.output
    assert store.versions() == []


def test_train_on_a_missing_file_names_it(tmp_path: Path, settings) -> None:
    result = invoke("train", "--data", tmp_path / "nope.csv")
    assert result.exit_code == 2 and "nope.csv: no such file" in result.stderr


def test_promote_requires_beating_seasonal_naive(published: Path, store: ArtifactStore) -> None:
    ok = invoke("promote", "latest", "--min-skill", -10)
    assert ok.exit_code == 0 and "production ->" in ok.stdout
    refused = invoke("promote", "latest", "--alias", "strict", "--min-skill", 0.99)
    assert refused.exit_code == 2 and "held_out_selection.skill" in refused.stderr
    assert "strict" not in store.aliases()


def test_monitor_exit_codes(published: Path, forecast_files, settings) -> None:
    healthy = invoke("monitor", "--actuals", forecast_files.healthy)
    assert healthy.exit_code == 0, healthy.output
    assert healthy.stdout.strip().endswith("report.html")
    shifted = invoke("monitor", "--actuals", forecast_files.shifted)
    assert shifted.exit_code == 3


def test_monitor_with_a_few_new_actuals_prints_n_a(published: Path, forecast_files, settings,
                                                    tmp_path: Path) -> None:  # fmt: skip
    """Three days of actuals: too few for a level-shift ratio or coverage, which are absent
    from the metrics; the run still ends normally."""
    frame = pd.read_csv(forecast_files.healthy, parse_dates=["ds"])
    first = frame[frame["ds"] <= frame["ds"].min() + pd.Timedelta(days=2)]
    path = tmp_path / "first_days.csv"
    first.to_csv(path, index=False)
    result = invoke("monitor", "--actuals", path)
    assert result.exit_code == 0, result.output
    assert result.stdout.strip().endswith("report.html")
    assert "level-shift ratio n/a" in result.stderr and "coverage min n/a" in result.stderr


def test_monitor_on_a_missing_file_names_it(published: Path, tmp_path: Path, settings) -> None:
    result = invoke("monitor", "--actuals", tmp_path / "nope.csv")
    assert result.exit_code == 2 and "nope.csv" in result.stderr


def test_data_refuses_a_shift_after_the_last_actual(tmp_path: Path, settings) -> None:
    result = invoke("data", "--out", tmp_path / "a.csv", "--actuals", tmp_path / "b.csv",
                    "--actual-periods", 5, "--shift", 2, "--shift-after", 5)  # fmt: skip
    assert result.exit_code == 2 and "--shift-after" in result.output
    assert not (tmp_path / "a.csv").exists()  # nothing written
