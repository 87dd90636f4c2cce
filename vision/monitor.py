"""Monitoring the vision model: its reference profile at training time, and a monitoring run over
a folder of new images (`python -m vision monitor --current DIR [--labels]`).

Images are not columns, so what is watched is what can be measured on every image and acted on:
size and aspect (a new camera), brightness, contrast, saturation and mean colour (lighting, a
dirty lens, a new background), and the model's answers: the distribution of predicted classes
and of confidence, and the share of low-confidence answers, the usual first sign of inputs
unlike anything in training. With `--labels` (images in class sub-folders) accuracy too.

The same statistics feed the API's live drift gauges (`VisionPredictor.monitoring_columns`).
Rules live in `vision/alerts.yaml` (or `--rules FILE`); the generic parts are common.monitoring.
"""

from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image, ImageEnhance, ImageOps

from common.artifacts import ArtifactStore
from common.errors import ArtifactError, InputError, UserError
from common.monitoring.alerts import AlertConfig
from common.monitoring.profile import ReferenceProfile, build_profile
from common.monitoring.run import MonitorResult, monitor_batch
from common.monitoring.sinks import Sink
from common.settings import Settings
from vision.data import IMAGE_EXTENSIONS
from vision.images import (
    PIL_FORMATS,
    STAT_NAMES,
    Preprocessing,
    decode,
    image_stats_many,
    stats_pixels,
)

logger = logging.getLogger(__name__)
DEFAULT_RULES = Path(__file__).with_name("alerts.yaml")
WATCHED: dict[str, Literal["numeric", "category"]] = {
    **dict.fromkeys(STAT_NAMES, "numeric"),
    "predicted_class": "category",
}
#: An answer below this calibrated probability counts as low-confidence.
LOW_CONFIDENCE = 0.5


def stats_columns(images: list[bytes | Path], prep: Preprocessing) -> dict[str, list[float]]:
    """The watched statistics of each image, as columns (the images must decode: training's
    have been checked by `vision.data.scan`). Only the few pixels the statistics read are kept
    per image, so a large training set fits in memory."""
    sizes, grids = [], []
    for image in images:
        decoded = decode(image.read_bytes() if isinstance(image, Path) else image)
        sizes.append((int(decoded.shape[-1]), int(decoded.shape[-2])))
        grids.append(stats_pixels(prep.resize_crop(decoded)).copy())
    return image_stats_many(sizes, grids)


def confidence_metrics(confidence: np.ndarray) -> dict[str, float]:
    return {
        "confidence.mean": float(confidence.mean()),
        "confidence.low_rate": float((confidence < LOW_CONFIDENCE).mean()),
    }


def reference_profile(
    train_images: list[Path],
    prep: Preprocessing,
    val_probabilities: np.ndarray,
    val_labels: np.ndarray,
    seed: int = 0,
) -> ReferenceProfile:
    """Image statistics of the training images; answers and confidence on validation."""
    confidence = val_probabilities.max(axis=1)
    predicted = [prep.class_names[i] for i in val_probabilities.argmax(axis=1)]
    accuracy = float((val_probabilities.argmax(axis=1) == val_labels).mean())
    return build_profile(
        {**stats_columns(list(train_images), prep), "predicted_class": predicted},
        WATCHED,
        scores=confidence,
        score_name="confidence",
        performance={"accuracy": accuracy, **confidence_metrics(confidence)},
        seed=seed,
    )


def batch_images(root: Path, classes: list[str], with_labels: bool) -> tuple[list[Path], list[int]]:
    """The images under `root`; with labels, each in a sub-folder named after its class."""
    if not root.is_dir():
        raise UserError(f"{root} is not a folder of images")
    paths = sorted(
        p for p in root.rglob("*")
        if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".")
    )  # fmt: skip
    if not paths:
        raise UserError(f"{root} holds no images ({', '.join(IMAGE_EXTENSIONS)})")
    if not with_labels:
        return paths, []
    unknown = sorted({p.parent.name for p in paths} - set(classes))
    if unknown:
        raise UserError(
            f"{root}: with --labels every image must be in a folder named after its class; "
            f"{', '.join(unknown)} is not one of the model's classes ({', '.join(classes)})"
        )
    return paths, [classes.index(p.parent.name) for p in paths]


