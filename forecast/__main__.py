"""The forecast command line: `python -m forecast data|train|promote|serve|monitor`.

Each command only parses options, calls the library and prints; `train` prints the artifact
directory on stdout (and nothing else), so `dir=$(python -m forecast train --data x.csv)` works.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path

import typer

from common.cli import add_serve_command, finish_monitoring, project_app, user_errors
from common.settings import get_settings

app = project_app(__doc__)
logger = logging.getLogger("forecast")
#: The promotion gate's metric: the selection's skill over seasonal naive on held-out windows.
GATE = "held_out_selection.skill"


@app.command()
def data(
    out: Path | None = typer.Option(
        None, help="CSV or Parquet to write; default: $MLP_DATA_ROOT/forecast/daily.csv."
    ),
    freq: str = typer.Option("D", help="h (hourly), D (daily), W (weekly) or MS (monthly)."),
    series: int = typer.Option(6, min=1, help="How many series."),
    periods: int | None = typer.Option(
        None, min=10, help="Points per series; default: 3 years daily, 60 days hourly, ..."
    ),
    seed: int = typer.Option(42, help="Generator seed."),
    actuals: Path | None = typer.Option(
        None, help="Also write the series' continuation here: new actuals for monitoring."
    ),
    actual_periods: int = typer.Option(60, min=1, help="Points per series in --actuals."),
    shift: float = typer.Option(
        0.0, help="Add a level shift of this many standard deviations to the actuals."
    ),
    shift_after: int = typer.Option(20, min=0, help="Actuals before the shift starts."),
) -> None:
    """Write the built-in series (trend, seasonalities, holidays, noise); print the file(s)."""
    from forecast.data import write_series
    from forecast.frequency import describe, family
    from forecast.synthetic import DEFAULT_PERIODS, generate, inject_level_shift

    if actuals and shift and shift_after >= actual_periods:  # before anything is written
        raise typer.BadParameter(
            f"--shift-after {shift_after} leaves no actual to shift "
            f"(--actual-periods is {actual_periods})",
            param_hint="--shift-after",
        )
    with user_errors():
        out = out or get_settings().data_root / "forecast" / "daily.csv"
        n = periods or DEFAULT_PERIODS[family(freq)]
        # One draw, cut in two: the actuals continue the training series exactly.
        frame = generate(freq, n_series=series, periods=n + (actual_periods if actuals else 0),
                         seed=seed)  # fmt: skip
        cut = sorted(frame["ds"].unique())[n - 1]
        typer.echo(write_series(frame[frame["ds"] <= cut], out))
        if actuals:
            future = frame[frame["ds"] > cut]
            if shift:
                at = sorted(future["ds"].unique())[shift_after]
                future = inject_level_shift(future, at=at, size=shift)
            typer.echo(write_series(future, actuals))
        logger.info("%d %s series of %d points", series, describe(freq), n)


@app.command()
def train(
    data: Path = typer.Option(..., help="CSV or Parquet: ds,y or series_id,ds,y."),
    horizon: int | None = typer.Option(
        None, min=1, help="Steps ahead; default 30 daily, 48 hourly, 12 weekly or monthly."
    ),
    freq: str | None = typer.Option(None, help="pandas frequency; default: inferred."),
    models: str | None = typer.Option(
        None, help="Comma-separated subset of naive,seasonal_naive,ets,prophet,lstm."
    ),
    initial: int | None = typer.Option(None, min=2, help="Backtest: fewest points to fit on."),
    period: int | None = typer.Option(None, min=1, help="Backtest: steps between origins."),
    windows: int | None = typer.Option(None, min=1, help="Backtest: most windows per series."),
    n_jobs: int | None = typer.Option(None, min=0, help="Processes; 0: one per core."),
    seed: int | None = typer.Option(None, help="Seed (default: MLP_SEED or 42)."),
) -> None:
    """Backtest every model per series, select by MASE, refit; publish and print the artifact."""
    from forecast.config import ForecastConfig
    from forecast.train import run

    with user_errors():
        settings = get_settings()
        overrides = {
            "horizon": horizon, "freq": freq, "initial": initial, "period": period,
            "max_windows": windows, "n_jobs": n_jobs,
            "models": tuple(m.strip() for m in models.split(",")) if models else None,
            "seed": settings.seed if seed is None else seed,
        }  # fmt: skip
        config = ForecastConfig(**{k: v for k, v in overrides.items() if v is not None})
        path = run(data, config, settings)
    logger.info("artifact published; model card: %s", path / "model_card.md")
    typer.echo(path.resolve())


@app.command()
def promote(
    model: str = typer.Argument("latest", help="Alias, version or artifact directory."),
    alias: str = typer.Option("production", help="Alias to point at the model."),
    min_skill: float = typer.Option(
        0.0,
        help="Refuse a model whose held-out MASE is not this far below seasonal naive's "
        "(0: at least as good).",
    ),
) -> None:
    """Point an alias (default `production`) at a model no worse than seasonal naive.

    The gate is `held_out_selection.skill`: each backtest window after the first, forecast by
    the model chosen on the windows before it. The in-sample `backtest.selected` cannot fail
    it (seasonal naive is a candidate, so each series' best is never worse); a model trained
    with a single backtest window has no held-out score and is refused.
    """
    from common.artifacts import ArtifactStore

    with user_errors():
        store = ArtifactStore(get_settings().artifacts_root, "forecast")
        promoted = store.promote(model, alias=alias, gate={GATE: min_skill})
    skill = promoted.metric(GATE)
    typer.echo(f"{alias} -> {promoted.version} (held-out MASE {skill:.1%} below seasonal naive)")


add_serve_command(app, "forecast.serve:ForecastPredictor")


@app.command()
def monitor(
    actuals: Path = typer.Option(..., help="Every actual since training: ds,y or series_id,ds,y."),
    as_of: datetime | None = typer.Option(
        None, help="The time now, for staleness; default: the newest actual of any series."
    ),
    model: str | None = typer.Option(None, help="Alias, version or artifact directory."),
    rules: Path | None = typer.Option(
        None, help="Alert rules YAML; default: forecast/alerts.yaml."
    ),
) -> None:
    """Compare actuals with the forecasts, write a report and raise alerts.

    Prints the report's path. Exit status: 0 fine, 3 while a critical alert is open, 1 when an
    alert could not be delivered (it is sent again next run), 2 on bad input.
    """
    from common.artifacts import ArtifactStore
    from forecast.monitor import monitor as run_monitor

    with user_errors():
        settings = get_settings()
        path = ArtifactStore(settings.artifacts_root, "forecast").resolve(model) if model else None
        result = run_monitor(actuals, settings=settings, model=path, rules=rules, as_of=as_of)
    # A metric is absent until there are enough new actuals to compute it (no level-shift
    # ratio before a few points, no coverage before half a horizon): print n/a, never fail
    # here, after the report is written and alerts are sent but before finish_monitoring.
    formats = {"error.cusum": ".1f", "level_shift.ratio": ".2f", "coverage.min": ".2f",
               "data.stale_series": ".0f"}  # fmt: skip
    m = {name: _metric(result.metrics, name, spec) for name, spec in formats.items()}
    logger.info(
        "%d points; error CUSUM %s; level-shift ratio %s; coverage min %s; stale series %s; "
        "alerts sent: %d; open: %s", result.rows, m["error.cusum"], m["level_shift.ratio"],
        m["coverage.min"], m["data.stale_series"], len(result.alerts),
        ", ".join(r.name for r in result.open) or "none",
    )  # fmt: skip
    finish_monitoring(result)


def _metric(metrics: Mapping[str, float], name: str, spec: str) -> str:
    """One metric formatted with `spec`, or "n/a" when the run could not compute it."""
    value = metrics.get(name)
    return "n/a" if value is None else format(value, spec)


if __name__ == "__main__":
    app()
