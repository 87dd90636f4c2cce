"""Threshold explorer page: what each decision threshold would cost, at the prices you set.

The model contacts every customer whose churn probability reaches the threshold. Each contact
costs a retention offer; each churner not contacted costs the revenue lost. Training chose the
threshold for the prices in its config; this page re-prices the decision for others. It reads
the test split's cost curve saved in the artifact (`explanations/cost_curve.csv`: customers
contacted, churners caught and missed at each threshold), so no data or model is needed:
cost = missed x cost of a missed churner + contacted x cost of an offer.
"""

from __future__ import annotations

import altair as alt
import pandas as pd
import streamlit as st

from churn.calibration import cheapest, total_cost
from churn.config import ChurnConfig
from churn.dashboard import churn_predictor
from common.dashboard import read_report, stop_with_error

CURVE = "cost_curve"


def reprice(curve: pd.DataFrame, cost_missed: float, cost_offer: float) -> pd.DataFrame:
    """The cost curve with `cost` recomputed for other prices (its counts do not depend on
    them)."""
    cost = total_cost(curve["missed"], curve["contacted"], cost_missed=cost_missed,
                      cost_offer=cost_offer)  # fmt: skip
    return curve.assign(cost=cost)


def nearest(curve: pd.DataFrame, threshold: float) -> pd.Series:
    """The row whose threshold is closest to `threshold` (the curve steps by 0.01)."""
    return curve.loc[(curve["threshold"] - threshold).abs().idxmin()]


def render() -> None:
    predictor = churn_predictor()
    st.title("Threshold explorer")
    report = read_report(predictor.path)
    if CURVE not in report.tables:
        stop_with_error(f"This artifact has no `explanations/{CURVE}.csv`; retrain the model.")
    saved_curve = pd.read_csv(report.tables[CURVE])
    config = ChurnConfig(**predictor.manifest.config)

    missed_col, offer_col = st.columns(2)
    cost_missed = missed_col.slider(
        "Cost of a missed churner",
        min_value=1.0,
        max_value=max(2000.0, 4 * config.cost_missed_churner),
        value=float(config.cost_missed_churner),
        step=10.0,
        format="%.0f",
        key="threshold.cost_missed",
        help="Revenue lost when a customer who was going to leave is not contacted.",
    )
    cost_offer = offer_col.slider(
        "Cost of a retention offer",
        min_value=1.0,
        max_value=max(500.0, 4 * config.cost_retention_offer),
        value=float(config.cost_retention_offer),
        step=5.0,
        format="%.0f",
        key="threshold.cost_offer",
        help="What one offer costs, paid for every customer contacted, churner or not.",
    )

    curve = reprice(saved_curve, cost_missed, cost_offer)
    best, saved = cheapest(curve), nearest(curve, predictor.threshold)
    n = report.metrics.get("n_rows")
    gap = saved["cost"] - best["cost"]

    best_col, best_cost_col, saved_cost_col = st.columns(3)
    best_col.metric("Cost-optimal threshold", f"{best['threshold']:.2f}")
    best_cost_col.metric(
        "Expected cost at the optimum",
        f"{best['cost']:,.0f}",
        help=f"{best['cost'] / n:,.2f} per test customer" if n else None,
    )
    saved_cost_col.metric(
        f"Expected cost at the saved threshold ({predictor.threshold:.2f})",
        f"{saved['cost']:,.0f}",
        delta=f"{gap:+,.0f} vs. the optimum" if gap else None,
        delta_color="inverse",  # more cost is worse: red
    )
    if best["contacted"]:
        outcome = (
            f"contacts {best['contacted']:,.0f} customers, catching {best['recall']:.0%} of "
            f"churners with a precision of {best['precision']:.0%}"
        )
    else:
        outcome = "contacts no one: at these prices no offer pays for itself"
    st.caption(
        f"On the {f'{n:,} ' if n else ''}test customers, at {best['threshold']:.2f} the model "
        f"{outcome}. The saved threshold was chosen on the calibration split, so at the "
        "training prices it may differ slightly from this optimum."
    )

    marks = pd.DataFrame(
        {
            "threshold": [predictor.threshold, best["threshold"]],
            "line": [f"saved {predictor.threshold:.2f}", f"optimal {best['threshold']:.2f}"],
        }
    )
    st.altair_chart(cost_chart(curve, marks), width="stretch")
    st.altair_chart(rates_chart(curve, marks), width="stretch")


def _rules(marks: pd.DataFrame) -> alt.Chart:
    """Vertical lines at the saved (grey) and the optimal (red) threshold."""
    colours = alt.Scale(domain=marks["line"].tolist(), range=["#7f7f7f", "#d62728"])
    return (
        alt.Chart(marks)
        .mark_rule(strokeDash=[6, 3])
        .encode(x="threshold:Q", color=alt.Color("line:N", scale=colours, title=None))
    )


def cost_chart(curve: pd.DataFrame, marks: pd.DataFrame) -> alt.LayerChart:
    line = (
        alt.Chart(curve, title="Expected cost on the test split")
        .mark_line()
        .encode(
            x=alt.X("threshold:Q", title="decision threshold"),
            y=alt.Y("cost:Q", title="cost"),
            tooltip=["threshold", alt.Tooltip("cost:Q", format=",.0f"), "contacted", "missed"],
        )
    )
    return alt.layer(line, _rules(marks))


def rates_chart(curve: pd.DataFrame, marks: pd.DataFrame) -> alt.LayerChart:
    rates = curve.melt("threshold", ["precision", "recall"], var_name="rate", value_name="value")
    lines = (
        alt.Chart(rates, title="Precision and recall")
        .mark_line()
        .encode(
            x=alt.X("threshold:Q", title="decision threshold"),
            y=alt.Y("value:Q", title=None, axis=alt.Axis(format="%")),
            strokeDash=alt.StrokeDash("rate:N", title=None),
            tooltip=["threshold", "rate", alt.Tooltip("value:Q", format=".1%")],
        )
    )
    # Separate colour scales: the rules' colours must not be shared with the rate lines.
    return alt.layer(lines, _rules(marks)).resolve_scale(color="independent")


# Streamlit runs this file as the page's script; importing it runs nothing.
if __name__ == "__main__":
    render()
