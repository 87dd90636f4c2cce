"""Unit tests of common.settings: defaults, MLP_ environment variables, caching, no side effects."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from common.settings import Settings, get_settings

REPO_ROOT = Path(__file__).resolve().parents[2]


def clean_subprocess_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLP_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def test_defaults(clean_env: Path) -> None:
    settings = Settings()

    assert settings.artifacts_root == Path("artifacts")
    assert settings.data_root == Path("data")
    assert settings.tracking is True
    assert settings.tracking_uri is None
    assert settings.seed == 42


def test_environment_variables_override(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLP_ARTIFACTS_ROOT", "/srv/models")
    monkeypatch.setenv("MLP_DATA_ROOT", "/srv/data")
    monkeypatch.setenv("MLP_TRACKING", "false")
    monkeypatch.setenv("MLP_TRACKING_URI", "http://mlflow:5000")
    monkeypatch.setenv("MLP_SEED", "7")

    settings = Settings()

    assert settings.artifacts_root == Path("/srv/models")
    assert settings.data_root == Path("/srv/data")
    assert settings.tracking is False
    assert settings.tracking_uri == "http://mlflow:5000"
    assert settings.seed == 7


def test_variables_without_the_prefix_are_ignored(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SEED", "7")
    monkeypatch.setenv("ARTIFACTS_ROOT", "/elsewhere")

    settings = Settings()

    assert settings.seed == 42
    assert settings.artifacts_root == Path("artifacts")


def test_an_invalid_value_is_refused(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLP_SEED", "seven")

    with pytest.raises(ValidationError, match="seed"):
        Settings()


def test_dotenv_file_is_read_and_environment_wins(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (clean_env / ".env").write_text("MLP_SEED=9\nMLP_DATA_ROOT=/from/dotenv\nUNRELATED=1\n")

    assert Settings().seed == 9
    assert Settings().data_root == Path("/from/dotenv")
    monkeypatch.setenv("MLP_SEED", "11")
    assert Settings().seed == 11


def test_explicit_arguments_win(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLP_SEED", "7")

    assert Settings(seed=3).seed == 3


def test_resolved_tracking_uri_defaults_to_sqlite_under_artifacts_root(clean_env: Path) -> None:
    uri = Settings().resolved_tracking_uri()

    assert uri == f"sqlite:///{(clean_env / 'artifacts' / 'mlflow.db').resolve()}"
    assert Settings(artifacts_root=Path("/srv/models")).resolved_tracking_uri() == (
        "sqlite:////srv/models/mlflow.db"
    )
    assert list(clean_env.iterdir()) == []  # resolving creates nothing


def test_resolved_tracking_uri_honours_mlp_tracking_uri(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLP_TRACKING_URI", "http://mlflow:5000")

    assert Settings().resolved_tracking_uri() == "http://mlflow:5000"


def test_settings_are_frozen(clean_env: Path) -> None:
    settings = Settings()

    with pytest.raises(ValidationError, match="frozen"):
        settings.seed = 1  # type: ignore[misc]
    assert settings.seed == 42
    assert settings.model_copy(update={"seed": 1}).seed == 1  # the way to get a variant


def test_get_settings_is_cached_until_cleared(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = get_settings()
    monkeypatch.setenv("MLP_SEED", "5")

    assert get_settings() is first
    assert get_settings().seed == 42
    get_settings.cache_clear()
    assert get_settings() is not first
    assert get_settings().seed == 5


def test_importing_common_modules_has_no_side_effects(tmp_path: Path) -> None:
    code = "import common.settings, common.artifacts, common.tracking, common.predictor"

    subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env=clean_subprocess_env(),
        check=True,
        timeout=60,
    )

    assert list(tmp_path.iterdir()) == []


def test_module_prints_the_resolved_tracking_uri(tmp_path: Path) -> None:
    env = clean_subprocess_env() | {"MLP_TRACKING_URI": "http://mlflow:5000"}

    result = subprocess.run(
        [sys.executable, "-m", "common.settings", "tracking-uri"],
        cwd=tmp_path,
        env=env,
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.stdout.strip() == "http://mlflow:5000"
    assert list(tmp_path.iterdir()) == []


def test_serve_log_level_accepts_any_case_and_names_a_bad_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from common.settings import ServeSettings

    monkeypatch.setenv("MLP_SERVE_LOG_LEVEL", "warning")
    assert ServeSettings().log_level == "WARNING"
    monkeypatch.setenv("MLP_SERVE_LOG_LEVEL", "loud")
    with pytest.raises(ValidationError, match="log_level"):
        ServeSettings()


def test_drift_min_rows_above_the_window_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    from common.settings import ServeSettings

    monkeypatch.setenv("MLP_SERVE_DRIFT_WINDOW_ROWS", "500")
    monkeypatch.setenv("MLP_SERVE_DRIFT_MIN_ROWS", "501")
    both = "MLP_SERVE_DRIFT_MIN_ROWS (501) is larger than MLP_SERVE_DRIFT_WINDOW_ROWS (500)"
    with pytest.raises(ValidationError, match=re.escape(both)):
        ServeSettings()
    monkeypatch.setenv("MLP_SERVE_DRIFT_MIN_ROWS", "500")  # equal is enough rows
    assert ServeSettings().drift_min_rows == 500
