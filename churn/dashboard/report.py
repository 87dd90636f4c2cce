"""Model report page: how good the model is, as measured when it was trained.

Headline test metrics at the saved decision threshold, the confusion matrix, the evaluation
curves, the global feature importance and the model card, all read from the artifact's files
(`metrics.json`, `plots/`, `explanations/importance.csv`, `model_card.md`). Nothing is
recomputed, so the page shows exactly what training measured on the held-out test split.
"""

from __future__ import annotations

from typing import Any

import altair as alt
import pandas as pd
import streamlit as st

from churn.dashboard import churn_predictor
from common.dashboard import Report, plot_tabs, read_report

# (key in metrics.json, label, format, what it means); `{t}` is the saved decision threshold.
HEADLINE = [
    ("roc_auc", "ROC-AUC", "{:.3f}",
     "How often a churner is ranked above a customer who stays; 0.5 is chance."),
    ("pr_auc", "PR-AUC", "{:.3f}",
     "Precision averaged over every recall level; chance is the churn rate."),
    ("brier", "Brier score", "{:.3f}",
     "Mean squared error of the probabilities: lower means better calibrated and sharper."),
    ("precision", "Precision at {t}", "{:.1%}",
     "Of the customers the model would contact, the share who were about to churn."),
    ("recall", "Recall at {t}", "{:.1%}", "Of the customers who churned, the share contacted."),
    ("cost_per_customer", "Cost per customer", "{:,.2f}",
     "Missed churners plus retention offers, at the training prices, per test customer."),
]  # fmt: skip
CURVES = {
    "roc": "ROC",
    "pr": "Precision-recall",
    "calibration": "Calibration",
    "lift": "Lift",
    "cost": "Cost",
}
TOP_FEATURES = 15


def render() -> None:
    predictor = churn_predictor()
    manifest = predictor.manifest
    report = read_report(predictor.path)
    # The test split's metrics: metrics.json, which the manifest repeats under "test".
    test: dict[str, Any] = report.metrics or manifest.metrics.get("test", {})

    st.title("Model report")
    family = manifest.extra.get("family", "model")
    st.caption(
        f"Churn model {manifest.version} ({family}), trained {manifest.created_at:%Y-%m-%d %H:%M} "
        f"UTC, decision threshold {predictor.threshold:.2f}. From `{predictor.path}`."
    )

    if "n_rows" in test:
        n, rate = test["n_rows"], test["base_rate"]
        st.subheader(f"Test split: {n:,} customers, churn rate {rate:.1%}")
    for column, (key, label, fmt, meaning) in zip(st.columns(len(HEADLINE)), HEADLINE, strict=True):
        value = fmt.format(test[key]) if key in test else "n/a"
        column.metric(label.format(t=f"{predictor.threshold:.2f}"), value, help=meaning)
    if "confusion" in test:
        show_confusion(test["confusion"], predictor.threshold)

    plot_tabs(report, CURVES, "Curves")
    show_importance(report)

    st.subheader("Model card")
    with st.container(border=True):
        st.markdown(report.model_card or "This artifact has no `model_card.md`.")


def show_confusion(confusion: dict[str, int], threshold: float) -> None:
    st.caption(f"Test customers by outcome and decision at threshold {threshold:.2f}")
    table = pd.DataFrame(
        {
            "predicted to stay": [confusion["tn"], confusion["fn"]],
            "predicted to churn": [confusion["fp"], confusion["tp"]],
        },
        index=pd.Index(["stayed", "churned"], name="actual"),
    )
    st.dataframe(table, width="content")


def show_importance(report: Report) -> None:
    """The mean |SHAP| of each field as bars: what moves predictions most, across customers."""
    if "importance" not in report.tables:
        return
    importance = pd.read_csv(report.tables["importance"]).head(TOP_FEATURES)
    st.subheader("What drives the predictions")
    chart = (
        alt.Chart(importance)
        .mark_bar()
        .encode(
            x=alt.X("mean_abs_contribution:Q", title="mean |contribution| (log-odds)"),
            y=alt.Y("feature:N", sort="-x", title=None, axis=alt.Axis(labelLimit=300)),
            tooltip=["feature", alt.Tooltip("mean_abs_contribution:Q", format=".3f")],
        )
    )
    st.altair_chart(chart, width="stretch")
    st.caption(
        "Average size of each field's contribution to a customer's log-odds of churning (exact "
        "SHAP values on up to 2,000 test customers). Large means influential, not causal."
    )


# Streamlit runs this file as the page's script; importing it runs nothing.
if __name__ == "__main__":
    render()
