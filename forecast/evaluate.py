"""Evaluating forecasters: the backtest's numbers for the manifest, plots, and the model card.

Every model is reported against seasonal naive (`relative_mase` below 1 beats it), and so is the
deployed combination: each series' selected model (`backtest.selected`). The selected model's
figures are optimistic, since the same windows chose it (and with seasonal naive a candidate,
it can never do worse than seasonal naive there); the per-model figures are not.
`held_out_selection` is the honest one, and the promotion gate: each window after the first,
forecast by the model chosen on the windows before it (`forecast.backtest.select_held_out`),
against seasonal naive on the same windows.
Plots use matplotlib's object API (`Figure`): no display, no global pyplot state.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from forecast.backtest import METRICS, summarise
from forecast.data import SeriesData
from forecast.frequency import describe

BASELINE = "seasonal_naive"
#: Forecast plots drawn for at most this many series (the dashboard shows any of them).
PLOTTED_SERIES = 4


def selected_points(backtest: pd.DataFrame, selected: Mapping[str, str]) -> pd.DataFrame:
    """The backtest points of each series' selected model."""
    chosen = backtest["model"] == backtest["series_id"].map(selected)
    return backtest[chosen]


def relative_mase(backtest: pd.DataFrame, model: str) -> float:
    """`model`'s MASE over seasonal naive's, on the series both were backtested on (a model
    that failed on some series is not compared with a yardstick that had all of them)."""
    series = backtest.groupby("model")["series_id"].unique()
    if BASELINE not in series or model not in series:
        return float("nan")
    shared = set(series[model]) & set(series[BASELINE])
    both = backtest[backtest["series_id"].isin(shared)]
    mase = summarise(both[both["model"].isin([model, BASELINE])], ["model"]).set_index("model")
    return float(mase.at[model, "mase"] / mase.at[BASELINE, "mase"])


def held_out_metrics(backtest: pd.DataFrame, held_out: pd.DataFrame) -> dict[str, float]:
    """The held-out selection's MASE, seasonal naive's on the same series and windows, their
    ratio and `skill` (1 - ratio: above 0 beats seasonal naive), and how many windows were
    scored. NaN when no series had two windows: then nothing was held out."""
    if held_out.empty:
        nan = float("nan")
        return {"mase": nan, "baseline_mase": nan, "relative_mase": nan, "skill": nan,
                "windows": 0}  # fmt: skip
    windows = held_out[["series_id", "cutoff"]].drop_duplicates()
    baseline = backtest[backtest["model"] == BASELINE].merge(windows, on=["series_id", "cutoff"])
    mase = float(summarise(held_out.assign(model="held_out"), ["model"])["mase"].iloc[0])
    base = float(summarise(baseline, ["model"])["mase"].iloc[0])
    return {"mase": mase, "baseline_mase": base, "relative_mase": mase / base,
            "skill": 1.0 - mase / base, "windows": len(windows)}  # fmt: skip


def summary_metrics(
    backtest: pd.DataFrame, scores: pd.DataFrame, selected: Mapping[str, str],
    models: Sequence[str], held_out: pd.DataFrame,
) -> dict[str, Any]:  # fmt: skip
    """`backtest.<model>.<metric>` pooled over every series' points, `relative_mase` against
    seasonal naive, the mean fit+backtest seconds per series, and how many series each model
    won; the same for `backtest.selected`; and `held_out_selection` (see `held_out_metrics`)."""
    table = summarise(backtest, by=["model"])
    table["relative_mase"] = [relative_mase(backtest, m) for m in table["model"]]
    seconds = scores.groupby("model")["seconds"].mean()
    wins = pd.Series(list(selected.values())).value_counts()
    out: dict[str, dict[str, float]] = {}
    for row in table.itertuples(index=False):
        out[row.model] = {m: float(getattr(row, m)) for m in (*METRICS, "relative_mase")}
        out[row.model] |= {
            "series": int(backtest.loc[backtest["model"] == row.model, "series_id"].nunique()),
            "seconds_per_series": float(seconds.get(row.model, np.nan)),
            "selected": int(wins.get(row.model, 0)),
        }
    chosen = selected_points(backtest, selected).assign(model="selected")
    table = summarise(chosen, ["model"])
    out["selected"] = {m: float(table[m].iloc[0]) for m in METRICS}
    out["selected"]["relative_mase"] = relative_mase(pd.concat([backtest, chosen]), "selected")
    for row in out.values():  # skill: how far below seasonal naive's MASE (0.1 = 10% below)
        row["skill"] = 1.0 - row.get("relative_mase", float("nan"))
    ordered = {m: out[m] for m in [*models, "selected"] if m in out}
    return {"backtest": ordered, "held_out_selection": held_out_metrics(backtest, held_out)}


