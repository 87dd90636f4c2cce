"""Monitoring page: drift per feature over time and the alerts of `python -m churn monitor`
runs, read from `MLP_MONITORING_ROOT/churn/` (the page itself is common to every project)."""

from __future__ import annotations

from common.monitoring.page import render_monitoring
from common.settings import get_settings


def render() -> None:
    render_monitoring(get_settings().monitoring_root / "churn", command="make monitor-churn")


# Streamlit runs this file as the page's script; importing it runs nothing.
if __name__ == "__main__":
    render()
