"""The churn command line: `python -m churn data|train|evaluate|promote|serve|monitor`.

Each command only parses options, calls the library and prints; `train` prints the artifact
directory on stdout (and nothing else), so `dir=$(python -m churn train --data x.csv)` works.
"""

from __future__ import annotations

import logging
from pathlib import Path

import typer

from common.cli import add_serve_command, finish_monitoring, project_app, user_errors
from common.settings import get_settings

app = project_app(__doc__)
logger = logging.getLogger("churn")


@app.command()
def data(
    out: Path | None = typer.Option(
        None, help="Where to write (.csv/.parquet); default: $MLP_DATA_ROOT/churn/telco.csv."
    ),
    rows: int = typer.Option(7043, min=1, help="Customers to generate (IBM's file has 7043)."),
    seed: int = typer.Option(42, help="Generator seed."),
    shift: float = typer.Option(0.0, min=0.0, max=1.0, help="Inject drift: 0 none, 1 strong."),
    download: bool = typer.Option(
        False,
        help="Fetch IBM's real file. If the download fails, generate instead, but only when "
        "--out does not exist yet: an existing file is kept unchanged.",
    ),
    url: str | None = typer.Option(None, help="Download from here instead (a mirror, file://)."),
) -> None:
    """Write the Telco data set: IBM's real file with --download, else the built-in generator."""
    from churn.data import TELCO_URL, DownloadError, download_telco, write_customers

    with user_errors():
        out = out or get_settings().data_root / "churn" / "telco.csv"
        if download:
            try:
                typer.echo(download_telco(out, url or TELCO_URL))
                return
            except DownloadError as exc:  # offline: fall back; a bad file is an error instead
                logger.warning("%s", exc)
                if out.exists():
                    # It may be the real file from an earlier download: never replace it with
                    # synthetic data just because this attempt was offline.
                    logger.warning("kept the existing %s unchanged (delete it to generate)", out)
                    typer.echo(out)
                    return
                logger.info("generating %d synthetic customers (seed %d)", rows, seed)
        typer.echo(write_customers(out, rows, seed=seed, shift=shift))


@app.command()
def train(
    data: Path = typer.Option(..., help="Telco CSV or Parquet, real or generated."),
    trials: int | None = typer.Option(None, min=1, help="Optuna trials per boosted family."),
    cost_missed: float | None = typer.Option(None, help="Cost of a churner not contacted."),
    cost_offer: float | None = typer.Option(None, help="Cost of one retention offer."),
    seed: int | None = typer.Option(None, help="Seed (default: MLP_SEED or 42)."),
) -> None:
    """Train, calibrate and evaluate; publish an artifact and print its directory."""
    from churn.config import ChurnConfig
    from churn.train import run

    with user_errors():
        settings = get_settings()
        overrides = {
            "n_trials": trials,
            "cost_missed_churner": cost_missed,
            "cost_retention_offer": cost_offer,
            "seed": settings.seed if seed is None else seed,
        }
        config = ChurnConfig(**{k: v for k, v in overrides.items() if v is not None})
        path = run(data, config, settings)
    logger.info("artifact published; model card: %s", path / "model_card.md")
    typer.echo(path.resolve())


@app.command()
def evaluate(
    model: str = typer.Argument("latest", help="Alias, version or artifact directory."),
    data: Path | None = typer.Option(
        None,
        help="Labelled hold-out file; default: the model's "
        "own test split, rebuilt from its training data.",
    ),
) -> None:
    """Evaluate a saved model; print the report directory."""
    from churn.evaluate import evaluate_artifact
    from common.artifacts import ArtifactStore

    with user_errors():
        settings = get_settings()
        path = ArtifactStore(settings.artifacts_root, "churn").resolve(model)
        out = evaluate_artifact(path, data, settings)
    typer.echo(out.resolve())


@app.command()
def promote(
    model: str = typer.Argument("latest", help="Alias, version or artifact directory."),
    alias: str = typer.Option("production", help="Alias to point at the model."),
    min_roc_auc: float | None = typer.Option(
        None, help="Gate on test ROC-AUC (default: the model's own promote_min_roc_auc)."
    ),
) -> None:
    """Point an alias (default `production`) at a model that passes the metric gate."""
    from common.artifacts import ArtifactStore

    with user_errors():
        store = ArtifactStore(get_settings().artifacts_root, "churn")
        _, manifest = store.load(model)
        gate = min_roc_auc if min_roc_auc is not None else manifest.config["promote_min_roc_auc"]
        promoted = store.promote(model, alias=alias, gate={"test.roc_auc": gate})
    typer.echo(
        f"{alias} -> {promoted.version} (test ROC-AUC {promoted.metric('test.roc_auc'):.4f})"
    )


add_serve_command(app, "churn.serve:ChurnPredictor")


@app.command()
def monitor(
    current: Path = typer.Option(..., help="A batch of customers (CSV or Parquet) to check."),
    labels: bool = typer.Option(
        False, "--labels", help="The batch has the Churn column: measure real performance too."
    ),
    model: str | None = typer.Option(
        None, help="Alias, version or artifact directory; default: as `serve` picks it."
    ),
    rules: Path | None = typer.Option(None, help="Alert rules YAML; default: churn/alerts.yaml."),
) -> None:
    """Compare a batch with the training data, write a report and raise alerts.

    Prints the report's path. Exit status: 0 fine, 3 while a critical alert is open, 1 when an
    alert could not be delivered (it is sent again next run), 2 on bad input.
    """
    from churn.monitor import monitor as run_monitor
    from common.artifacts import ArtifactStore

    with user_errors():
        settings = get_settings()
        path = ArtifactStore(settings.artifacts_root, "churn").resolve(model) if model else None
        result = run_monitor(current, with_labels=labels, settings=settings, model=path,
                             rules=rules)  # fmt: skip
    drifted = result.drift.drifted
    logger.info(
        "%d rows; drifted features: %s; prediction PSI %.3f; alerts sent: %d; open: %s",
        result.rows, ", ".join(drifted) or "none", result.metrics.get("drift.prediction_psi", 0.0),
        len(result.alerts), ", ".join(r.name for r in result.open) or "none",
    )  # fmt: skip
    finish_monitoring(result)


if __name__ == "__main__":
    app()
