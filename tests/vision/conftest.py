"""Fixtures of the vision tests: a tiny generated image set, one model trained on it once per
session (seconds: 3 classes of 32 px shapes, one epoch from scratch, no download), and helpers
that encode test images.

The model is too small to be good; the tests that use it check contracts (shapes, files,
parity, the API), not accuracy. Accuracy on the built-in data is measured by `make train-vision`
and the slow end-to-end test.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from common.settings import Settings

CLASSES = ("circle", "square", "triangle")


def encode(image: Image.Image, fmt: str = "PNG", **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def noise_image(width: int = 64, height: int = 48, mode: str = "RGB", seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).convert(mode)


#: A minimal Encapsulated PostScript file: PIL identifies it (and would run Ghostscript on it).
EPS = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 8 8\n%%EndComments\nshowpage\n%%EOF\n"


def broken_exif(fmt: str = "WEBP") -> bytes:
    """A red 32 x 24 picture whose EXIF block is garbage PIL cannot parse ("animated-WEBP": two
    frames, red then blue, which PIL decodes)."""
    red, blue = Image.new("RGB", (32, 24), (255, 0, 0)), Image.new("RGB", (32, 24), (0, 0, 255))
    if fmt == "animated-WEBP":
        return encode(red, "WEBP", exif=b"garbage, not TIFF", save_all=True, append_images=[blue])
    return encode(red, fmt, exif=b"garbage, not TIFF")


@pytest.fixture(scope="session")
def shapes_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from vision.data import write_shapes

    return write_shapes(
        tmp_path_factory.mktemp("vision-data") / "shapes", per_class=12, size=48, seed=3,
        classes=CLASSES,
    )  # fmt: skip


@pytest.fixture(scope="session")
def tiny_config():
    from vision.config import VisionConfig

    return VisionConfig(
        backbone="mobilenet_v3_small", weights="none", image_size=32, head_epochs=0,
        finetune_epochs=1, batch_size=16, seed=3,
    )  # fmt: skip


@pytest.fixture(scope="session")
def vision_artifact(
    tmp_path_factory: pytest.TempPathFactory, shapes_dir: Path, tiny_config
) -> Path:
    """One published vision artifact (ONNX included), trained once per session."""
    from vision.train import run

    root = tmp_path_factory.mktemp("vision-store")
    return run(shapes_dir, tiny_config, Settings(artifacts_root=root, tracking=False))


@pytest.fixture(scope="session")
def vision_predictor(vision_artifact: Path):
    from vision.serve import VisionPredictor

    return VisionPredictor.from_artifact(vision_artifact)
