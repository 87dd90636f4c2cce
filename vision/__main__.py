"""The vision command line: `python -m vision data|train|promote|serve|monitor`.

Each command only parses options, calls the library and prints; `train` prints the artifact
directory on stdout (and nothing else), so `dir=$(python -m vision train --data DIR)` works.
"""

from __future__ import annotations

import logging
from pathlib import Path

import typer

from common.cli import add_serve_command, finish_monitoring, project_app, user_errors
from common.settings import get_settings

app = project_app(__doc__)
logger = logging.getLogger("vision")


@app.command()
def data(
    out: Path | None = typer.Option(
        None, help="Folder to write; default: $MLP_DATA_ROOT/vision/shapes."
    ),
    per_class: int = typer.Option(120, min=2, help="Images per class."),
    size: int = typer.Option(96, min=16, help="Side of each image in pixels."),
    seed: int = typer.Option(42, help="Generator seed."),
    shift: float = typer.Option(
        0.0, min=0.0, max=1.0, help="Darker, flatter, larger images: drift for monitoring demos."
    ),
) -> None:
    """Write the built-in dataset (rendered shapes in class folders); print its folder."""
    import shutil
    import tempfile

    from vision.data import DataError, write_shapes
    from vision.monitor import shift_images

    with user_errors():
        out = out or get_settings().data_root / "vision" / "shapes"
        if shift == 0:
            typer.echo(write_shapes(out, per_class=per_class, size=size, seed=seed))
            return
        if out.exists() and any(out.iterdir()):  # as write_shapes itself refuses
            raise DataError(f"{out} exists and is not empty; delete it or pick another --out")
        with tempfile.TemporaryDirectory() as tmp:
            clean = write_shapes(Path(tmp) / "clean", per_class=per_class, size=size, seed=seed)
            staged = shift_images(clean, Path(tmp) / "shifted", shift)
            out.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(staged, out)
        typer.echo(out)


@app.command()
def train(
    data: Path = typer.Option(..., help="Image folder: root/<class>/*.jpg, or train/ and val/."),
    weights: str = typer.Option(
        "DEFAULT", help="DEFAULT (pretrained, downloaded once), none, or a state-dict file."
    ),
    backbone: str = typer.Option(
        "mobilenet_v3_small", help="resnet18, mobilenet_v3_small or efficientnet_b0."
    ),
    image_size: int | None = typer.Option(None, help="Input side; default: the weights' own."),
    head_epochs: int | None = typer.Option(None, min=0, help="Epochs training the head only."),
    epochs: int | None = typer.Option(None, min=0, help="Fine-tuning epochs (all layers)."),
    batch_size: int | None = typer.Option(None, min=1),
    patience: int | None = typer.Option(
        None, min=1, help="Stop after this many epochs without a better validation loss."
    ),
    device: str = typer.Option("auto", help="auto, cpu, cuda or mps."),
    resume: bool = typer.Option(False, help="Continue an interrupted run from its checkpoint."),
    seed: int | None = typer.Option(None, help="Seed (default: MLP_SEED or 42)."),
) -> None:
    """Fine-tune, calibrate, export to ONNX and evaluate; publish and print the artifact."""
    from vision.config import VisionConfig
    from vision.train import run

    with user_errors():
        settings = get_settings()
        overrides = {
            "weights": weights, "backbone": backbone, "image_size": image_size,
            "head_epochs": head_epochs, "finetune_epochs": epochs, "batch_size": batch_size,
            "patience": patience, "device": device, "seed": settings.seed if seed is None else seed,
        }  # fmt: skip
        config = VisionConfig(**{k: v for k, v in overrides.items() if v is not None})
        path = run(data, config, settings, resume=resume)
    logger.info("artifact published; model card: %s", path / "model_card.md")
    typer.echo(path.resolve())


@app.command()
def promote(
    model: str = typer.Argument("latest", help="Alias, version or artifact directory."),
    alias: str = typer.Option("production", help="Alias to point at the model."),
    min_accuracy: float = typer.Option(0.8, help="Refuse a model below this val accuracy."),
) -> None:
    """Point an alias (default `production`) at a model that passes the accuracy gate."""
    from common.artifacts import ArtifactStore

    with user_errors():
        store = ArtifactStore(get_settings().artifacts_root, "vision")
        promoted = store.promote(model, alias=alias, gate={"val.accuracy": min_accuracy})
    typer.echo(
        f"{alias} -> {promoted.version} (val accuracy {promoted.metric('val.accuracy'):.3f})"
    )


add_serve_command(app, "vision.serve:VisionPredictor")


@app.command()
def monitor(
    current: Path = typer.Option(..., help="A folder of new images to check."),
    labels: bool = typer.Option(
        False, "--labels", help="Images are in class sub-folders: measure accuracy too."
    ),
    model: str | None = typer.Option(None, help="Alias, version or artifact directory."),
    rules: Path | None = typer.Option(None, help="Alert rules YAML; default: vision/alerts.yaml."),
) -> None:
    """Compare new images with the training data, write a report and raise alerts.

    Prints the report's path. Exit status: 0 fine, 3 while a critical alert is open, 1 when an
    alert could not be delivered (it is sent again next run), 2 on bad input.
    """
    from common.artifacts import ArtifactStore
    from vision.monitor import monitor as run_monitor

    with user_errors():
        settings = get_settings()
        path = ArtifactStore(settings.artifacts_root, "vision").resolve(model) if model else None
        result = run_monitor(current, with_labels=labels, settings=settings, model=path,
                             rules=rules)  # fmt: skip
    logger.info(
        "%d images; drifted: %s; low-confidence rate %.3f; alerts sent: %d; open: %s",
        result.rows, ", ".join(result.drift.drifted) or "none",
        result.metrics.get("confidence.low_rate", 0.0), len(result.alerts),
        ", ".join(r.name for r in result.open) or "none",
    )  # fmt: skip
    finish_monitoring(result)


if __name__ == "__main__":
    app()