def monitor(
    current: Path,
    *,
    with_labels: bool,
    settings: Settings,
    model: Path | None = None,
    rules: Path | None = None,
    sinks: list[Sink] | None = None,
    now: datetime | None = None,
) -> MonitorResult:
    """Predict a folder of images with the served model, compare with the reference, alert."""
    from vision.serve import Seen, VisionPredictor  # torch and ONNX Runtime: only when run

    if not current.is_dir():  # before the model is loaded, which takes a while
        raise UserError(f"{current} is not a folder of images")
    store = ArtifactStore(settings.artifacts_root, "vision")
    predictor = VisionPredictor.from_artifact(store.resolve_serving(model))
    profile = ReferenceProfile.load(predictor.path)
    if profile is None:
        raise ArtifactError(f"{predictor.path} has no reference profile: train it again")
    config = AlertConfig.load(rules or DEFAULT_RULES)
    paths, labels = batch_images(current, predictor.classes, with_labels)
    prepared, kept, unreadable = [], [], 0
    for i, path in enumerate(paths):
        try:  # one at a time: a folder of photos decoded at once would not fit in memory
            prepared += predictor.prepare([path.read_bytes()])
        except InputError as exc:
            unreadable += 1
            logger.warning("%s: %s", path, exc)
            continue
        kept.append(i)
    if not prepared:
        raise UserError(f"none of the {len(paths)} images in {current} could be decoded")
    probabilities = np.concatenate([
        predictor.probabilities([p.crop for p in prepared[start : start + 64]])
        for start in range(0, len(prepared), 64)
    ])  # fmt: skip
    # The columns the live API's drift window reads, computed by the same code.
    seen = Seen([(p.width, p.height) for p in prepared], [p.pixels for p in prepared],
                [predictor.classes[i] for i in probabilities.argmax(axis=1)])  # fmt: skip
    columns = dict(predictor.monitoring_columns([seen], list(WATCHED)))
    confidence = probabilities.max(axis=1)
    extra = confidence_metrics(confidence) | {"data.unreadable_rate": unreadable / len(paths)}
    reference = profile.performance
    extra["confidence.low_rate_increase"] = (
        extra["confidence.low_rate"] - reference["confidence.low_rate"]
    )
    extra["confidence.mean_drop"] = reference["confidence.mean"] - extra["confidence.mean"]
    if with_labels:
        y = np.asarray(labels)[kept]
        extra["performance.accuracy"] = float((probabilities.argmax(axis=1) == y).mean())
        extra["performance.accuracy_drop"] = reference["accuracy"] - extra["performance.accuracy"]
    return monitor_batch(
        profile=profile,
        columns=columns,
        scores=confidence,
        labels=None,  # accuracy is computed above: the generic metrics are for binary scores
        config=config,
        folder=settings.monitoring_root / "vision",
        context={"project": "vision", "model": predictor.manifest.version, "data": str(current)},
        now=now,
        sinks=sinks,
        extra_metrics=extra,
    )


def shift_images(source: Path, out: Path, strength: float = 1.0) -> Path:
    """Copy a folder of images with a camera-and-lighting change applied, for demos and tests:
    darker, flatter, less colourful and larger images (`strength` 0 = unchanged, 1 = strong)."""
    for path in sorted(source.rglob("*")):
        if not path.is_file() or path.suffix.lower() not in IMAGE_EXTENSIONS:
            continue
        target = out / path.relative_to(source)
        target.parent.mkdir(parents=True, exist_ok=True)
        with Image.open(path, formats=PIL_FORMATS) as im:  # never EPS (Ghostscript)
            image = ImageOps.exif_transpose(im).convert("RGB")
        image = ImageEnhance.Brightness(image).enhance(1 - 0.55 * strength)
        image = ImageEnhance.Contrast(image).enhance(1 - 0.5 * strength)
        image = ImageEnhance.Color(image).enhance(1 - 0.7 * strength)
        scale = 1 + strength
        image = image.resize((round(image.width * scale), round(image.height * scale * 0.8)))
        image.save(target)
    return out
