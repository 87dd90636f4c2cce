"""Fixtures shared by every test package: isolated settings and one small trained churn model.

Training takes seconds, so one model is trained per test session on generated data and shared
by the tests that only read it; tests that write artifacts get their own store under tmp_path.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from common.settings import Settings, get_settings


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Settings pointing at an empty artifact store in tmp_path, tracking off; also what
    `get_settings()` returns (for the CLI) during the test."""
    monkeypatch.setenv("MLP_ARTIFACTS_ROOT", str(tmp_path / "artifacts"))
    monkeypatch.setenv("MLP_DATA_ROOT", str(tmp_path / "data"))
    monkeypatch.setenv("MLP_MONITORING_ROOT", str(tmp_path / "monitoring"))
    monkeypatch.setenv("MLP_TRACKING", "false")
    # A developer's own webhook must never receive test alerts.
    monkeypatch.delenv("MLP_ALERT_WEBHOOK_URL", raising=False)
    get_settings.cache_clear()
    yield get_settings()
    get_settings.cache_clear()


@pytest.fixture(scope="session")
def telco_frame() -> pd.DataFrame:
    """7,043 generated customers (the size of IBM's file), laid out as on disk."""
    from churn.data import generate_customers

    return generate_customers(7043, seed=7)


@pytest.fixture(scope="session")
def telco_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from churn.data import write_customers

    return write_customers(
        tmp_path_factory.mktemp("data") / "telco.csv", 7043, seed=7, progress=False
    )


@pytest.fixture(scope="session")
def fast_config():
    from churn.config import ChurnConfig

    return ChurnConfig(n_trials=2, max_rounds=300, seed=7)


@pytest.fixture(scope="session")
def trained_artifact(
    tmp_path_factory: pytest.TempPathFactory, telco_csv: Path, fast_config
) -> Path:
    """One published churn artifact, trained once per session with a small search."""
    from churn.train import run

    root = tmp_path_factory.mktemp("store")
    return run(telco_csv, fast_config, Settings(artifacts_root=root, tracking=False))
