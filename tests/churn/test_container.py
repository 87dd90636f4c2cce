"""The churn API's image and the churn dashboard's, built and run for real
(`pytest -m container`; tests/docker/images.py says how, and skips where no engine works). The
API's model is baked in through the MODEL build argument; the dashboard's is mounted."""

from __future__ import annotations

import json
import shutil
import tempfile
import urllib.request
from pathlib import Path

import pytest

from benchmarks.containers import Container, Engine, build_context, readable_copy
from common.artifacts import read_manifest
from tests.docker.images import (
    check_container_contract,
    engine,
    post,
    record_figures,
    run_image,
)

pytestmark = pytest.mark.container
__all__ = ["engine", "run_image"]  # fixtures, used by name

# The dashboard's default page (the model report), run by Streamlit's AppTest in the image.
RUN_DASHBOARD = """
from streamlit.testing.v1 import AppTest
from common.launch_dashboard import dashboard_file
at = AppTest.from_file(dashboard_file("churn"), default_timeout=90).run()
assert not at.exception, [e.value for e in at.exception]
print("no exception;", next(c.value for c in at.caption if c.value.startswith("Churn model"))
      .split(" (")[0])
"""


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
