"""The shared serving app, on a toy tabular model: probes, /predict, errors, limits, request ids,
metrics, logs and the OpenAPI schema. Churn-specific API tests live in tests/churn/."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI, Request, Response
from fastapi.testclient import TestClient
from openapi_spec_validator import validate as validate_openapi
from prometheus_client.parser import text_string_to_metric_families

from common.errors import ArtifactError
from common.serving.app import create_app
from common.serving.errors import ApiError, install_error_handlers
from common.serving.media import DirectRoute
from common.serving.observability import JsonFormatter
from common.settings import ServeSettings

ROW = {"id": "a", "age": 30, "plan": "pro"}


def wait_ready(client: TestClient, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while client.get("/ready").status_code != 200:
        assert time.monotonic() < deadline, client.get("/ready").json()
        time.sleep(0.01)


@pytest.fixture
def make_client(toy_predictor, toy_artifact: Path) -> Iterator[Callable[..., TestClient]]:
    """Build an app on the toy model (settings overridable), start it, wait until ready."""
    clients: list[TestClient] = []

    def _make(load: Callable | None = None, ready: bool = True, **settings) -> TestClient:
        app = create_app(
            toy_predictor, ServeSettings(model_dir=toy_artifact, **settings), load=load
        )
        client = TestClient(app, raise_server_exceptions=False)
        client.__enter__()
        clients.append(client)
        if ready:
            wait_ready(client)
        return client

    yield _make
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client) -> TestClient:
    return make_client()


def metric(client: TestClient, sample_name: str, **labels: str) -> float:
    for family in text_string_to_metric_families(client.get("/metrics").text):
        for sample in family.samples:
            if sample.name == sample_name and all(
                sample.labels.get(k) == v for k, v in labels.items()
            ):
                return sample.value
    return 0.0


def test_probes_and_metadata(client: TestClient, toy_artifact: Path) -> None:
    assert client.get("/health").json() == {"status": "ok"}
    assert client.get("/ready").json() == {"status": "ready"}
    ping = client.get("/ping")
    assert ping.status_code == 200 and ping.content == b""
    meta = client.get("/metadata").json()
    assert meta["name"] == "toy" and meta["version"] == toy_artifact.name
    assert meta["metrics"] == {"test": {"accuracy": 1.0}}
    assert meta["data_fingerprint"] == "f" * 64 and meta["created_at"]
    assert "age" in meta["input_schema"]["properties"]
    assert meta["output_columns"] == {"id": "string", "score": "float", "flagged": "bool"}
    assert meta["limits"]["max_batch_rows"] == 50_000


def test_predict_one_record_or_a_list(client: TestClient) -> None:
    one = client.post("/predict", json=ROW)
    assert one.status_code == 200
    assert one.json() == {"id": "a", "score": pytest.approx(0.55), "flagged": True}
    rows = [ROW, {"age": 20, "plan": "basic"}, {"id": "c", "age": 90, "plan": "basic"}]
    many = client.post("/predict", json=rows).json()
    assert [m["id"] for m in many] == ["a", None, "c"]
    assert [m["flagged"] for m in many] == [True, False, True]


def test_not_ready_until_loaded_then_ready(make_client, toy_predictor, toy_artifact) -> None:
    release = threading.Event()

    def slow_load():
        release.wait(10)
        return toy_predictor.from_artifact(toy_artifact)

    client = make_client(load=slow_load, ready=False)
    assert client.get("/health").status_code == 200  # alive while loading
    for path in ("/ready", "/ping", "/metadata", "/v2/health/ready"):
        response = client.get(path)
        assert response.status_code == 503, path
        assert response.json() == {
            "error": "model not ready",
            "detail": "the model is still loading",
        }
    assert client.post("/predict", json=ROW).status_code == 503
    release.set()
    wait_ready(client)
    assert client.post("/predict", json=ROW).status_code == 200


def test_a_model_that_fails_to_load_keeps_the_service_unready_with_the_reason(
    make_client, caplog: pytest.LogCaptureFixture
) -> None:
    def broken():
        raise ArtifactError("/models/x: manifest.json does not match its checksum")

    client = make_client(load=broken, ready=False)
    deadline = time.monotonic() + 5
    while "failed" not in client.get("/ready").json()["detail"]:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    body = client.get("/ready").json()
    assert "does not match its checksum" in body["detail"]
    assert client.get("/health").status_code == 200
    assert any("failed to load" in r.getMessage() for r in caplog.records)


def test_model_dir_default_is_production_then_latest(tmp_path: Path, toy_artifact: Path) -> None:
    from common.artifacts import ArtifactStore

    store = ArtifactStore(toy_artifact.parent.parent, "toy")
    assert store.resolve_serving() == toy_artifact
    with store.create() as draft:
        (draft.path / "model.json").write_text('{"bonus": 0}')
    assert store.resolve_serving() == draft.final_path  # latest
    store.promote(toy_artifact.name)
    assert store.resolve_serving() == toy_artifact  # production wins over latest
    assert store.resolve_serving(tmp_path) == tmp_path  # and MODEL_DIR over both
    with pytest.raises(ArtifactError, match="train a model first"):
        ArtifactStore(tmp_path / "none", "toy").resolve_serving()


def test_settings_read_container_conventions(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODEL_DIR", "/opt/ml/model")
    monkeypatch.setenv("SAGEMAKER_BIND_TO_PORT", "9090")
    monkeypatch.setenv("MLP_SERVE_MAX_BATCH_ROWS", "10")
    settings = ServeSettings()
    assert (settings.model_dir, settings.port, settings.max_batch_rows) == (
        Path("/opt/ml/model"), 9090, 10,
    )  # fmt: skip
    monkeypatch.delenv("SAGEMAKER_BIND_TO_PORT")
    assert ServeSettings().port == 8080


def test_request_id_is_returned_and_kept_when_sane(client: TestClient) -> None:
    generated = client.get("/health").headers["x-request-id"]
    assert len(generated) == 32
    assert (
        client.get("/health", headers={"x-request-id": "abc-123"}).headers["x-request-id"]
        == "abc-123"
    )
    hostile = client.get("/health", headers={"x-request-id": "x" * 500 + "\n"})
    assert hostile.headers["x-request-id"] != "x" * 500


def test_body_over_the_limit_is_413_declared_or_streamed(make_client) -> None:
    client = make_client(max_body_bytes=2048)
    big = json.dumps([ROW] * 100).encode()
    response = client.post("/predict", content=big, headers={"content-type": "application/json"})
    assert response.status_code == 413
    assert "2,048 bytes" in response.json()["error"]

    def chunks():  # no Content-Length: the limit is enforced while reading
        for _ in range(10):
            yield b" " * 1000

    streamed = client.post(
        "/predict", content=chunks(), headers={"content-type": "application/json"}
    )
    assert streamed.status_code == 413
    assert client.post("/predict", json=ROW).status_code == 200  # still serving


def test_batch_over_the_row_limit_is_413(make_client) -> None:
    client = make_client(max_batch_rows=5)
    response = client.post("/predict", json=[ROW] * 6)
    assert response.status_code == 413
    assert response.json()["error"] == (
        "batch of 6 rows is above this service's limit of 5 rows; split it"
    )
    csv = "age,plan\n" + "30,pro\n" * 6
    response = client.post("/invocations", content=csv, headers={"content-type": "text/csv"})
    assert response.status_code == 413 and "limit of 5 rows" in response.json()["error"]


def test_unexpected_errors_are_a_generic_500_with_the_request_id(
    make_client, toy_predictor, toy_artifact, caplog: pytest.LogCaptureFixture
) -> None:
    predictor = toy_predictor.from_artifact(toy_artifact)

    def explode(records):
        raise RuntimeError("secret internals")

    predictor.predict_batch = explode
    client = make_client(load=lambda: predictor)
    response = client.post("/predict", json=ROW, headers={"x-request-id": "req-42"})
    assert response.status_code == 500
    assert response.json() == {"error": "internal error", "detail": "logged with request id req-42"}
    assert "secret" not in response.text and "Traceback" not in response.text
    logged = [r for r in caplog.records if getattr(r, "request_id", None) == "req-42"]
    assert any(r.exc_info and "secret internals" in str(r.exc_info[1]) for r in logged)
    assert metric(client, "http_requests_total", route="/predict", status="500") == 1


def test_unknown_route_and_method_use_the_error_shape(client: TestClient) -> None:
    missing = client.get("/nope")
    assert missing.status_code == 404 and missing.json()["error"] == "no such endpoint: /nope"
    wrong = client.get("/predict")
    assert wrong.status_code == 405 and "GET not allowed" in wrong.json()["error"]


def test_metrics_count_requests_predictions_and_scores(client: TestClient, toy_artifact) -> None:
    client.post("/predict", json=ROW)
    client.post("/predict", json=[ROW, ROW, {"age": 20, "plan": "basic"}])
    client.post("/predict", json={"age": 5, "plan": "pro"})
    assert metric(client, "http_requests_total", route="/predict", status="200") == 2
    assert metric(client, "http_requests_total", route="/predict", status="422") == 1
    assert (
        metric(client, "http_request_duration_seconds_count", route="/predict", status="200") == 2
    )
    assert (
        metric(client, "http_request_duration_seconds_count", route="/predict", status="422") == 1
    )
    assert metric(client, "model_predictions_total", route="/predict") == 4
    assert metric(client, "model_prediction_score_count") == 4
    assert metric(client, "model_prediction_score_bucket", le="0.5") == 1  # 0.2
    assert metric(client, "model_prediction_score_sum") == pytest.approx(3 * 0.55 + 0.2)
    assert metric(client, "model_info", name="toy", version=toy_artifact.name) == 1
    client.get("/v2/models/nothing/ready")
    labels = {s.labels.get("route") for f in text_string_to_metric_families(
        client.get("/metrics").text) for s in f.samples}  # fmt: skip
    assert "/v2/models/{name}/ready" in labels  # templates, not raw paths


def test_each_request_is_logged_once_with_its_id(client: TestClient, caplog) -> None:
    caplog.set_level(logging.INFO, logger="common.serving.requests")
    client.post("/predict", json=ROW, headers={"x-request-id": "log-me"})
    [record] = [r for r in caplog.records if getattr(r, "request_id", None) == "log-me"]
    assert (record.method, record.path, record.status) == ("POST", "/predict", 200)
    assert record.duration_ms > 0
    line = json.loads(JsonFormatter().format(record))
    assert line["request_id"] == "log-me" and line["level"] == "INFO" and line["status"] == 200


def test_openapi_schema_is_valid_and_typed(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    validate_openapi(spec)
    predict = spec["paths"]["/predict"]["post"]
    body = predict["requestBody"]["content"]["application/json"]
    assert set(body["examples"]) == {"one record", "a batch"}
    assert "ToyCustomer" in json.dumps(body["schema"])
    assert {"200", "400", "413", "415", "422", "503"} <= set(predict["responses"])
    assert "Scored" in json.dumps(predict["responses"]["200"])
    invocations = spec["paths"]["/invocations"]["post"]["requestBody"]["content"]
    assert set(invocations) == {"application/json", "text/csv"}


def test_score_histogram_counts_one_value_like_many() -> None:
    import numpy as np

    from common.serving.observability import SCORE_BUCKETS, ScoreHistogram

    one, many = (ScoreHistogram("s", "doc", SCORE_BUCKETS) for _ in range(2))
    values = [0.0, 0.1, 0.15, 0.5, 0.99, 1.0, 1.5, float("nan")]
    for v in values:
        one.observe_many(np.array([v]))
    many.observe_many(np.array(values))
    [a], [b] = one.collect(), many.collect()
    assert [(s.labels, s.value) for s in a.samples] == [(s.labels, s.value) for s in b.samples]
    buckets = {s.labels["le"]: s.value for s in a.samples if s.name.endswith("_bucket")}
    assert buckets["0.1"] == 2 and buckets["1"] == 6 and buckets["+Inf"] == 7  # le is <=


def test_predict_needs_a_json_content_type(client: TestClient) -> None:
    body = json.dumps(ROW).encode()
    missing = client.post("/predict", content=body)
    assert missing.status_code == 415 and "no Content-Type" in missing.json()["error"]
    plain = client.post("/predict", content=body, headers={"content-type": "text/plain"})
    assert plain.status_code == 415


@pytest.mark.parametrize("age", [True, "30", 30.5])
def test_numbers_are_strict(client: TestClient, age) -> None:
    response = client.post("/predict", json={**ROW, "age": age})
    assert response.status_code == 422 and response.json()["detail"][0]["field"] == "age"


def test_made_up_methods_share_one_metrics_label(client: TestClient) -> None:
    for method in ("FOO1", "FOO2"):
        assert client.request(method, "/predict").status_code in (400, 405)
    labels = {s.labels.get("method") for f in text_string_to_metric_families(
        client.get("/metrics").text) for s in f.samples}  # fmt: skip
    assert "other" in labels and not {"FOO1", "FOO2"} & labels


def test_a_direct_route_is_documented_called_as_is_and_its_errors_keep_the_common_shape() -> None:
    app = FastAPI()
    install_error_handlers(app)

    async def echo(request: Request) -> Response:
        if request.query_params.get("fail"):
            raise ApiError(422, "invalid request: fail was set")
        return Response(await request.body(), media_type="application/octet-stream")

    app.router.add_api_route("/echo", echo, methods=["POST"], route_class_override=DirectRoute,
                             summary="Echo the body")  # fmt: skip
    with TestClient(app) as client:
        assert client.post("/echo", content=b"\x00raw").content == b"\x00raw"
        failed = client.post("/echo?fail=1", content=b"x")
        assert (
            failed.status_code == 422 and failed.json()["error"] == "invalid request: fail was set"
        )
        assert client.get("/echo").status_code == 405
        assert (
            client.get("/openapi.json").json()["paths"]["/echo"]["post"]["summary"]
            == "Echo the body"
        )
