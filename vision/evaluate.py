"""Evaluating a vision model: metrics, confusion matrix, reliability, the worst mistakes, and the
model card.

Everything is computed from calibrated probabilities on the validation images and lands in the
artifact: `metrics.json`, `plots/*.png`, `mistakes.json` (the most confident wrong answers, for
the dashboard's gallery) and `model_card.md`. Plots use matplotlib's object API (`Figure`),
which needs no display and touches no global pyplot state.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from sklearn.metrics import confusion_matrix, log_loss, precision_recall_fscore_support

from vision.calibration import top_label_ece
from vision.data import Item
from vision.images import decode

N_MISTAKES = 16


def metrics(probabilities: np.ndarray, labels: np.ndarray, classes: list[str]) -> dict[str, Any]:
    """Accuracy, per-class precision/recall/F1, macro averages, log loss and top-label ECE."""
    predicted = probabilities.argmax(axis=1)
    index = list(range(len(classes)))
    precision, recall, f1, support = precision_recall_fscore_support(
        labels, predicted, labels=index, zero_division=0
    )
    per_class = {
        name: {"precision": float(precision[i]), "recall": float(recall[i]),
               "f1": float(f1[i]), "support": int(support[i])}
        for i, name in enumerate(classes)
    }  # fmt: skip
    return {
        "n_images": len(labels),
        "accuracy": float((predicted == labels).mean()),
        "macro_precision": float(precision.mean()),
        "macro_recall": float(recall.mean()),
        "macro_f1": float(f1.mean()),
        # No clipping here: sklearn clips to its dtype's eps itself, and clipping zeros up to a
        # larger floor made rows sum to more than one, which sklearn warns about on every run.
        "log_loss": float(log_loss(labels, probabilities, labels=index)),
        "ece": top_label_ece(probabilities, labels),
        "mean_confidence": float(probabilities.max(axis=1).mean()),
        "per_class": per_class,
        "confusion_matrix": confusion_matrix(labels, predicted, labels=index).tolist(),
    }


def worst_mistakes(
    probabilities: np.ndarray, labels: np.ndarray, items: list[Item], classes: list[str],
    n: int = N_MISTAKES,
) -> list[dict[str, Any]]:  # fmt: skip
    """The wrong answers the model was surest of, most confident first."""
    predicted = probabilities.argmax(axis=1)
    wrong = np.flatnonzero(predicted != labels)
    order = wrong[np.argsort(-probabilities[wrong, predicted[wrong]])][:n]
    return [
        {"path": str(items[i].path), "true": classes[labels[i]],
         "predicted": classes[predicted[i]],
         "confidence": float(probabilities[i, predicted[i]]),
         "true_probability": float(probabilities[i, labels[i]])}
        for i in order
    ]  # fmt: skip


def write_report(
    out: Path,
    probabilities: np.ndarray,
    labels: np.ndarray,
    items: list[Item],
    classes: list[str],
    *,
    history: list[dict[str, float]],
    uncalibrated: np.ndarray | None = None,
) -> dict[str, Any]:
    """metrics.json, mistakes.json and the plots in `out`; returns the metrics."""
    result = metrics(probabilities, labels, classes)
    if uncalibrated is not None:
        result["ece_before_temperature"] = top_label_ece(uncalibrated, labels)
    mistakes = worst_mistakes(probabilities, labels, items, classes)
    (out / "metrics.json").write_text(json.dumps(result, indent=2))
    (out / "mistakes.json").write_text(json.dumps(mistakes, indent=2))
    plots = out / "plots"
    plots.mkdir(parents=True, exist_ok=True)
    plot_confusion(np.array(result["confusion_matrix"]), classes).savefig(plots / "confusion.png")
    plot_reliability(probabilities, labels, uncalibrated).savefig(plots / "reliability.png")
    if history:
        plot_history(history).savefig(plots / "training.png")
    if mistakes:
        plot_mistakes(mistakes).savefig(plots / "mistakes.png")
    return result


def plot_confusion(matrix: np.ndarray, classes: list[str]) -> Figure:
    n = len(classes)
    fig = Figure(figsize=(max(4.0, 1.2 + 0.6 * n), max(3.5, 1 + 0.6 * n)), layout="constrained")
    ax = fig.subplots()
    shares = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    for (r, c), count in np.ndenumerate(matrix):
        ax.text(c, r, str(count), ha="center", va="center",
                color="white" if shares[r, c] > 0.5 else "black")  # fmt: skip
    ax.set(xticks=range(len(classes)), yticks=range(len(classes)), xlabel="predicted",
           ylabel="true", title="Confusion matrix (validation)")  # fmt: skip
    ax.set_xticklabels(classes, rotation=45, ha="right")
    ax.set_yticklabels(classes)
    return fig


def plot_reliability(
    probabilities: np.ndarray, labels: np.ndarray, uncalibrated: np.ndarray | None
) -> Figure:
    """Accuracy per confidence bin: on the diagonal is calibrated."""
    fig = Figure(figsize=(5, 4.5), layout="constrained")
    ax = fig.subplots()
    ax.plot([0, 1], [0, 1], ls="--", color="grey", label="perfectly calibrated")
    series = [("after temperature scaling", probabilities)]
    if uncalibrated is not None:
        series.insert(0, ("before", uncalibrated))
    for name, p in series:
        confidence, correct = p.max(axis=1), p.argmax(axis=1) == labels
        bins = np.minimum((confidence * 10).astype(int), 9)
        xs = [confidence[bins == b].mean() for b in range(10) if (bins == b).any()]
        ys = [correct[bins == b].mean() for b in range(10) if (bins == b).any()]
        ax.plot(xs, ys, marker="o", label=name)
    ax.set(xlabel="confidence", ylabel="accuracy", xlim=(0, 1), ylim=(0, 1.02),
           title="Reliability (validation)")  # fmt: skip
    ax.legend(loc="upper left")
    return fig


def plot_history(history: list[dict[str, float]]) -> Figure:
    fig = Figure(figsize=(8, 3.2), layout="constrained")
    loss_ax, acc_ax = fig.subplots(1, 2)
    epochs = [h["epoch"] for h in history]
    for key in ("train", "val"):
        loss_ax.plot(epochs, [h[f"{key}_loss"] for h in history], marker="o", label=key)
        acc_ax.plot(epochs, [h[f"{key}_accuracy"] for h in history], marker="o", label=key)
    head_epochs = [h["epoch"] for h in history if h["phase"] == 1]
    for ax in (loss_ax, acc_ax):
        if head_epochs:
            ax.axvspan(0.5, max(head_epochs) + 0.5, color="grey", alpha=0.15, label="head only")
        ax.set_xlabel("epoch")
        ax.legend()
    loss_ax.set_title("loss")
    acc_ax.set_title("accuracy")
    return fig


def plot_mistakes(mistakes: list[dict[str, Any]], columns: int = 4) -> Figure:
    """A grid of the most confident mistakes, each titled true -> predicted (confidence)."""
    rows = -(-len(mistakes) // columns)
    fig = Figure(figsize=(2.6 * columns, 2.8 * rows), layout="constrained")
    axes = np.atleast_1d(fig.subplots(rows, columns)).ravel()
    for ax in axes:
        ax.axis("off")
    for ax, m in zip(axes, mistakes, strict=False):
        ax.imshow(decode(Path(m["path"]).read_bytes()).permute(1, 2, 0).numpy())
        ax.set_title(f"{m['true']} → {m['predicted']}\n({m['confidence']:.0%})", fontsize=9)
    fig.suptitle("Most confident mistakes (validation)")
    return fig


def write_model_card(out: Path, version: str, info: dict[str, Any]) -> None:
    m, cfg = info["metrics"], info["config"]
    per_class = "\n".join(
        f"| {name} | {v['precision']:.3f} | {v['recall']:.3f} | {v['f1']:.3f} | {v['support']} |"
        for name, v in m["per_class"].items()
    )
    counts = ", ".join(f"{k}: {v}" for k, v in info["counts"]["train"].items())
    text = f"""# Model card: vision {version}

