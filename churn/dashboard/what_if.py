"""What-if page: one customer, edited by hand, and what the model makes of them.

The form has one input per field of the request schema (the customer ID aside), filled with a
typical high-risk customer (`churn.serve.EXAMPLES[0]`). On submit it shows the churn
probability, the decision at the saved threshold, the risk band and the reason codes: the three
fields that push this customer's log-odds furthest, as a chart. With `API_URL` set, the
prediction comes from the API's `/predict`; otherwise from the same `ChurnPredictor` in-process.
"""

from __future__ import annotations

from typing import Any

import altair as alt
import pandas as pd
import streamlit as st
from pydantic import ValidationError

from churn.dashboard import churn_predictor
from churn.schema import KEY
from churn.serve import EXAMPLES, REQUEST_SCHEMA, ChurnPrediction, ChurnPredictor, CustomerRecord
from common.dashboard import ApiCallError, api_url, post_json, schema_input, show_api_error

#: Widget keys are "what_if.<field>", so tests (and session state) can address each field.
FORM = "what_if"
COLUMNS = 3
RAISES, LOWERS = "raises the risk", "lowers the risk"


def render() -> None:
    st.title("What-if: one customer")
    url = api_url()
    # Predicting in-process needs a model: say so before the form is filled in, not after.
    predictor = None if url else churn_predictor()
    source = f"from the API at {url}" if url else "computed in-process"
    st.caption(f"Change any field and press **Predict**. Predictions are {source}.")

    with st.form(FORM):
        values = customer_inputs()
        submitted = st.form_submit_button("Predict", type="primary")
    if not submitted:
        return
    try:
        prediction = predict(values, url, predictor)
    except ApiCallError as exc:
        show_api_error(exc)
        return
    except ValidationError as exc:  # the form's values in-process, or an answer of odd shape
        st.error(f"No prediction: {exc}")
        return
    show_prediction(prediction)


def customer_inputs() -> dict[str, Any]:
    """One input per request field but the ID, in columns; returns the values entered."""
    defaults = EXAMPLES[0]
    columns = st.columns(COLUMNS)
    values: dict[str, Any] = {}
    for i, column in enumerate(c for c in REQUEST_SCHEMA.columns if c.name != KEY):
        with columns[i % COLUMNS]:
            values[column.name] = schema_input(
                column, defaults.get(column.name), key=f"{FORM}.{column.name}"
            )
    return values


def predict(
    values: dict[str, Any], url: str | None, predictor: ChurnPredictor | None
) -> ChurnPrediction:
    """One prediction, from the API if `url` is set, else from `predictor`."""
    if url is not None:
        return ChurnPrediction.model_validate(post_json(url, "/predict", values))
    assert predictor is not None, "in-process predictions need a predictor"
    return predictor.predict(CustomerRecord.model_validate(values))


def show_prediction(prediction: ChurnPrediction) -> None:
    probability, decision, band = st.columns(3)
    probability.metric("Churn probability", f"{prediction.churn_probability:.1%}")
    decision.metric(
        "Decision",
        "Contact" if prediction.churn else "No action",
        help="At the decision threshold saved with the model, chosen to minimise the cost of "
        "missed churners plus retention offers.",
    )
    band.metric("Risk band", prediction.risk_band)
    if prediction.reasons:
        st.subheader("Why")
        st.altair_chart(reasons_chart(prediction), width="stretch")
        st.caption(
            "Each bar is a field's contribution to this customer's log-odds of churning (exact "
            "SHAP values): to the right it raises the risk, to the left it lowers it."
        )


def reasons_chart(prediction: ChurnPrediction) -> alt.Chart:
    """The reason codes as horizontal bars, labelled `field = value`, coloured by direction."""
    reasons = pd.DataFrame(
        {
            "reason": [f"{r.feature} = {_shown(r.value)}" for r in prediction.reasons],
            "contribution": [r.contribution for r in prediction.reasons],
        }
    )
    reasons["effect"] = [RAISES if c > 0 else LOWERS for c in reasons["contribution"]]
    return (
        alt.Chart(reasons)
        .mark_bar()
        .encode(
            x=alt.X("contribution:Q", title="contribution to the log-odds of churning"),
            # Keep the order (largest first) and room for labels like "PaymentMethod = ...".
            y=alt.Y("reason:N", sort=None, title=None, axis=alt.Axis(labelLimit=400)),
            color=alt.Color(
                "effect:N",
                scale=alt.Scale(domain=[RAISES, LOWERS], range=["#d62728", "#2ca02c"]),
                legend=alt.Legend(title=None, orient="bottom"),
            ),
            tooltip=["reason", alt.Tooltip("contribution:Q", format="+.3f")],
        )
    )


def _shown(value: str | float | None) -> str:
    """A reason's value as a person reads it: 2.0 months is "2", a missing value "missing"."""
    if value is None:
        return "missing"
    if isinstance(value, float):
        return f"{value:.10g}"
    return value


# Streamlit runs this file as the page's script; importing it runs nothing.
if __name__ == "__main__":
    render()
