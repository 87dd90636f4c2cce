"""The forecast API's image, built and run for real (`pytest -m container`;
tests/docker/images.py says how, and skips where no engine works), its model mounted read-only
at /opt/ml/model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.containers import Engine
from tests.docker.images import check_container_contract, engine, post, run_image

pytestmark = pytest.mark.container
__all__ = ["engine", "run_image"]  # fixtures, used by name


def test_forecast_image(engine: Engine, run_image, forecast_artifact: Path) -> None:
    from forecast.serve import ForecastPredictor

    container = run_image("forecast", forecast_artifact, bake=False)
    series = ForecastPredictor.from_artifact(forecast_artifact).ids[0]
    status, _, body = post(f"{container.url}/invocations",
                           json.dumps({"series_id": series, "horizon": 3}).encode(),
                           "application/json")  # fmt: skip
    assert status == 200, body
    assert len(json.loads(body)["predictions"][0]["points"]) == 3
    # JSON is its only content type: anything else is a clean 415, not a crash.
    status, _, body = post(f"{container.url}/invocations", b"a,b\n", "text/csv")
    assert status == 415 and b"error" in body
    check_container_contract(engine, container)
