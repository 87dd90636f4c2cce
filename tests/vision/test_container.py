"""The vision API's image, built and run for real (`pytest -m container`; tests/docker/images.py
says how, and skips where no engine works), its model mounted read-only at /opt/ml/model."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import pytest
from PIL import Image

from benchmarks.containers import Engine
from tests.docker.images import check_container_contract, engine, post, run_image

pytestmark = pytest.mark.container
__all__ = ["engine", "run_image"]  # fixtures, used by name


def test_vision_image(engine: Engine, run_image, vision_artifact: Path) -> None:
    container = run_image("vision", vision_artifact, bake=False)
    picture = Image.new("RGB", (64, 48), (200, 30, 30))
    for content_type, fmt in [("image/jpeg", "JPEG"), ("image/png", "PNG"),
                              ("application/x-image", "PNG")]:  # fmt: skip
        buffer = io.BytesIO()
        picture.save(buffer, fmt)
        status, _, body = post(f"{container.url}/invocations", buffer.getvalue(), content_type)
        assert status == 200, (content_type, body)
        assert json.loads(body)["predictions"][0]["label"], content_type
    payload = {"instances": [{"image": base64.b64encode(buffer.getvalue()).decode(), "top_k": 2}]}
    status, _, body = post(f"{container.url}/invocations", json.dumps(payload).encode(),
                           "application/json")  # fmt: skip
    assert status == 200, body
    assert len(json.loads(body)["predictions"][0]["top_k"]) == 2
    check_container_contract(engine, container)
