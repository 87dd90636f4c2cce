"""Training a vision model end to end: folder -> fine-tuned, calibrated network -> ONNX ->
evaluated artifact.

`run` is the edge: it scans the folder, builds the backbone, fine-tunes (vision.finetune), fits
the temperature on the validation logits, exports and checks the ONNX file, evaluates, builds
the monitoring profile and publishes the artifact. Any failure before publishing (no weights, a
bad folder, an export that does not match) leaves the store exactly as it was.

A checkpoint is written after every epoch under the project's store
(`.checkpoints/<data fingerprint>.pt`); `--resume` continues from it after an interruption, and
a successful run deletes it.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any

import torch

from common.artifacts import ArtifactStore, package_versions
from common.errors import TrainingError
from common.settings import Settings
from common.tracking import Tracker
from vision.calibration import fit_temperature, softmax
from vision.config import VisionConfig
from vision.data import ImageFolder, scan
from vision.evaluate import write_model_card, write_report
from vision.export import check_parity, export_onnx
from vision.finetune import Finetuner, ImageDataset
from vision.images import Preprocessing
from vision.model import BACKBONES, MODEL_DIR, ONNX_FILE, ModelSpec, build, weights_preprocessing
from vision.monitor import reference_profile
from vision.serve import MODEL_LIBRARIES, ImagePrediction, ImageRecord

logger = logging.getLogger(__name__)
PARITY_IMAGES = 32


def fingerprint(folder: ImageFolder) -> str:
    """A sha256 over every used image's class, relative path and bytes: same data, same hash."""
    digest = hashlib.sha256("\x1f".join(folder.classes).encode())
    for item in sorted(folder.train + folder.val, key=lambda i: str(i.path)):
        digest.update(f"{item.label}:{item.path.relative_to(folder.root)}".encode())
        digest.update(hashlib.sha256(item.path.read_bytes()).digest())
    return digest.hexdigest()


def use_fast_batchnorm(net: torch.nn.Module, momentum: float = 0.1) -> None:
    """MobileNetV3 and EfficientNet keep BatchNorm running statistics with momentum 0.01, tuned
    for hundreds of ImageNet epochs. From scratch in a few dozen epochs those statistics lag far
    behind the weights, and the network in eval mode (validation, serving) outputs noise; the
    usual 0.1 keeps up."""
    for module in net.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.momentum = momentum


def preprocessing_for(config: VisionConfig, classes: list[str]) -> Preprocessing:
    """The pretrained weights' own recipe (size, normalisation), the image size overridable."""
    assert config.backbone in BACKBONES
    recipe = weights_preprocessing(config.backbone)
    if config.image_size is None:
        return Preprocessing(**recipe, class_names=classes)
    return Preprocessing.for_size(
        config.image_size, classes, mean=recipe["mean"], std=recipe["std"],
        interpolation=recipe["interpolation"],
    )  # fmt: skip