## What it does
Classifies an image into one of {len(info["classes"])} classes: {", ".join(info["classes"])}.
Probabilities are calibrated by temperature scaling (T = {info["temperature"]:.3f}).

## How it was trained
- Backbone: `{cfg["backbone"]}`, weights: `{cfg["weights"]}`; input {info["image_size"]} px.
- Data: `{info["data"]}` (fingerprint `{info["data_fingerprint"]}`); train images per class:
  {counts}; imbalance ratio {info["imbalance"]:.2f}{" (loss weighted)" if info["weighted"] else ""}.
- {cfg["head_epochs"]} epoch(s) training the head, then up to {cfg["finetune_epochs"]} fine-tuning
  all layers (AdamW, warm-up + cosine, label smoothing {cfg["label_smoothing"]}, early stopping
  on validation loss); {info["epochs_run"]} epochs run on `{info["device"]}`.

## How well it does (validation, {m["n_images"]} images)
| metric | value |
|---|---|
| accuracy | {m["accuracy"]:.3f} |
| macro F1 | {m["macro_f1"]:.3f} |
| log loss | {m["log_loss"]:.3f} |
| ECE (top label) | {m["ece"]:.3f} (before temperature scaling: {m.get("ece_before_temperature", float("nan")):.3f}) |

| class | precision | recall | F1 | images |
|---|---|---|---|---|
{per_class}

Plots: `plots/confusion.png`, `plots/reliability.png`, `plots/training.png`,
`plots/mistakes.png`. ONNX export parity: max |logit difference| {info["onnx_max_abs_diff"]:.1e}.

## Limits
- The validation split is also what early stopping and temperature scaling looked at, so these
  numbers are slightly optimistic; hold out a test folder for a number to report.
- It only knows these classes: any image gets one of them. Watch the low-confidence rate
  (`make monitor-vision`) for inputs unlike the training data.
"""  # noqa: E501
    (out / "model_card.md").write_text(text)
