"""Checks of docker/k8s: the Kubernetes manifests of the three model APIs.

Structural checks on the YAML (PyYAML only), standing in for a schema validator such as
kubeconform and for a cluster, neither of which the tests need: each API has a Deployment, a
Service and an HPA that point at each other, sized and locked down as the README says. The probe
and scrape paths are checked against the routes of the real app, built by `create_app` for the
project's Predictor (which loads no model); a project whose extras are not installed skips those.
"""

from __future__ import annotations

import importlib
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S_DIR = ROOT / "docker" / "k8s"
NAMESPACE = "ml-portfolio"
PORT = 8080
USER = 10001

# Service -> (serve module, Predictor class, the modules importing it needs beyond the core).
SERVICES = {
    "churn-api": ("churn.serve", "ChurnPredictor", ("lightgbm", "xgboost")),
    "vision-api": ("vision.serve", "VisionPredictor", ("torch", "torchvision", "onnxruntime")),
    "forecast-api": ("forecast.serve", "ForecastPredictor", ("scipy",)),
}
# What each model holds once loaded (measured): the memory request must cover it.
MODEL_MEMORY = {"churn-api": "300M", "vision-api": "600M", "forecast-api": "700M"}

_SUFFIXES = {
    "m": Decimal("0.001"),
    "k": Decimal(10) ** 3,
    "M": Decimal(10) ** 6,
    "G": Decimal(10) ** 9,
    "T": Decimal(10) ** 12,
    "P": Decimal(10) ** 15,
    "E": Decimal(10) ** 18,
    "Ki": Decimal(2) ** 10,
    "Mi": Decimal(2) ** 20,
    "Gi": Decimal(2) ** 30,
    "Ti": Decimal(2) ** 40,
    "Pi": Decimal(2) ** 50,
    "Ei": Decimal(2) ** 60,
}


def parse_quantity(value: str | int | float) -> Decimal:
    """A Kubernetes quantity (`500m`, `1.5`, `2`, `512Mi`, `1G`, `1e3`) as a plain number."""
    text = str(value).strip()
    for suffix in sorted(_SUFFIXES, key=len, reverse=True):
        if text.endswith(suffix) and text[: -len(suffix)]:
            return Decimal(text[: -len(suffix)]) * _SUFFIXES[suffix]
    return Decimal(text)  # plain or exponent form (1e3); InvalidOperation if neither


def load_documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def manifest_files() -> list[Path]:
    return sorted(p for p in K8S_DIR.glob("*.yaml") if p.name != "kustomization.yaml")


def kustomization() -> dict[str, Any]:
    return yaml.safe_load((K8S_DIR / "kustomization.yaml").read_text())


def find(service: str, kind: str) -> dict[str, Any]:
    docs = [
        doc
        for doc in load_documents(K8S_DIR / f"{service}.yaml")
        if doc["kind"] == kind and doc["metadata"]["name"] == service
    ]
    assert len(docs) == 1, f"{service}.yaml: expected one {kind} named {service}, got {len(docs)}"
    return docs[0]


def pod_spec(service: str) -> dict[str, Any]:
    return find(service, "Deployment")["spec"]["template"]["spec"]


def container(service: str) -> dict[str, Any]:
    containers = pod_spec(service)["containers"]
    assert len(containers) == 1, "one container per pod: the API"
    return containers[0]


def http_port(service: str) -> dict[str, Any]:
    (port,) = [p for p in container(service)["ports"] if p.get("name") == "http"]
    return port


def env(service: str) -> dict[str, Any]:
    return {
        var["name"]: var.get("value", var.get("valueFrom")) for var in container(service)["env"]
    }