def run(data: Path, config: VisionConfig, settings: Settings, *, resume: bool = False) -> Path:
    """Train on an image folder and publish an artifact; returns its directory."""
    if str(config.weights).lower() == "none" and config.head_epochs:
        # From scratch there are no features to protect: training a head on random ones is
        # wasted time, and the fine-tuning rate is too low to learn them.
        logger.info("--weights none: one phase, every layer at the head's learning rate")
        config = config.model_copy(update={"head_epochs": 0, "finetune_lr": config.head_lr})
    if config.epochs == 0:
        # Zero epochs would publish the untrained network (random, or the ImageNet head-less
        # backbone with a random head) as a model: refuse before anything is read or written.
        why = (
            "--epochs is 0, and --weights none skips the head-only phase (--head-epochs)"
            if str(config.weights).lower() == "none"
            else "--head-epochs and --epochs are both 0"
        )
        raise TrainingError(f"nothing to train: {why}; give --epochs 1 or more")
    folder = scan(Path(data).resolve(), val_size=config.val_size, seed=config.seed)
    logger.info("data:\n%s", folder.summary())
    data_fingerprint = fingerprint(folder)
    torch.manual_seed(config.seed)
    net = build(config.backbone, len(folder.classes), config.weights)
    if str(config.weights).lower() == "none":
        use_fast_batchnorm(net)
    prep = preprocessing_for(config, folder.classes)
    weighted = folder.imbalance() >= config.weight_classes_above
    if weighted:
        logger.info("imbalance %.2f: weighting the loss by class", folder.imbalance())
    train_set = ImageDataset(folder.train, prep, augment=config.augment)
    val_set = ImageDataset(folder.val, prep)
    store = ArtifactStore(settings.artifacts_root, "vision")
    checkpoint = store.project_dir / ".checkpoints" / f"{data_fingerprint[:16]}.pt"

    with Tracker(
        settings.resolved_tracking_uri(), "vision", enabled=settings.tracking,
        artifact_location=settings.tracking_artifact_location(),
    ) as tracker:  # fmt: skip
        tracker.log_params(config.model_dump(mode="json"))
        tuner = Finetuner(
            net, config,
            class_weights=folder.class_weights() if weighted else None,
            checkpoint=checkpoint,
            on_epoch=lambda epoch, record: tracker.log_metrics(record, step=epoch),
        ).fit(train_set, val_set, resume=resume)  # fmt: skip
        net = tuner.net_
        logits, labels = tuner.logits(net, val_set)
        temperature = fit_temperature(logits, labels)
        logger.info("temperature scaling: T = %.3f", temperature)
        probabilities = softmax(logits.numpy(), temperature)
        uncalibrated = softmax(logits.numpy())
        spec = ModelSpec(config.backbone, prep, temperature)

        with store.create() as draft:
            folder_out = draft.path / MODEL_DIR
            spec.save(folder_out, net)
            examples = torch.stack([val_set[i][0] for i in range(min(PARITY_IMAGES, len(val_set)))])
            export_onnx(net, examples, folder_out / ONNX_FILE)
            parity = check_parity(net, folder_out / ONNX_FILE, examples)
            y = labels.numpy()
            result = write_report(draft.path, probabilities, y, folder.val, folder.classes,
                                  history=tuner.history_, uncalibrated=uncalibrated)  # fmt: skip
            reference_profile(
                [i.path for i in folder.train], prep, probabilities, y, config.seed
            ).save(draft.path)
            scalars = {k: v for k, v in result.items() if isinstance(v, (int, float))}
            metrics: dict[str, Any] = {"val": scalars, "onnx_max_abs_diff": parity}
            info = {
                "metrics": result, "config": config.model_dump(mode="json"),
                "classes": folder.classes, "temperature": temperature,
                "image_size": prep.image_size, "data": str(Path(data).resolve()),
                "data_fingerprint": data_fingerprint, "counts": {
                    "train": folder.counts("train"), "val": folder.counts("val")},
                "imbalance": folder.imbalance(), "weighted": weighted,
                "epochs_run": len(tuner.history_), "device": str(tuner.device),
                "onnx_max_abs_diff": parity,
            }  # fmt: skip
            draft.info.update(
                data_fingerprint=data_fingerprint,
                seed=config.seed,
                config=config.model_dump(mode="json"),
                package_versions=package_versions(MODEL_LIBRARIES),
                input_schema=ImageRecord.model_json_schema(),
                output_schema=ImagePrediction.model_json_schema(),
                metrics=metrics,
                extra={k: info[k] for k in ("classes", "temperature", "image_size", "data",
                                            "counts", "imbalance", "weighted", "epochs_run",
                                            "device")} | {
                    "history": tuner.history_, "skipped": [
                        [str(p), why] for p, why in folder.skipped]},
            )  # fmt: skip
            write_model_card(draft.path, draft.version, info)
        tracker.set_tags({"artifact_version": draft.version, "artifact_dir": str(draft.final_path)})
        tracker.log_metrics(metrics)
        tracker.log_artifacts(draft.final_path, "artifact")
    checkpoint.unlink(missing_ok=True)
    assert draft.final_path is not None
    return draft.final_path
