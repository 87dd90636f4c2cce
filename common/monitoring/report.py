"""One monitoring run on disk: `report.json` for machines (the dashboard reads it) and a
self-contained `report.html` for people (charts embedded, no network needed to open it)."""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from common.etl import atomic_write
from common.monitoring.drift import PSI_MAJOR, PSI_MODERATE, DriftResult
from common.monitoring.profile import ReferenceProfile

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 70rem; color: #222; }
table { border-collapse: collapse; margin: 1rem 0; } td, th { padding: .3rem .7rem; }
th { text-align: left; border-bottom: 2px solid #999; } tr:nth-child(even) { background: #f4f4f4; }
.major, .critical { color: #b00020; font-weight: bold; } .moderate, .warning { color: #b36b00; }
.firing { font-weight: bold; } img { max-width: 100%; }
"""


def write_report(folder: Path, summary: dict[str, Any], drift: DriftResult,
                 profile: ReferenceProfile, scores: np.ndarray | None) -> None:  # fmt: skip
    """Write `report.json` (the summary as given) and `report.html` into `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_write(folder / "report.json") as tmp:
        tmp.write_text(json.dumps(summary, indent=1, default=str))
    charts = [_psi_chart(drift)]
    if scores is not None and profile.score_histogram is not None:
        charts.append(_score_chart(profile, scores))
    with atomic_write(folder / "report.html") as tmp:
        tmp.write_text(_html(summary, drift, charts))


def _html(summary: dict[str, Any], drift: DriftResult, charts: list[str]) -> str:
    e = html.escape
    context = " · ".join(f"{k} <b>{e(str(v))}</b>" for k, v in summary["context"].items())
    alerts = summary["alerts"] or []
    alert_rows = "".join(
        f"<tr class='{e(a['status'])}'><td class='{e(a['severity'])}'>{e(a['severity'])}</td>"
        f"<td>{e(a['status'])}</td><td>{e(a['rule'])}</td><td>{e(a['metric'])}</td>"
        f"<td>{a['value']:.4g}</td><td>{e(a['comparison'])} {a['threshold']:g}</td></tr>"
        for a in alerts
    )
    open_rules = ", ".join(e(r) for r in summary["open_alerts"]) or "none"
    feature_rows = "".join(
        f"<tr><td>{e(f.feature)}</td><td>{f.kind}</td><td class='{f.status}'>{f.psi:.3f}</td>"
        f"<td>{f.status}</td><td>{f.test} {f.statistic:.3g} (p={f.p_value:.2g})</td>"
        f"<td>{f.distance_name} {f.distance:.3f}</td><td>{'yes' if f.drifted else ''}</td></tr>"
        for f in sorted(drift.features, key=lambda f: -f.psi)
    )
    metric_rows = "".join(
        f"<tr><td>{e(k)}</td><td>{v:.4g}</td></tr>" for k, v in summary["metrics"].items()
    )
    images = "".join(f"<img src='data:image/png;base64,{c}' alt='chart'>" for c in charts)
    return f"""<!doctype html><html><head><meta charset="utf-8">
<title>Monitoring report {e(summary["run_id"])}</title><style>{_STYLE}</style></head><body>
<h1>Monitoring report</h1><p>{context} · rows <b>{summary["rows"]:,}</b> ·
{e(summary["created_at"])}</p>
<h2>Alerts</h2><p>Open after this run: <b>{open_rules}</b></p>
{
        f"<table><tr><th>severity</th><th>status</th><th>rule</th><th>metric</th><th>value</th>"
        f"<th>rule</th></tr>{alert_rows}</table>"
        if alerts
        else "<p>No alert changed state.</p>"
    }
<h2>Drift</h2><p>{len(drift.drifted)} of {len(drift.features)} features drifted
(PSI &ge; {PSI_MODERATE} and p &lt; 0.01). PSI: &lt; {PSI_MODERATE} stable,
{PSI_MODERATE}&ndash;{PSI_MAJOR} moderate, &gt; {PSI_MAJOR} major.</p>{images}
<table><tr><th>feature</th><th>kind</th><th>PSI</th><th>reading</th><th>test</th>
<th>distance</th><th>drifted</th></tr>{feature_rows}</table>
<h2>Metrics</h2><p>Performance is realised with labels; <i>estimated</i> (CBPE) without
them, which assumes calibrated probabilities and no concept drift.</p>
<table><tr><th>metric</th><th>value</th></tr>{metric_rows}</table></body></html>"""


def _png(fig: Figure) -> str:
    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png")
    return base64.b64encode(buffer.getvalue()).decode()


def _psi_chart(drift: DriftResult) -> str:
    items = sorted(drift.features, key=lambda f: f.psi)
    fig = Figure(figsize=(7, 0.25 * len(items) + 1.5), dpi=100)
    ax = fig.add_subplot()
    colours = ["#b00020" if f.psi > PSI_MAJOR else "#e69500" if f.psi >= PSI_MODERATE else "#4c78a8"
               for f in items]  # fmt: skip
    ax.barh([f.feature for f in items], [f.psi for f in items], color=colours)
    for x, label in ((PSI_MODERATE, "moderate"), (PSI_MAJOR, "major")):
        ax.axvline(x, ls="--", color="grey")
        ax.text(x, len(items) - 0.5, f" {label}", color="grey", va="bottom")
    ax.set(title="PSI per feature against the training data", xlabel="PSI")
    ax.grid(alpha=0.3, axis="x")
    return _png(fig)


def _score_chart(profile: ReferenceProfile, scores: np.ndarray) -> str:
    hist = profile.score_histogram
    assert hist is not None
    edges = np.asarray(hist.edges)
    reference = np.asarray(hist.counts) / max(sum(hist.counts), 1)
    current, _ = np.histogram(np.clip(scores, edges[0], edges[-1]), bins=edges)
    current = current / max(current.sum(), 1)
    width = np.diff(edges)
    fig = Figure(figsize=(7, 3.5), dpi=100)
    ax = fig.add_subplot()
    ax.bar(edges[:-1], reference, width=width, align="edge", alpha=0.5, label="training (held out)")
    ax.bar(edges[:-1], current, width=width, align="edge", alpha=0.5, label="this batch")
    if profile.threshold is not None:
        ax.axvline(profile.threshold, ls="--", color="red", label="decision threshold")
    name = profile.score_name or "score"
    ax.set(title=f"Distribution of {name}", xlabel=name, ylabel="share of rows")
    ax.legend(loc="best")
    ax.grid(alpha=0.3)
    return _png(fig)