@cache
def get_routes(service: str) -> frozenset[str]:
    """The paths the service's app answers with GET."""
    module, cls_name, extras = SERVICES[service]
    for name in ("fastapi", *extras):
        pytest.importorskip(
            name, reason=f"{service}: {name} is not installed (the project's extra)"
        )
    from common.serving.app import create_app

    app = create_app(getattr(importlib.import_module(module), cls_name))
    return frozenset(
        route.path for route in app.routes if "GET" in (getattr(route, "methods", None) or ())
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("500m", Decimal("0.5")),
        ("1", Decimal(1)),
        (2, Decimal(2)),
        ("1.5", Decimal("1.5")),
        ("512Mi", Decimal(512 * 2**20)),
        ("1Gi", Decimal(2**30)),
        ("300M", Decimal(300 * 10**6)),
        ("1e3", Decimal(1000)),
    ],
)
def test_parse_quantity(text: str | int, expected: Decimal) -> None:
    assert parse_quantity(text) == expected


def test_every_manifest_parses() -> None:
    files = manifest_files()
    assert {p.name for p in files} >= {f"{s}.yaml" for s in SERVICES} | {"namespace.yaml"}
    seen: set[tuple[str, str]] = set()
    for path in files:
        docs = load_documents(path)
        assert docs, f"{path.name} is empty"
        for doc in docs:
            assert doc.get("apiVersion") and doc.get("kind"), f"{path.name}: {doc}"
            key = (doc["kind"], doc["metadata"]["name"])
            assert key not in seen, f"{path.name}: {key} defined twice"
            seen.add(key)
            # The namespace comes from the kustomization; a different one here would split them.
            assert doc["metadata"].get("namespace", NAMESPACE) == NAMESPACE


def test_kustomization_lists_every_manifest() -> None:
    config = kustomization()
    assert config["namespace"] == NAMESPACE
    resources = config["resources"]
    assert len(resources) == len(set(resources))
    assert set(resources) == {p.name for p in manifest_files()}
    (namespace,) = load_documents(K8S_DIR / "namespace.yaml")
    assert namespace["kind"] == "Namespace"
    assert namespace["metadata"]["name"] == NAMESPACE


def test_readme_exists() -> None:
    assert "kubectl apply -k docker/k8s" in (K8S_DIR / "README.md").read_text()


@pytest.mark.parametrize("service", SERVICES)
def test_labels_and_selectors(service: str) -> None:
    deployment = find(service, "Deployment")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert pod_labels["app.kubernetes.io/name"] == service
    for kind in ("Deployment", "Service", "HorizontalPodAutoscaler"):
        assert find(service, kind)["metadata"]["labels"]["app.kubernetes.io/name"] == service
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert selector.items() <= pod_labels.items(), "the Deployment does not select its own pods"
    service_selector = find(service, "Service")["spec"]["selector"]
    assert service_selector.items() <= pod_labels.items(), "the Service selects no pod"


@pytest.mark.parametrize("service", SERVICES)
def test_service_routes_to_the_container_port(service: str) -> None:
    spec = find(service, "Service")["spec"]
    assert spec.get("type", "ClusterIP") == "ClusterIP"
    (port,) = spec["ports"]
    assert (port["name"], port["port"]) == ("http", 80)
    target = http_port(service)
    assert target["containerPort"] == PORT
    assert port["targetPort"] in (target["name"], target["containerPort"])


@pytest.mark.parametrize("service", SERVICES)
def test_container(service: str) -> None:
    spec = container(service)
    assert spec["image"].split(":")[0] == f"ml-portfolio/{service}"
    variables = env(service)
    assert variables["MLP_SERVE_HOST"] == "0.0.0.0", "the app binds 127.0.0.1 by default"
    # The port the app binds (if set here) is the one the Service and probes use.
    assert int(variables.get("SAGEMAKER_BIND_TO_PORT", PORT)) == PORT
    assert variables.get("MODEL_DIR", "/opt/ml/model") == "/opt/ml/model"


@pytest.mark.parametrize("service", SERVICES)
def test_autoscaler_targets_the_deployment(service: str) -> None:
    hpa = find(service, "HorizontalPodAutoscaler")
    assert hpa["apiVersion"] == "autoscaling/v2"
    spec = hpa["spec"]
    assert spec["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": service,
    }
    assert 2 <= spec["minReplicas"] <= spec["maxReplicas"]
    cpu = [m["resource"] for m in spec["metrics"] if m["type"] == "Resource"]
    assert [(r["name"], r["target"]["type"]) for r in cpu] == [("cpu", "Utilization")]
    assert 0 < cpu[0]["target"]["averageUtilization"] <= 100
    # A fixed count in the Deployment would undo the autoscaler's on every `kubectl apply`.
    assert "replicas" not in find(service, "Deployment")["spec"]


