"""Model report page: how good the model is, as measured on its validation images when trained.

Headline metrics (accuracy, macro F1, top-label calibration error after and before temperature
scaling, log loss), precision, recall and F1 per class, the confusion matrix, reliability and
training-curve plots, and the model card, all read from the artifact's files (`metrics.json`,
`plots/`, `model_card.md`, the manifest). Nothing is recomputed, so the page shows exactly what
training measured.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from common.dashboard import plot_tabs, read_report
from vision.dashboard import vision_predictor

# (key in metrics.json, label, format, what it means)
HEADLINE = [
    ("accuracy", "Accuracy", "{:.1%}", "Share of validation images whose top class is right."),
    ("macro_f1", "Macro F1", "{:.3f}",
     "F1 averaged over the classes, each weighing the same: a rare class counts as much as a "
     "common one."),
    ("ece", "ECE (calibrated)", "{:.3f}",
     "Expected calibration error of the top class after temperature scaling: the gap between "
     "confidence and accuracy, averaged over confidence bins. 0 is perfectly calibrated."),
    ("ece_before_temperature", "ECE before scaling", "{:.3f}",
     "The same error of the raw softmax, before temperature scaling: what it started from."),
    ("log_loss", "Log loss", "{:.3f}",
     "Mean negative log-probability of the true class: lower is better; it punishes confident "
     "mistakes hardest."),
]  # fmt: skip
PLOTS = {
    "confusion": "Confusion matrix",
    "reliability": "Reliability",
    "training": "Training curves",
}


def per_class_frame(metrics: dict[str, Any]) -> pd.DataFrame:
    """One row per class: precision, recall, F1 and the number of validation images."""
    rows = [{"class": name, **scores} for name, scores in metrics.get("per_class", {}).items()]
    return pd.DataFrame(rows, columns=["class", "precision", "recall", "f1", "support"])


def confusion_frame(metrics: dict[str, Any], classes: list[str]) -> pd.DataFrame | None:
    """The confusion matrix as counts, true classes down, predicted across; None if absent."""
    matrix = metrics.get("confusion_matrix")
    if not matrix or len(matrix) != len(classes):
        return None
    return pd.DataFrame(
        matrix,
        index=pd.Index(classes, name="true"),
        columns=pd.Index(classes, name="predicted"),
    )


def headline_value(metrics: dict[str, Any], key: str, fmt: str) -> str:
    value = metrics.get(key)
    return fmt.format(value) if isinstance(value, int | float) else "n/a"


def render() -> None:
    predictor = vision_predictor()
    manifest = predictor.manifest
    report = read_report(predictor.path)
    # metrics.json has it all (per class too); the manifest repeats the scalars under "val".
    val: dict[str, Any] = report.metrics or manifest.metrics.get("val", {})

    st.title("Model report")
    st.caption(
        f"Vision model {manifest.version} ({predictor.spec.backbone}, "
        f"{predictor.prep.image_size} px, {len(predictor.classes)} classes), trained "
        f"{manifest.created_at:%Y-%m-%d %H:%M} UTC; temperature T = "
        f"{predictor.spec.temperature:.2f}. From `{predictor.path}`."
    )
    if "n_images" in val:
        st.subheader(f"Validation split: {val['n_images']:,} images")

    columns = st.columns(len(HEADLINE))
    for column, (key, label, fmt, meaning) in zip(columns, HEADLINE, strict=True):
        delta = None
        if key == "ece" and isinstance(val.get("ece_before_temperature"), int | float):
            change = val["ece"] - val["ece_before_temperature"]
            delta = f"{change:+.3f} vs. before" if round(change, 3) else None
        # Less calibration error is better: a fall shows green.
        column.metric(label, headline_value(val, key, fmt), delta=delta, delta_color="inverse",
                      help=meaning)  # fmt: skip

    show_per_class(val, predictor.classes)
    plot_tabs(report, PLOTS, "Plots")

    st.subheader("Model card")
    with st.container(border=True):
        st.markdown(report.model_card or "This artifact has no `model_card.md`.")


def show_per_class(metrics: dict[str, Any], classes: list[str]) -> None:
    table = per_class_frame(metrics)
    confusion = confusion_frame(metrics, classes)
    if table.empty and confusion is None:
        return
    st.subheader("Per class")
    scores, counts = st.columns([3, 2])
    if not table.empty:
        scores.dataframe(
            table,
            hide_index=True,
            width="stretch",
            column_config={
                name: st.column_config.NumberColumn(format="%.3f")
                for name in ("precision", "recall", "f1")
            }
            | {"support": st.column_config.NumberColumn("images")},
        )
    if confusion is not None:
        counts.caption("Validation images by true (rows) and predicted (columns) class")
        counts.dataframe(confusion, width="stretch")


# Streamlit runs this file as the page's script; importing it runs nothing.
if __name__ == "__main__":
    render()
