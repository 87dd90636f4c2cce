"""Forecast page: a series and a horizon in, the forecast with its prediction interval out.

Pick a series (each listed with the model its backtest selected) and how many steps ahead, up to
the trained horizon. The chart shows the end of the series' history, the forecast and its
interval; the points are listed below it. Without more input the forecast is the one made at
training time from the end of the series. Paste or upload newer points (CSV with a `ds,y`
header, read by `forecast.dashboard.history_csv`) and the forecast is conditioned on them,
starting after the last one. A CSV that does not hold such points gets an error naming the
problem; points off the series' time grid are refused by the model itself, with its message.

With `API_URL` set the request goes to the API's `/predict`; otherwise the same
`ForecastPredictor` answers in-process. The forecasting functions are plain functions, so tests
call them directly as well as through the page.
"""

from __future__ import annotations

from typing import Any

import altair as alt
import pandas as pd
import streamlit as st
from pydantic import ValidationError

from common.dashboard import ApiCallError, api_url, post_json, show_api_error
from common.errors import InputError, UserError
from forecast.dashboard import forecast_predictor, when
from forecast.dashboard.history_csv import recent_points
from forecast.serve import ForecastPredictor, ForecastRequest, ForecastResponse

#: Widget keys are "forecast.<name>", so tests (and session state) can address each one.
FORM = "forecast"
#: History drawn before the forecast: this many seasons, or two horizons where that is longer.
SEASONS_SHOWN = 4
#: The chart's parts, in legend order, and their colours.
PARTS = ["history", "your points", "forecast"]
COLOURS = ["#333333", "#e45756", "#4c78a8"]
PLACEHOLDER = "ds,y\n2024-01-01,120.5\n2024-01-02,118.0"


def request_payload(series_id: str, horizon: int, history: pd.DataFrame | None) -> dict[str, Any]:
    """The `/predict` request body, as the API documents it."""
    rows = [] if history is None else history.itertuples(index=False)
    points = [{"ds": ds.isoformat(), "y": float(y)} for ds, y in rows]
    return {"series_id": series_id, "horizon": horizon, "history": points}


def forecast_in_process(predictor: ForecastPredictor, payload: dict[str, Any]) -> ForecastResponse:
    """The in-process model's answer, through the API's own request model; InputError naming
    the problem (say, a point off the series' grid)."""
    return predictor.predict(ForecastRequest.model_validate(payload))


def forecast_with_api(url: str, payload: dict[str, Any]) -> ForecastResponse:
    """The API's answer; ApiCallError with its message for a bad request or no API."""
    return ForecastResponse.model_validate(post_json(url, "/predict", payload))


def points_frame(response: ForecastResponse) -> pd.DataFrame:
    columns = ["ds", "yhat", "yhat_lower", "yhat_upper"]
    return pd.DataFrame([p.model_dump() for p in response.points], columns=columns)


def chart_frame(history: pd.DataFrame, recent: pd.DataFrame | None, points: pd.DataFrame,
                tail: int) -> pd.DataFrame:  # fmt: skip
    """The chart's one table: the last `tail` points of the history, the user's points and the
    forecast with its interval; `part` says which row is which."""
    parts = [history.iloc[-tail:].assign(part="history")]
    if recent is not None:
        parts.append(recent.assign(part="your points"))
    parts.append(points.rename(columns={"yhat": "y"}).assign(part="forecast"))
    columns = ["ds", "y", "yhat_lower", "yhat_upper", "part"]
    return pd.concat(parts, ignore_index=True).reindex(columns=columns)


