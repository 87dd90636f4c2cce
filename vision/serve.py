"""The vision model behind the shared serving contract: image bytes in, top-k classes out.

`VisionPredictor` decodes with the same code training used (vision.images), runs the network on
whichever engine is faster on this machine (ONNX Runtime or eager PyTorch, timed when the model
loads: see `choose_engine`), and returns calibrated probabilities (temperature-scaled softmax)
for the top k classes. With `gradcam: true` it adds a Grad-CAM overlay as a base64 PNG.

A bad image (empty, not an image, truncated, a decompression bomb, too small) is an `InputError`
naming the record, which the API answers with 422.
"""

from __future__ import annotations

import base64
import binascii
import copy
import logging
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, Self

import numpy as np
import torch
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PrivateAttr, WithJsonSchema

from common.artifacts import Manifest, check_compatible, read_manifest
from common.errors import ArtifactError, InputError
from common.predictor import MediaPredictor
from vision.calibration import softmax
from vision.export import INPUT_NAME, OUTPUT_NAME, session
from vision.gradcam import GradCam, overlay, png_base64
from vision.images import (
    MAX_PIXELS,
    ImageError,
    decode,
    image_stats_many,
    peek_size,
    stats_pixels,
)
from vision.model import MODEL_DIR, ONNX_FILE, ModelSpec

logger = logging.getLogger(__name__)
Engine = Literal["auto", "onnx", "torch"]
MEDIA_TYPES = ("image/jpeg", "image/png", "image/webp", "image/gif", "image/bmp",
               "image/tiff", "application/x-image")  # fmt: skip
MODEL_LIBRARIES = ["torch", "torchvision", "onnxruntime", "numpy"]
#: Up to this many pixels (1600 x 1250), an image is decoded and classified on the API's event
#: loop (~10 ms at most here) rather than in a worker thread: see `is_light`.
LIGHT_PIXELS = 2_000_000
# A 32x32 PNG of a red disc, base64: the API docs' example and the smoke tests' input.
EXAMPLE_PNG = (
    "iVBORw0KGgoAAAANSUhEUgAAACAAAAAgCAIAAAD8GO2jAAAAg0lEQVR42mN8/foDAy0BEwONwagFA28BC5Hq7tpaYAo"
    "qHz5BUCMjwWSK1WjirWGi0HSCapgoNJ2gSibKTcevnokqpuPRNRD5gDzn49I7WlSMWkATC4gpI4kv+AYoiMjzBFZdTO"
    "SV8sSrZyK7JiFSJRMltRUxahiJbNnRsE4ezclD3gIAtc0yV8PBaZwAAAAASUVORK5CYII="
)


def _strict_base64(value: object) -> object:
    """Standard base64 (line breaks allowed, as `base64 cat.jpg` writes them); any other
    character is an error rather than silently dropped."""
    if isinstance(value, str):
        value = value.encode("ascii", errors="replace")
    if isinstance(value, bytes):
        try:
            return base64.b64decode(b"".join(value.split()), validate=True)
        except binascii.Error as exc:
            raise ValueError(f"invalid base64 ({exc})") from None
    return value


Base64Bytes = Annotated[
    bytes,
    BeforeValidator(_strict_base64),
    WithJsonSchema({"type": "string", "contentEncoding": "base64"}),
]


class ImageRecord(BaseModel):
    """One image (base64 in JSON; a file or raw bytes elsewhere) and what to return for it."""

    # A misspelt option (`topk`) is an error naming it, not a silent default.
    model_config = ConfigDict(extra="forbid")

    image: Base64Bytes = Field(description="The image file's bytes: JPEG, PNG, WebP, GIF, ...")
    top_k: int = Field(3, ge=1, le=1000, description="How many classes to return (at most all).")
    gradcam: bool = Field(False, description="Add a Grad-CAM overlay (slower: ~3x a prediction).")


class ClassScore(BaseModel):
    label: str
    probability: float


class ImagePrediction(BaseModel):
    label: str = Field(description="The most probable class.")
    confidence: float = Field(description="Its calibrated probability.")
    top_k: list[ClassScore]
    width: int = Field(description="The image's width as received, after EXIF rotation.")
    height: int
    gradcam_png: str | None = Field(None, description="Base64 PNG: Grad-CAM over the input.")
    # The pixels the drift window reads colour statistics from (see monitoring_inputs); not
    # part of the answer.
    _pixels: np.ndarray | None = PrivateAttr(None)


