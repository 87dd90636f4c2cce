"""Backtest page: how every model forecast the series in the rolling-origin backtest, against
seasonal naive, the yardstick a model must beat to be worth running.

All of it is read from the artifact, nothing recomputed: the per-model table from the manifest
(MASE, MASE relative to seasonal naive, sMAPE, interval coverage, series won, seconds per
series), the plots drawn at training time, one series' scores per model (`scores.csv`) with the
model it selected marked, and that series' backtest windows (`backtest.parquet`): its actuals
against each chosen model's forecasts, window by window, intervals included.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import altair as alt
import numpy as np
import pandas as pd
import streamlit as st
from pandas.io.formats.style import Styler

from common.dashboard import plot_tabs, read_report
from forecast.dashboard import forecast_predictor
from forecast.data import read_table_of_series
from forecast.evaluate import BASELINE

#: Widget keys are "backtest.<name>".
FORM = "backtest"
PLOTS = {"models": "Every model", "error_by_step": "Error by step"}
#: The models' table: (manifest key, column) in order; `selected` is the per-series choice.
COLUMNS = [("mase", "MASE"), ("relative_mase", "vs seasonal naive"), ("smape", "sMAPE %"),
           ("coverage", "coverage"), ("selected", "series won"),
           ("seconds_per_series", "seconds per series")]  # fmt: skip
FORMATS = {"MASE": "{:.3f}", "vs seasonal naive": "{:.2f}", "sMAPE %": "{:.2f}",
           "coverage": "{:.0%}", "series won": "{:.0f}",
           "seconds per series": "{:.3f}"}  # fmt: skip
YARDSTICK = "background-color: rgba(255, 193, 7, 0.25); font-weight: bold"
#: Actuals drawn before the first window: this many seasons, for context.
LEAD_IN_SEASONS = 2
PALETTE = ["#4c78a8", "#f58518", "#54a24b", "#e45756", "#b279a2", "#72b7b2", "#9d755d"]


def models_frame(metrics: dict[str, Any], scores: pd.DataFrame,
                 selected: dict[str, str]) -> pd.DataFrame:  # fmt: skip
    """One row per model, and one for `selected` (each series' own choice): pooled backtest
    figures from the manifest's `backtest.<model>.<metric>`. The manifest has no wins or time
    for `selected`: it covers every series, at its chosen models' cost (from `scores.csv`)."""
    rows = [{"model": name, **{label: row.get(key) for key, label in COLUMNS}}
            for name, row in metrics.get("backtest", {}).items()]  # fmt: skip
    frame = pd.DataFrame(rows, columns=["model", *(label for _, label in COLUMNS)])
    frame = frame.astype({label: float for _, label in COLUMNS}).set_index("model")
    if "selected" in frame.index:
        chosen = scores[scores["model"] == scores["series_id"].map(selected)]
        frame.loc["selected", ["series won", "seconds per series"]] = [
            len(selected), chosen["seconds"].mean()]  # fmt: skip
    return frame.reset_index()


def styled_models(frame: pd.DataFrame) -> Styler:
    """The table with seasonal naive highlighted: the row every other is measured against."""

    def mark(row: pd.Series) -> list[str]:
        return [YARDSTICK if row["model"] == BASELINE else ""] * len(row)

    return frame.style.apply(mark, axis=1).format(FORMATS, na_rep="")


def series_scores(scores: pd.DataFrame, series_id: str, selected: str) -> pd.DataFrame:
    """One series' row per model from `scores.csv`, `selected` marking its model, best first."""
    own = scores[scores["series_id"] == series_id].drop(columns="series_id")
    own = own.assign(selected=own["model"] == selected).sort_values("mase", kind="stable")
    first = ["model", "selected", "mase", "smape", "coverage", "mae", "rmse"]
    return own[[*first, *(c for c in own.columns if c not in first)]].reset_index(drop=True)


def windows_frame(points: pd.DataFrame, history: pd.DataFrame, models: list[str],
                  lead_in: int) -> pd.DataFrame:  # fmt: skip
    """The windows chart's one table: the actuals over the backtest (and `lead_in` points
    before it), then each model's forecasts; `line` names the model (or "actual"), `window` the
    forecast's cutoff, so that each window is its own line."""
    first = int(history["ds"].searchsorted(points["ds"].min()))
    last = int(history["ds"].searchsorted(points["ds"].max(), side="right"))
    actual = history.iloc[max(0, first - lead_in) : last].assign(
        line="actual", window="", yhat_lower=np.nan, yhat_upper=np.nan
    )
    chosen = points[points["model"].isin(models)]
    forecasts = pd.DataFrame({
        "ds": chosen["ds"], "y": chosen["yhat"], "yhat_lower": chosen["yhat_lower"],
        "yhat_upper": chosen["yhat_upper"], "line": chosen["model"],
        "window": chosen["cutoff"].astype(str),
    })  # fmt: skip
    return pd.concat([actual, forecasts], ignore_index=True)


def windows_chart(frame: pd.DataFrame, models: list[str]) -> alt.LayerChart:
    """Actuals in black; each model's forecasts in its colour, window by window, in a band."""
    base = alt.Chart(frame).encode(x=alt.X("ds:T", title=None))
    colours = ["#333333", *(PALETTE[i % len(PALETTE)] for i in range(len(models)))]
    colour = alt.Color("line:N", title=None,
                       scale=alt.Scale(domain=["actual", *models], range=colours))  # fmt: skip
    band = (
        base.transform_filter(alt.datum.line != "actual")
        .mark_area(opacity=0.12)
        .encode(y="yhat_lower:Q", y2="yhat_upper:Q", color=colour, detail="window:N")
    )
    lines = base.mark_line().encode(
        y=alt.Y("y:Q", title="value", scale=alt.Scale(zero=False)), color=colour,
        detail="window:N",
        tooltip=[alt.Tooltip("ds:T", title="time"), "line", alt.Tooltip("window:N", title="cutoff"),
                 alt.Tooltip("y:Q", format=",.2f")],
    )  # fmt: skip
    chart = alt.layer(band, lines).properties(title="Backtest windows: actuals and forecasts")
    return chart.configure_legend(symbolOpacity=1)  # swatches not faded to the bands' opacity


def headline(metrics: dict[str, Any], level: float) -> None:
    """The deployed combination (each series' selected model) in four numbers."""
    chosen = metrics.get("backtest", {}).get("selected", {})
    mase, skill, coverage = (chosen.get(k, np.nan) for k in ("mase", "skill", "coverage"))
    held_out = metrics.get("held_out_selection", {}).get("skill", np.nan)
    cols = st.columns(4)
    cols[0].metric("MASE (selected)", f"{mase:.3f}",
                   help="Mean absolute scaled error of each series' selected model, pooled: "
                   "below 1 beats the in-sample seasonal naive forecast.")  # fmt: skip
    cols[1].metric("Better than seasonal naive", f"{skill:.0%}",
                   help="How far the selected models' MASE is below seasonal naive's over the "
                   "same windows. Optimistic: the same windows chose them.")  # fmt: skip
    cols[2].metric("Held out", "n/a" if np.isnan(held_out) else f"{held_out:.0%}",
                   help="The same, each window forecast by the model chosen on the windows "
                   "before it: what choosing by backtest delivers, and the promotion gate "
                   "(n/a with a single window).")  # fmt: skip
    cols[3].metric("Interval coverage", f"{coverage:.0%}", f"{coverage - level:+.0%} vs nominal",
                   delta_color="off",
                   help=f"Share of actuals inside the intervals; nominal {level:.0%}.")  # fmt: skip


def render() -> None:
    predictor = forecast_predictor()
    manifest, extra = predictor.manifest, predictor.manifest.extra
    st.title("Backtest")
    st.caption(
        f"Forecast model {manifest.version}: {len(predictor.ids)} series of `{predictor.freq}` "
        f"data; every model forecast {predictor.horizon} steps from rolling origins every "
        f"{extra['period']} steps (after at least {extra['initial']} points to fit on), and each "
        f"series kept the model with the lowest {extra['select_by'].upper()}. From "
        f"`{predictor.path}`."
    )
    headline(manifest.metrics, predictor.level)
    st.subheader("Every model")
    scores = read_table_of_series(predictor.path / "scores.csv")
    table = models_frame(manifest.metrics, scores, predictor.selected)
    st.dataframe(styled_models(table), hide_index=True, width="stretch")
    st.caption(
        f"Highlighted: {BASELINE}, the yardstick. 'vs seasonal naive' is a model's MASE over "
        "seasonal naive's on the same windows: below 1 beats it. `selected` is each series' own "
        "choice, optimistic since the same windows chose it."
    )
    forecasts = {f"forecast_{i:02d}": f"Forecast: {sid}" for i, sid in enumerate(predictor.ids)}
    plot_tabs(read_report(predictor.path), PLOTS | forecasts, "Plots from training")

    st.subheader("One series")
    series_id = st.selectbox("Series", predictor.ids, key=f"{FORM}.series",
                             format_func=lambda s: f"{s} ({predictor.selected[s]})",
                             on_change=forget_models)  # fmt: skip
    chosen = predictor.selected[series_id]
    st.dataframe(
        series_scores(scores, series_id, chosen),
        hide_index=True,
        width="stretch",
        column_config={"coverage": st.column_config.NumberColumn(format="percent")},
    )
    st.caption(f"{series_id}'s backtest selected **{chosen}** (ticked), by lowest "
               f"{extra['select_by'].upper()} over its windows.")  # fmt: skip
    show_windows(predictor.path, series_id, chosen, predictor.models[series_id].history_,
                 int(extra["season"]))  # fmt: skip
    with st.expander("Model card"):
        card = predictor.path / "model_card.md"
        st.markdown(card.read_text() if card.is_file() else "This artifact has no model card.")


def forget_models() -> None:
    """Another series is chosen: draw its own selected model against seasonal naive again,
    rather than the models picked for the last one (which it may not have)."""
    st.session_state.pop(f"{FORM}.models", None)


def show_windows(path: Path, series_id: str, chosen: str, history: pd.DataFrame,
                 season: int) -> None:  # fmt: skip
    # Only this series' rows: backtest.parquet holds every series' points of every model.
    points = pd.read_parquet(path / "backtest.parquet", filters=[("series_id", "==", series_id)])
    names = list(dict.fromkeys(points["model"]))
    default = [m for m in dict.fromkeys([chosen, BASELINE]) if m in names]
    models = st.multiselect("Models", names, default=default, key=f"{FORM}.models",
                            help="Whose backtest forecasts to draw.")  # fmt: skip
    if not models:
        st.info("Choose at least one model to draw its backtest forecasts.")
        return
    frame = windows_frame(points, history, models, LEAD_IN_SEASONS * season)
    st.altair_chart(windows_chart(frame, models), width="stretch")


# Streamlit runs this file as the page's script; importing it runs nothing.
if __name__ == "__main__":
    render()