def plot_models(metrics: Mapping[str, Any]) -> Figure:
    """MASE per model, seasonal naive marked: the bar to beat."""
    rows = {k: v for k, v in metrics["backtest"].items()}
    fig = Figure(figsize=(7, 3.5), layout="constrained")
    ax = fig.add_subplot()
    names = list(rows)
    colours = ["tab:gray" if n == BASELINE else "tab:green" if n == "selected" else "tab:blue"
               for n in names]  # fmt: skip
    ax.bar(names, [rows[n]["mase"] for n in names], color=colours)
    if BASELINE in rows:
        ax.axhline(rows[BASELINE]["mase"], color="tab:gray", linestyle="--", label=BASELINE)
        ax.legend()
    ax.set_ylabel("backtest MASE (lower is better)")
    ax.set_title("Every model against seasonal naive")
    return fig


def plot_steps(backtest: pd.DataFrame) -> Figure:
    """MASE by horizon step per model: how fast each model's error grows."""
    steps = summarise(backtest, by=["model", "step"])
    fig = Figure(figsize=(7, 3.5), layout="constrained")
    ax = fig.add_subplot()
    for model, group in steps.groupby("model", sort=False):
        ax.plot(group["step"], group["mase"], label=str(model), marker=".")
    ax.set_xlabel("steps ahead")
    ax.set_ylabel("MASE")
    ax.set_title("Error by horizon step")
    ax.legend(fontsize=8)
    return fig


def plot_forecast(history: pd.DataFrame, forecast: pd.DataFrame, title: str,
                  tail: int | None = None) -> Figure:  # fmt: skip
    """The end of the history, the forecast and its interval."""
    shown = history.iloc[-(tail or 4 * len(forecast)) :]
    fig = Figure(figsize=(8, 3.2), layout="constrained")
    ax = fig.add_subplot()
    ax.plot(shown["ds"], shown["y"], color="black", linewidth=1, label="history")
    ax.plot(forecast["ds"], forecast["yhat"], color="tab:blue", label="forecast")
    ax.fill_between(forecast["ds"], forecast["yhat_lower"], forecast["yhat_upper"],
                    color="tab:blue", alpha=0.2, label="interval")  # fmt: skip
    ax.set_title(title)
    ax.legend(fontsize=8)
    return fig


def write_plots(
    out: Path, data: SeriesData, backtest: pd.DataFrame, forecast: pd.DataFrame,
    selected: Mapping[str, str], metrics: Mapping[str, Any],
) -> None:  # fmt: skip
    plots = out / "plots"
    plots.mkdir(parents=True, exist_ok=True)
    plot_models(metrics).savefig(plots / "models.png", dpi=110)
    plot_steps(backtest).savefig(plots / "error_by_step.png", dpi=110)
    for i, sid in enumerate(data.ids[:PLOTTED_SERIES]):
        own = forecast[forecast["series_id"] == sid]
        fig = plot_forecast(data.series(sid), own, f"{sid}: {selected[sid]}")
        fig.savefig(plots / f"forecast_{i:02d}.png", dpi=110)


def write_model_card(out: Path, version: str, info: Mapping[str, Any],
                     metrics: Mapping[str, Any]) -> None:  # fmt: skip
    rows = "\n".join(
        f"| {name} | {m['mase']:.3f} | {m.get('relative_mase', float('nan')):.3f} | "
        f"{m['smape']:.2f} | {m['coverage']:.2f} | {m.get('selected', '')} |"
        for name, m in metrics["backtest"].items()
    )
    counts = ", ".join(f"{k} {v}" for k, v in info["selected_counts"].items())
    failures = info.get("failures") or {}
    held = metrics["held_out_selection"]
    card = f"""# Forecast model {version}

**What it is:** one model per series, chosen by rolling-origin backtest (lowest
{info["select_by"].upper()}) among the configured models and refitted on the whole series:
{len(info["series"])} {describe(info["freq"])} series, a {info["horizon"]}-step horizon,
intervals of nominal {info["level"]:.0%} coverage.

**Selected:** {counts}.

## Backtest

Every series; windows of {info["horizon"]} steps, every {info["period"]} steps, each fitted on
its past only (at least {info["initial"]} points).

| model | MASE | vs seasonal naive | sMAPE % | coverage | series won |
|---|---|---|---|---|---|
{rows}

MASE below 1 beats the in-sample seasonal naive forecast; "vs seasonal naive" below 1 beats the
seasonal naive *forecast* over the same windows. `selected` is optimistic: the same windows chose
it. Held out (each window after the first forecast by the model chosen on the windows before
it; the promotion gate), over {held["windows"]} windows: MASE {held["mase"]:.3f},
{held["relative_mase"]:.3f} of seasonal naive's. Published comparisons (the M4 competition;
Hyndman's fpp3) often find simple baselines and ETS ahead of Prophet; here the selection is
free to pick a baseline, and does when it is best.

## Caveats

- Intervals are each model's own (Gaussian for the baselines, statsmodels' for ETS, Prophet's
  sampled ones, split-conformal for the LSTM); check `coverage` above against {info["level"]:.0%}.
- A level shift or a new seasonality after training is not in the model; `python -m forecast
  monitor` compares new actuals with the backtest's expected error and raises alerts.
- Models that failed on a series were left out of its selection: {len(failures)} series affected.
"""
    (out / "model_card.md").write_text(card)
