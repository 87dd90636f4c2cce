"""The service images, built and run for real (`pytest -m container`): each is built from its
Dockerfile with a trained model, started with `serve` as SageMaker starts it, and probed: /ping,
one /invocations call per content type it accepts, the non-root user, the HEALTHCHECK, the
SageMaker label, and a clean exit on SIGTERM.

Churn bakes its model in through the MODEL build argument; vision and forecast get theirs
mounted read-only at /opt/ml/model, so both ways are covered and no service writes to its model.

Skipped, with the reason, where neither podman nor docker can run containers. Building needs
the base image `python:3.11-slim` and PyPI; torch comes from TORCH_INDEX_URL when that is set in
the environment (CI sets it empty: plain PyPI), else from the Dockerfiles' default, PyTorch's
CPU-only index.
"""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
import tempfile
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from benchmarks.containers import Container, Engine, build_context, readable_copy
from common.artifacts import read_manifest
from tests.conftest import free_port

pytestmark = pytest.mark.container

# The churn dashboard's default page (the model report), run by Streamlit's AppTest.
RUN_DASHBOARD = """
from streamlit.testing.v1 import AppTest
from common.launch_dashboard import dashboard_file
at = AppTest.from_file(dashboard_file("churn"), default_timeout=90).run()
assert not at.exception, [e.value for e in at.exception]
print("no exception;", next(c.value for c in at.caption if c.value.startswith("Churn model"))
      .split(" (")[0])
"""
SAGEMAKER_LABEL = "com.amazonaws.sagemaker.capabilities.accept-bind-to-port"
FIGURES = Path("test-artifacts") / "containers.json"


@pytest.fixture(scope="module")
def engine() -> Engine:
    found = Engine.find()
    if found is None:
        pytest.skip("neither podman nor docker is installed (CONTAINER_ENGINE picks one)")
    problem = found.usable()
    if problem is not None:
        pytest.skip(problem)
    return found


def post(url: str, body: bytes, content_type: str) -> tuple[int, str, bytes]:
    request = urllib.request.Request(
        url, data=body, method="POST",
        headers={"Content-Type": content_type, "Accept": "application/json"},
    )  # fmt: skip
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.headers.get("Content-Type", ""), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get("Content-Type", ""), exc.read()


def record_figures(service: str, figures: dict[str, float]) -> None:
    """Build time, size and cold start, kept as a test artifact for the closing report."""
    FIGURES.parent.mkdir(exist_ok=True)
    known = json.loads(FIGURES.read_text()) if FIGURES.exists() else {}
    known[service] = figures
    FIGURES.write_text(json.dumps(known, indent=2))


@pytest.fixture(scope="module")
def run_image(engine: Engine) -> Iterator:
    """Build `service`'s image (model baked in or mounted), start it with `serve`, wait for
    /ping; yields the running Container. Removes containers and images afterwards."""
    made: list[tuple[Container, str]] = []
    scratch = Path(tempfile.mkdtemp(prefix="mlp-images-"))

    def _run(service: str, model: Path, *, bake: bool) -> Container:
        tag = f"localhost/ml-portfolio/{service}-api:test"
        context = build_context(scratch / f"{service}-context", (service,),
                                model if bake else None)  # fmt: skip
        args = {"MODEL": "build/model"} if bake else {}
        if "TORCH_INDEX_URL" in os.environ:
            args["TORCH_INDEX_URL"] = os.environ["TORCH_INDEX_URL"]
        build_s = engine.build(f"docker/{service}.Dockerfile", context, tag, args)
        volumes = []
        if not bake:
            mounted = readable_copy(model, scratch / f"{service}-model")
            volumes = [f"{mounted}:/opt/ml/model:ro"]
        container = Container(engine, tag, free_port(), volumes)
        made.append((container, tag))
        container.start("serve")
        cold_start_s = container.wait_ready()
        record_figures(service, {"build_s": round(build_s, 1),
                                 "image_mb": round(engine.image_bytes(tag) / 1e6),
                                 "cold_start_s": round(cold_start_s, 2)})  # fmt: skip
        return container

    yield _run
    for container, tag in made:
        container.remove()
        engine.run("rmi", "-f", tag, check=False)
    shutil.rmtree(scratch, ignore_errors=True)


