"""Monitoring page: the actuals that came in since training against the forecasts made for them,
point by point, with the points where an alert rule is breached marked; then the drift, alerts
and runs every project's dashboard shows.

It reads what `python -m forecast monitor --actuals PATH` writes under
`MLP_MONITORING_ROOT/forecast/runs/<run>/`: `stream.parquet` (every actual with its forecast,
interval, error CUSUM and level-shift ratio) and `series.csv` (each series' latest state). A
point is marked where its CUSUM or shift ratio is above the threshold of the rule on
`error.cusum` or `level_shift.ratio` in `forecast/alerts.yaml`, the rules the command applies by
default; the run's metric is the worst series' latest value, so the marks show when and where a
breach began. With no run yet, the page says which command makes one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import altair as alt
import pandas as pd
import streamlit as st

from common.errors import UserError
from common.monitoring.alerts import AlertConfig
from common.monitoring.page import render_monitoring
from common.monitoring.run import load_runs
from common.settings import get_settings
from forecast.dashboard import when
from forecast.data import read_table_of_series
from forecast.monitor import DEFAULT_RULES

#: Widget keys are "monitoring.<name>".
FORM = "monitoring"
COMMAND = "python -m forecast monitor --actuals PATH"
STREAM, SERIES = "stream.parquet", "series.csv"
#: The shipped rules' thresholds, used only where the rules file has no rule on the metric.
CUSUM_METRIC, SHIFT_METRIC = "error.cusum", "level_shift.ratio"
DEFAULT_CUSUM, DEFAULT_SHIFT = 5.0, 3.0
LINES = ["actual", "forecast"]
COLOURS = ["#333333", "#4c78a8"]


@dataclass(frozen=True)
class Thresholds:
    """Above these a point is in breach: its error CUSUM, its level-shift ratio."""

    cusum: float
    shift_ratio: float


def alert_thresholds(rules: Path = DEFAULT_RULES) -> Thresholds:
    """The `above` thresholds of the rules on `error.cusum` and `level_shift.ratio`; the shipped
    numbers for a metric no rule watches. UserError for a rules file that cannot be read."""
    above = {r.metric: r.above for r in AlertConfig.load(rules).rules if r.above is not None}
    return Thresholds(
        above.get(CUSUM_METRIC, DEFAULT_CUSUM), above.get(SHIFT_METRIC, DEFAULT_SHIFT)
    )


def forecast_runs(folder: Path) -> list[dict[str, Any]]:
    """The reports of the runs that kept their points (`stream.parquet`), oldest first."""
    return [r for r in load_runs(folder) if (folder / "runs" / r["run_id"] / STREAM).is_file()]


def mark_alerts(stream: pd.DataFrame, limits: Thresholds) -> pd.DataFrame:
    """The points with `alert` (a threshold is crossed) and `reason` (which, by how much)."""
    cusum, shift = stream["cusum"] > limits.cusum, stream["shift_ratio"] > limits.shift_ratio

    def why(c: float, s: float) -> str:
        found = [f"error CUSUM {c:.1f} > {limits.cusum:g}"] if c > limits.cusum else []
        if s > limits.shift_ratio:
            found.append(f"level-shift ratio {s:.2f} > {limits.shift_ratio:g}")
        return "; ".join(found)

    reason = [why(c, s) for c, s in zip(stream["cusum"], stream["shift_ratio"], strict=True)]
    return stream.assign(alert=cusum | shift, reason=reason)


def stream_frame(points: pd.DataFrame) -> pd.DataFrame:
    """The chart's one table: each point twice, as the actual and as its forecast (`line`)."""
    keep = ["ds", "yhat_lower", "yhat_upper", "step", "alert", "reason"]
    actual = points[keep].assign(value=points["y"], line="actual")
    forecast = points[keep].assign(value=points["yhat"], line="forecast", alert=False, reason="")
    return pd.concat([actual, forecast], ignore_index=True)


