"""The Streamlit monitoring page every project's dashboard shows: drift per feature over time,
the alerts sent and those still open, and the latest run's details.

It only reads a project's monitoring folder (see `common.monitoring.run`): the monitor command
writes, the dashboard shows. `history` and `alert_log` are plain functions over that folder, so
they are tested without Streamlit.
"""

from __future__ import annotations

import json
from pathlib import Path

import altair as alt
import pandas as pd
import streamlit as st

from common.monitoring.alerts import AlertState
from common.monitoring.drift import PSI_MAJOR, PSI_MODERATE
from common.monitoring.run import load_runs

SHOWN_FEATURES = 6


def history(folder: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One row per run (summary) and one row per run and feature (PSI), oldest first."""
    runs, psi = [], []
    for report in load_runs(folder):
        at = pd.Timestamp(report["created_at"]).tz_convert(None)  # UTC, for the chart
        metrics = report["metrics"]
        runs.append({
            "run": report["run_id"], "time": at, "data": report["context"].get("data", ""),
            "rows": report["rows"], "drifted": len(report["drift"]["drifted"]),
            "prediction PSI": metrics.get("drift.prediction_psi"),
            "estimated ROC-AUC": metrics.get("estimated.roc_auc"),
            "realised ROC-AUC": metrics.get("performance.roc_auc"),
            "alerts sent": len(report["alerts"]),
            "open after": ", ".join(report["open_alerts"]),
        })  # fmt: skip
        psi += [{"run": report["run_id"], "time": at, "feature": f["feature"], "psi": f["psi"],
                 "drifted": f["drifted"]} for f in report["drift"]["features"]]  # fmt: skip
    return pd.DataFrame(runs), pd.DataFrame(psi)


def alert_log(folder: Path) -> pd.DataFrame:
    """Every alert sent to the JSON-lines sink, newest first."""
    path = folder / "alerts.jsonl"
    if not path.exists():
        return pd.DataFrame()
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    columns = ["at", "status", "severity", "rule", "metric", "value", "threshold", "since"]
    return pd.DataFrame(rows, columns=columns).iloc[::-1].reset_index(drop=True)


def psi_chart(psi: pd.DataFrame, features: list[str]) -> alt.LayerChart:
    shown = psi[psi["feature"].isin(features)]
    lines = (
        alt.Chart(shown, title="PSI per feature, run by run")
        .mark_line(point=True)
        .encode(
            x=alt.X("time:T", title="monitoring run"),
            y=alt.Y("psi:Q", title="PSI against the training data"),
            color=alt.Color("feature:N"),
            tooltip=["run", "feature", alt.Tooltip("psi:Q", format=".3f"), "drifted"],
        )
    )
    bands = pd.DataFrame({"psi": [PSI_MODERATE, PSI_MAJOR], "reading": ["moderate", "major"]})
    rules = alt.Chart(bands).mark_rule(strokeDash=[4, 4], color="grey").encode(y="psi:Q")
    return alt.layer(lines, rules)


def render_monitoring(folder: Path, *, command: str) -> None:
    """The page: `folder` is the project's monitoring folder, `command` how to fill it."""
    st.title("Monitoring")
    st.caption(
        f"Monitoring runs in `{folder}`. PSI: below {PSI_MODERATE} stable, "
        f"{PSI_MODERATE} to {PSI_MAJOR} moderate, above {PSI_MAJOR} major."
    )
    runs, psi = history(folder)
    if runs.empty:
        st.info(f"No monitoring run yet. Run `{command}`, then reload this page.")
        return

    state = AlertState.load(folder / "state.json")
    still_open = sorted(name for name, rule in state.rules.items() if rule.open)
    latest = runs.iloc[-1]
    cols = st.columns(4)
    cols[0].metric("Runs", len(runs))
    cols[1].metric("Drifted features (latest)", int(latest["drifted"]))
    prediction_psi = latest["prediction PSI"]
    # A model with no score (a forecaster) has no prediction PSI: say so rather than fail.
    shown = "n/a" if prediction_psi is None or pd.isna(prediction_psi) else f"{prediction_psi:.3f}"
    cols[2].metric("Prediction PSI (latest)", shown)
    cols[3].metric("Open alerts", len(still_open))
    if still_open:
        st.error("Open: " + ", ".join(still_open))

    st.subheader("Drift over time")
    worst = psi.groupby("feature")["psi"].max().sort_values(ascending=False)
    features = st.multiselect(
        "Features", list(worst.index), default=list(worst.index[:SHOWN_FEATURES]),
        help="The features that moved most are shown first.",
    )  # fmt: skip
    if features:
        st.altair_chart(psi_chart(psi, features), width="stretch")

    st.subheader("Alerts")
    alerts = alert_log(folder)
    if alerts.empty:
        st.write("No alert sent yet.")
    else:
        st.dataframe(alerts, hide_index=True, width="stretch")

    st.subheader("Runs")
    st.dataframe(runs.iloc[::-1], hide_index=True, width="stretch")
    report = folder / "runs" / latest["run"] / "report.html"
    st.caption(f"The latest run's full report (open it in a browser): `{report}`")
