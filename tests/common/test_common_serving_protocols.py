"""SageMaker's /ping and /invocations and the Open Inference Protocol (v2), on the toy model."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from common.serving.app import create_app
from common.settings import ServeSettings

CSV_HEADER = "id,age,plan\n"


@contextmanager
def started(predictor_cls, artifact: Path) -> Iterator[TestClient]:
    """A client of the app serving `artifact`, once its model has loaded."""
    app = create_app(predictor_cls, ServeSettings(model_dir=artifact))
    with TestClient(app, raise_server_exceptions=False) as client:
        deadline = time.monotonic() + 10
        while client.get("/ping").status_code != 200:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        yield client


@pytest.fixture
def client(toy_predictor, toy_artifact: Path) -> Iterator[TestClient]:
    with started(toy_predictor, toy_artifact) as client:
        yield client


def invoke(client: TestClient, body: str | bytes, content_type: str, accept: str | None = None):
    headers = {"content-type": content_type}
    if accept is not None:
        headers["accept"] = accept
    return client.post("/invocations", content=body, headers=headers)


def test_csv_batch_gives_one_line_per_input_line_in_order(client: TestClient) -> None:
    ages = [18, 90, 45, 60, 19, 77, 33]
    lines = "".join(f"r{i},{age},basic\n" for i, age in enumerate(ages))
    response = invoke(client, lines, "text/csv")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    assert response.text.count("\n") == len(ages)  # no header: batch transform joins lines
    out = pd.read_csv(io.StringIO(response.text), header=None, names=["id", "score", "flag"])
    assert out["id"].tolist() == [f"r{i}" for i in range(len(ages))]
    assert out["score"].tolist() == pytest.approx([a / 100 for a in ages])


def test_csv_header_is_optional_and_required_columns_alone_are_enough(client: TestClient) -> None:
    with_header = invoke(client, CSV_HEADER + "a,30,pro\n", "text/csv").text
    without = invoke(client, "a,30,pro\n", "text/csv").text
    assert with_header == without == '"a",0.55,true\n'
    assert invoke(client, "30,pro\n", "text/csv").text == ",0.55,true\n"
    reordered = invoke(client, "plan,age\npro,30\n", "text/csv")
    assert reordered.text == ",0.55,true\n"


def test_accept_chooses_the_answer_format(client: TestClient) -> None:
    as_json = invoke(client, "a,30,pro\n", "text/csv", accept="application/json").json()
    assert as_json == {"predictions": [{"id": "a", "score": 0.55, "flagged": True}]}
    headed = invoke(client, "a,30,pro\n", "text/csv", accept="text/csv; header=present")
    assert headed.text == '"id","score","flagged"\n"a",0.55,true\n'
    anything = invoke(client, '{"age": 30, "plan": "pro"}', "application/json", accept="*/*")
    assert anything.headers["content-type"] == "application/json"
    refused = invoke(client, "a,30,pro\n", "text/csv", accept="application/xml")
    assert refused.status_code == 406 and "application/xml" in refused.json()["error"]


def test_json_invocations_take_a_record_a_list_or_instances(client: TestClient) -> None:
    row = {"id": "a", "age": 30, "plan": "pro"}
    for body in (row, [row], {"instances": [row]}):
        response = client.post("/invocations", json=body)
        assert response.json()["predictions"] == [{"id": "a", "score": 0.55, "flagged": True}]
    as_csv = client.post("/invocations", json=[row, row], headers={"accept": "text/csv"})
    assert as_csv.text == '"a",0.55,true\n"a",0.55,true\n'


@pytest.mark.parametrize(
    ("body", "content_type", "status", "expected"),
    [
        ("", "text/csv", 400, "empty body"),
        ("a\n", "text/csv", 400, "must have 3 fields (id, age, plan) or 2"),
        ("a,30,pro\nb,40\n", "text/csv", 400, "line 2: 2 fields, expected 3"),
        ("a,30,pro\nb,40,pro,extra\n", "text/csv", 400, "line 2: 4 fields, expected 3"),
        (CSV_HEADER + "a,thirty,pro\nb,-4,gold\n", "text/csv", 422, "column 'age': is not numeric"),
        ("id,age,plan,colour\na,30,pro,red\n", "text/csv", 422, "column 'colour': is not in"),
        (b"\xff\xfe,30,pro\n", "text/csv", 400, "not UTF-8"),
        ("{bad json", "application/json", 400, "malformed JSON"),
        ("[]", "application/json", 422, "batch is empty"),
        ('{"age": 30}', "application/json", 422, "plan: Field required"),
        ("age=30", "application/x-www-form-urlencoded", 415, "unsupported content type"),
        ("age,plan\n30,pro\n", "", 415, "no Content-Type"),
        (CSV_HEADER + "a,inf,pro\nb,1e400,pro\n", "text/csv", 422, "column 'age': is infinite"),
        ("age,plan,age\n30,pro,31\n", "text/csv", 400, "header repeats columns: age"),
        # An empty line is a row (of missing values), so answers stay one per line.
        ("a,30,pro\n\nb,40,pro\n", "text/csv", 422, "column 'age': has missing values (1 row: 2"),
        ("[" * 100_000, "application/json", 400, "malformed JSON"),
        ('{"age": 1' + "0" * 5000 + "}", "application/json", 400, "malformed JSON"),
    ],
)
def test_bad_batches_get_a_4xx_naming_the_problem(
    client: TestClient, body, content_type: str, status: int, expected: str
) -> None:
    headers = {"content-type": content_type} if content_type else {}
    response = client.post("/invocations", content=body, headers=headers)
    assert response.status_code == status, response.text
    assert expected in response.json()["error"]
    assert client.get("/ping").status_code == 200  # and the service keeps serving


def test_csv_problems_list_every_bad_row(client: TestClient) -> None:
    body = CSV_HEADER + "a,30,pro\nb,-4,pro\nc,40,gold\nd,500,basic\n"
    response = invoke(client, body, "text/csv")
    assert response.status_code == 422
    problems = {(p["column"], tuple(p["rows"])) for p in response.json()["detail"]}
    assert problems == {("age", (2,)), ("plan", (3,)), ("age", (4,))}


def tensor(name: str, data: list, datatype: str = "BYTES", shape: list[int] | None = None):
    return {"name": name, "datatype": datatype, "shape": shape or [len(data)], "data": data}


def test_v2_health_metadata_and_infer(client: TestClient, toy_artifact: Path) -> None:
    assert client.get("/v2/health/live").status_code == 200
    assert client.get("/v2/health/ready").status_code == 200
    assert client.get("/v2/models/toy/ready").status_code == 200
    meta = client.get("/v2/models/toy").json()
    assert meta["versions"] == [toy_artifact.name]
    assert {"name": "age", "datatype": "INT64", "shape": [-1]} in meta["inputs"]
    assert {"name": "flagged", "datatype": "BOOL", "shape": [-1]} in meta["outputs"]
    request = {"id": "req-1", "inputs": [tensor("age", [30, 20], "INT64"),
                                         tensor("plan", ["pro", "basic"])]}  # fmt: skip
    answer = client.post("/v2/models/toy/infer", json=request).json()
    assert answer["model_name"] == "toy" and answer["id"] == "req-1"
    outputs = {o["name"]: o for o in answer["outputs"]}
    assert outputs["score"]["data"] == pytest.approx([0.55, 0.2])
    assert outputs["score"]["datatype"] == "FP64" and outputs["score"]["shape"] == [2]
    assert outputs["flagged"] == {"name": "flagged", "shape": [2], "datatype": "BOOL",
                                  "data": [True, False]}  # fmt: skip


@pytest.mark.parametrize(
    ("inputs", "status", "expected"),
    [
        ([tensor("age", [30, 20], "INT64"), tensor("plan", ["pro"])], 422, "differ in length"),
        ([tensor("age", [30], "INT64", [2])], 422, "has shape [2] but 1 values"),
        ([tensor("age", [30], "INT64", [1, 1, 1])], 422, "one 1-D tensor per column"),
        ([tensor("age", [30], "INT64"), tensor("age", [3], "INT64")], 422, "repeated: age"),
        ([tensor("age", [30], "INT64")], 422, "column 'plan': is missing"),
        ([tensor("age", [-1], "INT64"), tensor("plan", ["x"])], 422, "below the minimum 18"),
        ([], 422, "inputs: List should have at least 1 item"),
        # Strict numbers, as on /predict: validation would otherwise coerce "30" and true.
        ([tensor("age", [30, "30"], "INT64"), tensor("plan", ["pro", "pro"])], 422,
         "input 'age' is INT64 but value 1 is '30', not a number"),
        ([tensor("age", [True], "INT64"), tensor("plan", ["pro"])], 422,
         "input 'age' is INT64 but value 0 is True, not a number"),
    ],
)  # fmt: skip
def test_v2_bad_tensors(client: TestClient, inputs, status: int, expected: str) -> None:
    response = client.post("/v2/models/toy/infer", json={"inputs": inputs})
    assert response.status_code == status and expected in response.json()["error"]


def test_v2_unknown_model_is_404(client: TestClient) -> None:
    response = client.post("/v2/models/other/infer", json={"inputs": [tensor("age", [1])]})
    assert response.status_code == 404 and "no model named 'other'" in response.json()["error"]
    assert client.get("/v2/models/other").status_code == 404


def test_csv_answer_reads_back_as_the_table(client: TestClient) -> None:
    body = CSV_HEADER + "".join(f"r{i},{20 + i},basic\n" for i in range(50))
    response = invoke(client, body, "text/csv", accept="text/csv;header=present")
    table = pd.read_csv(io.StringIO(response.text))
    assert list(table.columns) == ["id", "score", "flagged"] and len(table) == 50


def test_a_value_equal_to_a_column_name_does_not_make_a_header(client: TestClient) -> None:
    response = invoke(client, "plan,30,pro\n", "text/csv")  # id "plan": a data line
    assert response.text == '"plan",0.55,true\n'


def test_json_answers_keep_every_digit(client: TestClient) -> None:
    row = {"age": 33, "plan": "basic"}
    invoked = client.post("/invocations", json=row).json()["predictions"][0]["score"]
    assert invoked == client.post("/predict", json=row).json()["score"] == 0.33


def test_v2_checks_content_type_and_tensor_datatypes(client: TestClient) -> None:
    plain = client.post(
        "/v2/models/toy/infer", content=b"{}", headers={"content-type": "text/plain"}
    )
    assert plain.status_code == 415
    request = {"inputs": [tensor("age", ["30"]), tensor("plan", ["pro"])]}
    response = client.post("/v2/models/toy/infer", json=request)
    assert response.status_code == 422
    assert "input 'age' is BYTES; its column takes INT32 or INT64" in response.json()["error"]


def test_v2_infer_keeps_the_models_own_batch_limit(toy_predictor, toy_artifact: Path) -> None:
    class SmallBatches(toy_predictor):  # type: ignore[misc, valid-type]
        max_batch = 2  # tighter than the service's max_batch_rows

    with started(SmallBatches, toy_artifact) as client:
        inputs = [tensor("age", [30, 20, 40], "INT64"), tensor("plan", ["pro"] * 3)]
        response = client.post("/v2/models/toy/infer", json={"inputs": inputs})
    assert response.status_code == 413
    assert "batch of 3 rows is above this service's limit of 2 rows" in response.json()["error"]
