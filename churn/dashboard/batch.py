"""Batch scoring page: upload a CSV of customers, get every one scored, download the result.

The file is checked against the request schema first, and if anything is wrong nothing is
scored: every problem is listed with its column, its (1-based) rows and example values, so one
upload tells the user all there is to fix. A `Churn` label column, as in a training file, is
ignored. The scored table has one row per customer, in order: probability, decision, risk band
and three reason codes; above it, how many customers fall in each risk band and how many the
model would contact.

With `API_URL` set the file is scored by the API's `/invocations` (CSV in, CSV out); otherwise
in-process by the same `ChurnPredictor`. The scoring functions are plain functions of bytes, so
tests call them directly as well as through the page.
"""

from __future__ import annotations

import io
from pathlib import Path

import altair as alt
import pandas as pd
import streamlit as st

from churn.dashboard import churn_predictor
from churn.serve import EXAMPLES, REQUEST_SCHEMA, ChurnPredictor
from common.dashboard import ApiCallError, api_url, post_csv, show_api_error, show_problems
from common.errors import DataValidationError, UserError
from common.schema import validate

BANDS = ("low", "medium", "high")


def read_upload(data: bytes, source: str) -> pd.DataFrame:
    """CSV bytes as a frame of text, so that validation, not the parser, judges every value
    (and reports it with its row); UserError if the file is not CSV at all."""
    try:
        return pd.read_csv(io.BytesIO(data), dtype=str, keep_default_na=False)
    except pd.errors.EmptyDataError:
        raise UserError(f"{source} is empty") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise UserError(f"{source} is not a readable CSV file: {exc}") from None


def score_in_process(predictor: ChurnPredictor, data: bytes, source: str) -> pd.DataFrame:
    """Validate and score a CSV; DataValidationError with every problem if any."""
    table = validate(read_upload(data, source), REQUEST_SCHEMA, source=source, allow_extra=True)
    return predictor.predict_table(table)


def score_with_api(url: str, data: bytes, source: str) -> pd.DataFrame:
    """Score a CSV through the API's `/invocations`; ApiCallError with its problems if any."""
    return post_csv(url, "/invocations", request_body(data, source))


def request_body(data: bytes, source: str) -> bytes:
    """The CSV to send to the API. The API refuses columns outside its schema, so the label
    (and any other extra column) is dropped here, as in-process validation would drop it."""
    frame = read_upload(data, source)
    extra = [c for c in frame.columns if c not in REQUEST_SCHEMA.names]
    if not extra:
        return data
    return frame.drop(columns=extra).to_csv(index=False).encode()


def band_counts(scored: pd.DataFrame) -> pd.DataFrame:
    """Customers per risk band, low to high (bands with none included)."""
    counts = scored["risk_band"].value_counts().reindex(list(BANDS), fill_value=0)
    return pd.DataFrame({"risk band": list(BANDS), "customers": counts.to_numpy()})


def reason_values(scored: pd.DataFrame) -> list[str]:
    """The names of the reason-value columns (`reason_1_value`, ...)."""
    return [c for c in scored.columns if c.startswith("reason_") and c.endswith("_value")]


def readable(value: object) -> object:
    """A reason value for people: numbers to two decimals at most ("72.0" -> "72")."""
    try:
        number = float(str(value))
    except ValueError:
        return value  # a category
    return f"{number:.2f}".rstrip("0").rstrip(".")


def render() -> None:
    st.title("Batch scoring")
    url = api_url()
    predictor = None if url else churn_predictor()
    st.caption(
        "One customer per line with a header naming the columns: "
        + ", ".join(f"`{name}`" for name in REQUEST_SCHEMA.names)
        + ". The customer ID is optional; a `Churn` column is ignored."
    )
    st.download_button(
        "Download an example file",
        pd.DataFrame(EXAMPLES).to_csv(index=False),
        file_name="churn-customers-example.csv",
        mime="text/csv",
    )
    upload = st.file_uploader("Customers (CSV)", type="csv")
    if upload is None:
        return

    data = upload.getvalue()
    try:
        if url is not None:
            scored = score_with_api(url, data, upload.name)
        else:
            assert predictor is not None, "in-process scoring needs a predictor"
            scored = score_in_process(predictor, data, upload.name)
    except DataValidationError as exc:
        show_problems(exc)
        return
    except ApiCallError as exc:
        show_api_error(exc)
        return
    except UserError as exc:
        st.error(str(exc))
        return
    show_scores(scored, Path(upload.name).stem)


def show_scores(scored: pd.DataFrame, stem: str) -> None:
    counts = band_counts(scored)
    flagged = int(scored["churn"].sum())
    customers, contact, bands = st.columns([1, 1, 2])
    customers.metric("Customers scored", f"{len(scored):,}")
    contact.metric("To contact", f"{flagged:,}", help="At the threshold saved with the model.")
    contact.caption(f"{flagged / len(scored):.1%} of the file")
    bands.altair_chart(
        alt.Chart(counts)
        .mark_bar()
        .encode(
            x=alt.X("customers:Q"),
            y=alt.Y("risk band:N", sort=list(BANDS)),
            color=alt.Color(
                "risk band:N",
                scale=alt.Scale(domain=list(BANDS), range=["#2ca02c", "#ff7f0e", "#d62728"]),
                legend=None,
            ),
            tooltip=["risk band", "customers"],
        ),
        height=140,
        width="stretch",
    )
    shown = scored.assign(**{c: scored[c].map(readable) for c in reason_values(scored)})
    st.dataframe(
        shown,
        hide_index=True,
        column_config={
            "churn_probability": st.column_config.ProgressColumn(
                "churn probability", format="percent", min_value=0.0, max_value=1.0
            )
        },
    )
    st.download_button(
        "Download the scores (CSV)",
        scored.to_csv(index=False),
        file_name=f"{stem}-scored.csv",
        mime="text/csv",
        type="primary",
    )


# Streamlit runs this file as the page's script; importing it runs nothing.
if __name__ == "__main__":
    render()
