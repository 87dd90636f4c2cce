"""Monitoring page: drift of the image statistics and of the model's answers over time, and the
alerts of `python -m vision monitor` runs, read from `MLP_MONITORING_ROOT/vision/` (the page
itself is common to every project)."""

from __future__ import annotations

from common.monitoring.page import render_monitoring
from common.settings import get_settings


def render() -> None:
    render_monitoring(get_settings().monitoring_root / "vision", command="make monitor-vision")


# Streamlit runs this file as the page's script; importing it runs nothing.
if __name__ == "__main__":
    render()
