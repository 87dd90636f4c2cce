"""What the container tests share (`pytest -m container`; each project's `test_container.py`
uses it, with the model its own test suite trained once): build a service's image from its
Dockerfile with a trained model, start it with `serve` as SageMaker starts it, and check what
every image promises (the non-root user, the HEALTHCHECK, the SageMaker label, a clean exit on
SIGTERM). The helpers underneath are benchmarks/containers.py's, which times the same steps.

Skipped, with the reason, where neither podman nor docker can run containers. Building needs
the base image `python:3.11-slim` and PyPI; torch comes from PyPI, the Dockerfiles' default,
or first from the index TORCH_INDEX_URL names when that is set in the environment.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from benchmarks.containers import Container, Engine, build_context, readable_copy
from tests.conftest import free_port

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