def check_container_contract(engine: Engine, container: Container, sagemaker: bool = True) -> None:
    """What every image promises besides its answers."""
    assert engine.run("exec", container.name, "id", "-u") == "10001"  # not root
    if sagemaker:
        label = engine.run("image", "inspect", container.image, "--format",
                           f'{{{{ index .Config.Labels "{SAGEMAKER_LABEL}" }}}}')  # fmt: skip
        assert label == "true"
    if engine.name == "podman":  # docker has no command that runs a HEALTHCHECK on demand
        engine.run("healthcheck", "run", container.name)
    exit_code, seconds = container.stop()
    assert exit_code == 0, container.logs()  # SIGTERM: drained and exited cleanly, not killed
    assert seconds < 15


def test_churn_image(engine: Engine, run_image, trained_artifact: Path) -> None:
    from churn.serve import ChurnPredictor

    container = run_image("churn", trained_artifact, bake=True)
    example = ChurnPredictor.examples[0]
    status, kind, body = post(f"{container.url}/invocations",
                              json.dumps(example).encode(), "application/json")  # fmt: skip
    assert status == 200 and kind.startswith("application/json"), body
    prediction = json.loads(body)["predictions"][0]
    assert 0 <= prediction["churn_probability"] <= 1
    # Batch transform: headerless CSV lines, one answer line each, in order.
    line = ",".join(str(v) for v in example.values()).encode()
    status, kind, body = post(f"{container.url}/invocations", line + b"\n" + line + b"\n",
                              "text/csv")  # fmt: skip
    assert status == 200, body
    assert len(json.loads(body)["predictions"]) == 2
    status, _, body = post(f"{container.url}/invocations", b"<x/>", "application/xml")
    assert status == 415 and b"error" in body
    # Only the churn extra went in: no torch (nor the other projects' libraries).
    others = "import importlib.util as u; print([m for m in {!r} if u.find_spec(m)])"
    found = engine.run("exec", container.name, "python", "-c",
                       others.format(("torch", "prophet", "onnxruntime")))  # fmt: skip
    assert found == "[]"
    check_container_contract(engine, container)


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


def test_churn_dashboard_image(engine: Engine, trained_artifact: Path, tmp_path: Path) -> None:
    """The dashboard image (built here for churn, the quickest): it finds the project's app in
    site-packages, reads the mounted model and answers Streamlit's health check."""
    if Container(engine, "", 8501).port_in_use():
        pytest.skip("port 8501, the dashboard image's, is taken on this machine")
    tag = "localhost/ml-portfolio/churn-dashboard:test"
    context = build_context(tmp_path / "context", ("churn",), None)
    args = {"PROJECT": "churn"}
    build_s = engine.build("docker/dashboard.Dockerfile", context, tag, args)
    mounted = readable_copy(trained_artifact, Path(tempfile.mkdtemp(prefix="mlp-dash-")))
    container = Container(engine, tag, 8501, [f"{mounted}:/opt/ml/model:ro"], "/_stcore/health")
    try:
        container.start()
        cold_start_s = container.wait_ready()
        with urllib.request.urlopen(container.url, timeout=10) as page:
            assert b"<title>Streamlit</title>" in page.read()
        # Streamlit serves that page without running the app: run it, inside the image, on
        # the mounted model, the way Streamlit would for a browser.
        shown = engine.run("exec", container.name, "python", "-c", RUN_DASHBOARD, timeout=120)
        version = read_manifest(mounted).version
        assert shown.splitlines()[-1] == f"no exception; Churn model {version}"
        check_container_contract(engine, container, sagemaker=False)
    finally:
        container.remove()
        engine.run("rmi", "-f", tag, check=False)
        shutil.rmtree(mounted.parent, ignore_errors=True)
    record_figures("churn-dashboard", {"build_s": round(build_s, 1),
                                       "cold_start_s": round(cold_start_s, 2)})  # fmt: skip


# The artifacts the project test suites train once per session.
from tests.forecast.conftest import (  # noqa: E402
    fast_forecast_config,
    forecast_artifact,
    forecast_files,
)
from tests.vision.conftest import shapes_dir, tiny_config, vision_artifact  # noqa: E402

__all__ = ["fast_forecast_config", "forecast_artifact", "forecast_files", "shapes_dir",
           "tiny_config", "vision_artifact"]  # fmt: skip