@pytest.mark.parametrize("service", SERVICES)
def test_rollout_and_shutdown(service: str) -> None:
    strategy = find(service, "Deployment")["spec"]["strategy"]
    assert strategy["type"] == "RollingUpdate"
    assert strategy["rollingUpdate"]["maxUnavailable"] == 0
    grace = pod_spec(service)["terminationGracePeriodSeconds"]
    pause = container(service).get("lifecycle", {}).get("preStop", {}).get("sleep", {})
    # uvicorn's graceful shutdown takes up to 10 s after the preStop pause.
    assert pause.get("seconds", 0) + 10 < grace <= 60


@pytest.mark.parametrize("service", SERVICES)
def test_resources(service: str) -> None:
    resources = container(service)["resources"]
    for name in ("cpu", "memory"):
        request = parse_quantity(resources["requests"][name])
        limit = parse_quantity(resources["limits"][name])
        assert 0 < request <= limit, f"{name}: request {request} above limit {limit}"
    memory = parse_quantity(resources["requests"]["memory"])
    assert memory >= parse_quantity(MODEL_MEMORY[service]), "the model alone needs more"


@pytest.mark.parametrize("service", SERVICES)
def test_runs_as_non_root_on_a_read_only_filesystem(service: str) -> None:
    pod = pod_spec(service).get("securityContext", {})
    own = container(service)["securityContext"]
    effective = {**pod, **own}  # the container's settings override the pod's
    assert effective["runAsNonRoot"] is True
    assert effective["runAsUser"] == USER
    assert own["allowPrivilegeEscalation"] is False
    assert own["readOnlyRootFilesystem"] is True
    assert "ALL" in own["capabilities"]["drop"]
    assert not own["capabilities"].get("add")
    # Python's tempfile and the libraries need a writable /tmp.
    (mount,) = [m for m in container(service)["volumeMounts"] if m["mountPath"] == "/tmp"]
    (volume,) = [v for v in pod_spec(service)["volumes"] if v["name"] == mount["name"]]
    assert "emptyDir" in volume


@pytest.mark.parametrize("service", SERVICES)
def test_probes(service: str) -> None:
    spec = container(service)
    probes = {kind: spec[f"{kind}Probe"] for kind in ("startup", "readiness", "liveness")}
    paths = {kind: probe["httpGet"]["path"] for kind, probe in probes.items()}
    # Liveness and startup must not wait for the model (a slow load would get the pod killed);
    # readiness must (no traffic before the model can answer).
    assert paths == {"startup": "/health", "readiness": "/ready", "liveness": "/health"}
    for kind, probe in probes.items():
        assert probe["httpGet"]["port"] in ("http", PORT), kind
        assert probe.get("timeoutSeconds", 1) <= probe.get("periodSeconds", 10), kind
    startup = probes["startup"]
    budget = startup["periodSeconds"] * startup["failureThreshold"]
    assert budget >= 30, f"the startup probe allows {budget} s to import and bind"


@pytest.mark.parametrize("service", SERVICES)
def test_scrape_annotations(service: str) -> None:
    annotations = find(service, "Deployment")["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert int(annotations["prometheus.io/port"]) == PORT
    assert annotations["prometheus.io/path"] == "/metrics"


@pytest.mark.parametrize("service", SERVICES)
def test_probe_and_scrape_paths_are_routes_of_the_app(service: str) -> None:
    spec = container(service)
    annotations = find(service, "Deployment")["spec"]["template"]["metadata"]["annotations"]
    paths = {
        spec[f"{kind}Probe"]["httpGet"]["path"] for kind in ("startup", "readiness", "liveness")
    }
    paths.add(annotations["prometheus.io/path"])
    routes = get_routes(service)
    assert paths <= routes, f"not GET routes of {service}: {sorted(paths - routes)}"