def stream_chart(frame: pd.DataFrame, title: str) -> alt.LayerChart:
    """Actuals and forecasts as lines, the interval as a band, alert points in red."""
    base = alt.Chart(frame).encode(x=alt.X("ds:T", title=None))
    colour = alt.Color("line:N", title=None, scale=alt.Scale(domain=LINES, range=COLOURS))
    band = (
        base.transform_filter(alt.datum.line == "forecast")
        .mark_area(opacity=0.25, color=COLOURS[1])
        .encode(y="yhat_lower:Q", y2="yhat_upper:Q")
    )
    tooltip = [alt.Tooltip("ds:T", title="time"), "line", alt.Tooltip("value:Q", format=",.2f"),
               "step", "reason"]  # fmt: skip
    lines = base.mark_line().encode(
        y=alt.Y("value:Q", title="value", scale=alt.Scale(zero=False)), color=colour,
        tooltip=tooltip,
    )  # fmt: skip
    alerts = (
        base.transform_filter(alt.datum.alert)
        .mark_point(filled=True, size=70, color="#d62728", shape="diamond")
        .encode(y="value:Q", tooltip=tooltip)
    )
    return alt.layer(band, lines, alerts).properties(title=title)


def run_label(report: dict[str, Any]) -> str:
    """`<run id> · healthy.csv · 2 alerts open`: a run as the user recognises it."""
    data = Path(report["context"].get("data", "")).name or "?"
    n = len(report["open_alerts"])
    return f"{report['run_id']} · {data} · {n or 'no'} alert{'' if n == 1 else 's'} open"


def render() -> None:
    folder = get_settings().monitoring_root / "forecast"
    runs = forecast_runs(folder)
    if not runs:  # the shared section says there is no run, and which command makes one
        render_monitoring(folder, command=COMMAND)
        return
    st.title("Forecasts against actuals")
    try:
        limits = alert_thresholds()
    except UserError as exc:  # the page still shows the points, against the shipped thresholds
        limits = Thresholds(DEFAULT_CUSUM, DEFAULT_SHIFT)
        st.warning(f"{exc}. Marking points against the default thresholds instead.")
    st.caption(
        f"Each actual against the forecast made for it, conditioned on the actuals before its "
        f"block. Red points breach an alert rule: error CUSUM above {limits.cusum:g} (error "
        f"has run above the backtest's for several periods) or level-shift ratio above "
        f"{limits.shift_ratio:g} (the series has moved away from its forecast)."
    )
    labels = {r["run_id"]: run_label(r) for r in runs}
    pick_run, pick_series = st.columns(2)
    run_id = pick_run.selectbox("Run", list(labels), index=len(labels) - 1, key=f"{FORM}.run",
                                format_func=labels.__getitem__,
                                help="The latest by default.")  # fmt: skip
    run_dir = folder / "runs" / run_id
    stream = pd.read_parquet(run_dir / STREAM)
    table = read_table_of_series(run_dir / SERIES)
    ids = table["series_id"].tolist()
    worst = ids[int(table["cusum"].to_numpy().argmax())] if ids else None
    series_id = pick_series.selectbox(
        "Series", ids, index=ids.index(worst) if worst else 0, key=f"{FORM}.series",
        help="The series with the highest error CUSUM is shown first.",
    )  # fmt: skip
    show_series(mark_alerts(stream[stream["series_id"] == series_id], limits), series_id, limits)

    st.subheader("Every series in this run")
    flagged = (table["cusum"] > limits.cusum) | (table["shift_ratio"] > limits.shift_ratio)
    st.dataframe(
        table.assign(alert=flagged),
        hide_index=True,
        width="stretch",
        column_config={"coverage": st.column_config.NumberColumn(format="percent")},
    )
    st.caption(f"Each series' latest state in `{run_dir / SERIES}`.")
    st.divider()
    render_monitoring(folder, command=COMMAND)


def show_series(points: pd.DataFrame, series_id: str, limits: Thresholds) -> None:
    if points.empty:
        st.info(f"No actual of {series_id} is newer than the training data in this run.")
        return
    alerts = points[points["alert"]]
    if alerts.empty:
        st.success(f"{series_id}: none of its {len(points)} points breaches an alert rule.")
    else:
        start = pd.Timestamp(alerts["ds"].iloc[0])
        st.warning(
            f"{series_id}: {len(alerts)} of its {len(points)} points breach an alert rule, "
            f"from {when(start)} ({alerts['reason'].iloc[0]})."
        )
    title = f"{series_id}: actuals against forecasts"
    st.altair_chart(stream_chart(stream_frame(points), title), width="stretch")


# Streamlit runs this file as the page's script; importing it runs nothing.
if __name__ == "__main__":
    render()