@dataclass(frozen=True)
class Prepared:
    """One image ready for the network: its resized crop, original size, and a copy of the
    pixels monitoring reads (`stats_pixels`), taken while the crop is in the cache: ~30 us
    less than after the forward pass."""

    crop: torch.Tensor
    width: int
    height: int
    pixels: np.ndarray


@dataclass(frozen=True)
class Seen:
    """What the drift window keeps of answered images until it reads their statistics: sizes,
    labels and the few pixels the colour statistics read (not the crops: 32 of those waiting
    made the heap grow and shrink, ~70 page faults a request)."""

    sizes: list[tuple[int, int]]  # width, height
    pixels: list[np.ndarray]
    labels: list[str]


class VisionPredictor(MediaPredictor[ImageRecord, ImagePrediction]):
    project = "vision"
    input_model = ImageRecord
    output_model = ImagePrediction
    score_field = "confidence"
    media_types = MEDIA_TYPES
    payload_field = "image"
    max_batch = 256
    examples: ClassVar[list[dict[str, Any]]] = [{"image": EXAMPLE_PNG, "top_k": 3}]

    def __init__(
        self, path: Path, manifest: Manifest, spec: ModelSpec, engine: Engine = "auto"
    ) -> None:
        super().__init__(path, manifest)
        self.spec = spec
        self.prep = spec.preprocessing
        self.classes = spec.classes
        self.max_pixels = MAX_PIXELS
        folder = path / MODEL_DIR
        self.net = spec.load_network(folder)
        # One image: one thread. A second buys nothing measurable at batch 1, and waking ONNX
        # Runtime's pool costs the request more than it saves (API p50 6.5 -> 5.1 ms). A batch
        # gets a session with a thread per core.
        self.session = session(folder / ONNX_FILE, threads=1)
        self.batch_session = session(folder / ONNX_FILE)
        self.timings_ms = measure_engines(self._run_onnx, self._run_torch, self.prep.image_size)
        self.engine = choose_engine(engine, self.timings_ms)
        self._forward = self._run_onnx if self.engine == "onnx" else self._run_torch
        # Its own copy: Grad-CAM hooks its network, which must not touch eager predictions.
        self._gradcam = GradCam(copy.deepcopy(self.net))
        logger.info("vision engine: %s (batch-1 ms: %s)", self.engine, self.timings_ms)

    @classmethod
    def from_artifact(cls, path: Path, engine: Engine = "auto") -> Self:
        manifest = read_manifest(path, project="vision")
        check_compatible(manifest, MODEL_LIBRARIES)
        if not (path / MODEL_DIR / ONNX_FILE).is_file():
            raise ArtifactError(f"{path} has no {MODEL_DIR}/{ONNX_FILE}: not a vision artifact")
        return cls(path, manifest, ModelSpec.load(path / MODEL_DIR), engine)

    # -- the engines ---------------------------------------------------------------------------
    def _run_onnx(self, batch: np.ndarray) -> np.ndarray:
        runner = self.session if len(batch) == 1 else self.batch_session
        return runner.run([OUTPUT_NAME], {INPUT_NAME: batch})[0]

    def _run_torch(self, batch: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return self.net(torch.from_numpy(batch)).numpy()

    # -- predicting ----------------------------------------------------------------------------
    def prepare(self, blobs: Sequence[bytes]) -> list[Prepared]:
        """Each image decoded, then at once resized and cropped, so that a batch never holds
        its full-resolution images; InputError naming the first bad one (by its place)."""
        prepared = []
        for index, blob in enumerate(blobs):
            try:
                image = decode(blob, max_pixels=self.max_pixels)
            except ImageError as exc:
                where = index if len(blobs) > 1 else None
                raise InputError(str(exc), field="image", index=where) from None
            crop = self.prep.resize_crop(image)
            width, height = int(image.shape[-1]), int(image.shape[-2])
            prepared.append(Prepared(crop, width, height, stats_pixels(crop).copy()))
        return prepared

    def probabilities(self, crops: list[torch.Tensor]) -> np.ndarray:
        """Calibrated class probabilities [n, classes] of resized crops."""
        logits = self._forward(self.prep.network_input(crops))
        return softmax(logits, self.spec.temperature)

    def predict_batch(self, records: Sequence[ImageRecord]) -> list[ImagePrediction]:
        prepared = self.prepare([r.image for r in records])
        probs = self.probabilities([p.crop for p in prepared])
        outputs = []
        for record, image, p in zip(records, prepared, probs, strict=True):
            order = np.argsort(-p)[: min(record.top_k, len(self.classes))].tolist()
            chances = p.tolist()
            out = ImagePrediction(
                label=self.classes[order[0]],
                confidence=chances[order[0]],
                # Dicts, which pydantic turns into ClassScores in the same call: ~30 us less
                # than building each one right after a forward pass.
                top_k=[{"label": self.classes[i], "probability": chances[i]} for i in order],
                width=image.width,
                height=image.height,
                gradcam_png=self.gradcam_png(image.crop, order[0]) if record.gradcam else None,
            )
            out._pixels = image.pixels
            outputs.append(out)
        return outputs

    def is_light(self, records: Sequence[ImageRecord]) -> bool:
        """One PNG or JPEG of at most LIGHT_PIXELS, without Grad-CAM: a few ms, fine on the
        event loop."""
        if len(records) != 1 or records[0].gradcam:
            return False
        size = peek_size(records[0].image)
        return size is not None and size[0] * size[1] <= LIGHT_PIXELS

    def gradcam_png(self, crop: torch.Tensor, class_index: int) -> str:
        return png_base64(overlay(crop, self.gradcam(crop, class_index)))

    def gradcam(self, crop: torch.Tensor, class_index: int) -> np.ndarray:
        """Grad-CAM heat map [S, S] of `class_index` over a resized crop."""
        return self._gradcam.heatmap(self.prep.normalise(crop), class_index)

    def monitoring_inputs(
        self, records: Sequence[ImageRecord], outputs: Sequence[ImagePrediction]
    ) -> Seen:
        # The statistics themselves are computed in bulk by monitoring_columns. A private
        # attribute is read through pydantic's __getattr__: once per image.
        pixels = [o._pixels for o in outputs]
        return Seen([(o.width, o.height) for o in outputs], pixels, [o.label for o in outputs])

    def monitoring_columns(self, kept: Sequence[Seen], names: Sequence[str]) -> dict[str, list]:
        """Size, shape and colour statistics (vision.images.image_stats_many) and the predicted
        class of the images in `kept`, in order."""
        sizes = [size for seen in kept for size in seen.sizes]
        pixels = [grid for seen in kept for grid in seen.pixels]
        return {**image_stats_many(sizes, pixels),
                "predicted_class": [label for seen in kept for label in seen.labels]}  # fmt: skip

    def metadata(self) -> dict[str, Any]:
        return {
            **super().metadata(),
            "classes": self.classes,
            "backbone": self.spec.backbone,
            "engine": {"used": self.engine, "batch1_ms": self.timings_ms},
            "preprocessing": self.prep.model_dump(mode="json"),
        }


def measure_engines(
    onnx: Callable[[np.ndarray], np.ndarray],
    eager: Callable[[np.ndarray], np.ndarray],
    size: int,
    repeats: int = 10,
) -> dict[str, float]:
    """Median batch-1 latency (ms) of each engine on this machine, after a warm-up."""
    x = np.zeros((1, 3, size, size), dtype=np.float32)
    timings = {}
    for name, run in (("onnx", onnx), ("torch", eager)):
        for _ in range(3):
            run(x)
        samples = []
        for _ in range(repeats):
            start = time.perf_counter()
            run(x)
            samples.append((time.perf_counter() - start) * 1000)
        timings[name] = round(statistics.median(samples), 3)
    return timings


def choose_engine(preference: Engine, timings_ms: dict[str, float]) -> Literal["onnx", "torch"]:
    """The engine asked for, or with `auto` the faster one as measured here (ONNX on a tie)."""
    if preference != "auto":
        return preference
    return "onnx" if timings_ms["onnx"] <= timings_ms["torch"] else "torch"
