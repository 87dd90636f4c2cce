"""The dashboard's monitoring page (common.monitoring.page, shown by churn's dashboard): empty
before any run, then drift over time, open alerts and the alert history after real runs of the
churn monitor."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest
from streamlit.testing.v1 import AppTest

from churn.data import write_customers
from churn.monitor import WATCHED, monitor
from common.artifacts import ArtifactStore
from common.monitoring.page import alert_log, history
from common.settings import Settings

APP = Path(__file__).parents[2] / "churn" / "dashboard" / "app.py"


@pytest.fixture
def monitored(settings: Settings, trained_artifact: Path, tmp_path: Path) -> Path:
    """Two monitor runs of the session's model: a batch as in training, then a shifted one."""
    store = ArtifactStore(settings.artifacts_root, "churn")
    shutil.copytree(trained_artifact, store.project_dir / trained_artifact.name)
    store.set_alias("latest", trained_artifact.name)
    for name, shift in (("same", 0.0), ("shifted", 1.0)):
        batch = write_customers(tmp_path / f"{name}.csv", 1500, seed=31, shift=shift,
                                progress=False)  # fmt: skip
        monitor(batch, with_labels=True, settings=settings)
    return settings.monitoring_root / "churn"


def open_monitoring_page() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60).run()
    at.switch_page("monitoring.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_history_and_alert_log_read_the_monitoring_folder(monitored: Path) -> None:
    runs, psi = history(monitored)
    assert len(runs) == 2 and runs["drifted"].tolist()[0] == 0 and runs["drifted"].iloc[1] > 0
    assert set(psi["feature"]) == set(WATCHED) and len(psi) == 2 * len(WATCHED)
    alerts = alert_log(monitored)
    assert (alerts["status"] == "firing").all() and "prediction-drift-major" in set(alerts["rule"])


def test_the_page_says_how_to_start_when_nothing_was_monitored(settings: Settings) -> None:
    at = open_monitoring_page()
    assert "make monitor-churn" in at.info[0].value


def test_the_page_shows_drift_over_time_and_the_open_alerts(monitored: Path) -> None:
    at = open_monitoring_page()
    labels = {m.label: m.value for m in at.metric}
    assert labels["Runs"] == "2" and int(labels["Open alerts"]) >= 2
    assert "prediction-drift-major" in at.error[0].value
    chart = at.get("vega_lite_chart")[0]
    data = pa.ipc.open_stream(chart.proto.datasets[0].data.data).read_pandas()
    assert set(data["feature"]) == set(at.multiselect[0].value) and len(data) >= 2
    assert "Contract" in at.multiselect[0].value  # among the features that moved most
    tables = [t.value for t in at.dataframe]
    assert any(isinstance(t, pd.DataFrame) and "rule" in t.columns for t in tables)