def forecast_chart(frame: pd.DataFrame, title: str) -> alt.LayerChart:
    """History and forecast as lines, the interval as a band around the forecast."""
    base = alt.Chart(frame).encode(x=alt.X("ds:T", title=None))
    shown = [(p, c) for p, c in zip(PARTS, COLOURS, strict=True) if p in set(frame["part"])]
    scale = alt.Scale(domain=[p for p, _ in shown], range=[c for _, c in shown])
    colour = alt.Color("part:N", title=None, scale=scale)  # no "your points" in the legend
    band = (
        base.transform_filter(alt.datum.part == "forecast")
        .mark_area(opacity=0.25)
        .encode(y="yhat_lower:Q", y2="yhat_upper:Q", color=colour)
    )
    lines = base.mark_line(point=alt.OverlayMarkDef(size=12)).encode(
        y=alt.Y("y:Q", title="value", scale=alt.Scale(zero=False)),
        color=colour,
        tooltip=[alt.Tooltip("ds:T", title="time"), "part", alt.Tooltip("y:Q", format=",.2f"),
                 alt.Tooltip("yhat_lower:Q", format=",.2f", title="lower"),
                 alt.Tooltip("yhat_upper:Q", format=",.2f", title="upper")],
    )  # fmt: skip
    # The legend is shared by both layers: opaque swatches, not faded to the band's opacity.
    return alt.layer(band, lines).properties(title=title).configure_legend(symbolOpacity=1)


def show_forecast(predictor: ForecastPredictor, series_id: str, recent: pd.DataFrame | None,
                  response: ForecastResponse) -> None:  # fmt: skip
    points = points_frame(response)
    model, start, level = st.columns(3)
    model.metric("Model", response.model,
                 help="The model this series' backtest selected (lowest error).")  # fmt: skip
    start.metric("Forecast from", when(pd.Timestamp(points["ds"].iloc[0])),
                 help="The first step: after the last known point.")  # fmt: skip
    level.metric(
        "Interval",
        f"{response.level:.0%}",
        help="Nominal coverage of the band: the share of actuals it should hold.",
    )
    tail = max(SEASONS_SHOWN * int(predictor.manifest.extra["season"]), 2 * predictor.horizon)
    frame = chart_frame(predictor.models[series_id].history_, recent, points, tail)
    title = f"{series_id}: {len(points)} steps ahead by {response.model}"
    st.altair_chart(forecast_chart(frame, title), width="stretch")
    with st.expander(f"The {len(points)} forecast points"):
        number = {c: st.column_config.NumberColumn(format="%.2f") for c in points.columns[1:]}
        st.dataframe(points, hide_index=True, width="stretch", column_config=number)


def render() -> None:
    predictor = forecast_predictor()  # the series and their history, in API mode too
    url = api_url()
    st.title("Forecast")
    source = f"from the API at {url}" if url else "computed in-process"
    st.caption(
        f"{len(predictor.ids)} series of `{predictor.freq}` data, each forecast by the model "
        f"its backtest selected, with intervals of nominal {predictor.level:.0%} coverage. "
        f"Forecasts are {source}."
    )
    pick, ahead = st.columns([2, 1])
    series_id = pick.selectbox("Series", predictor.ids, key=f"{FORM}.series",
                               format_func=lambda s: f"{s} ({predictor.selected[s]})",
                               help="With the model its backtest selected.")  # fmt: skip
    horizon = ahead.slider("Horizon (steps ahead)", 1, predictor.horizon, predictor.horizon,
                           key=f"{FORM}.horizon",
                           help="At most the trained horizon: the backtest measured error that "
                           "far, not further.")  # fmt: skip
    with st.expander("Condition on recent points (optional)"):
        pasted = st.text_area("Points as CSV", placeholder=PLACEHOLDER, key=f"{FORM}.pasted",
                              help="Newer points of the series (or corrections): the forecast "
                              "starts after the last one. Apply with Ctrl+Enter.")  # fmt: skip
        upload = st.file_uploader("…or upload a CSV file", type=["csv", "txt"],
                                  key=f"{FORM}.upload")  # fmt: skip
    try:
        recent = recent_points(upload, pasted, series_id)
    except UserError as exc:
        st.error(f"Cannot use these points: {exc}")
        return
    payload = request_payload(series_id, int(horizon), recent)
    try:
        response = (forecast_with_api(url, payload) if url is not None
                    else forecast_in_process(predictor, payload))  # fmt: skip
    except InputError as exc:
        st.error(f"Cannot forecast {series_id}: {exc.message}")
        return
    except ApiCallError as exc:
        show_api_error(exc)
        return
    except ValidationError as exc:  # a request in-process, or an answer of odd shape
        st.error(f"No forecast for {series_id}: {exc}")
        return
    show_forecast(predictor, series_id, recent, response)


# Streamlit runs this file as the page's script; importing it runs nothing.
if __name__ == "__main__":
    render()
