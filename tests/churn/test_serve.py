"""The churn API end to end on a real trained model: the full answer per customer, batch
ordering, agreement with in-process predictions, and every kind of bad input (a 4xx JSON error
naming the problem, after which the service keeps serving)."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from churn.schema import LABEL, TELCO_SCHEMA
from churn.serve import EXAMPLES, REQUEST_SCHEMA, ChurnPredictor
from common.schema import validate
from common.serving.app import create_app
from common.settings import ServeSettings

RISKY, SAFE = EXAMPLES


@pytest.fixture(scope="module")
def client(trained_artifact: Path):
    app = create_app(ChurnPredictor, ServeSettings(model_dir=trained_artifact))
    with TestClient(app, raise_server_exceptions=False) as client:
        deadline = time.monotonic() + 30
        while client.get("/ready").status_code != 200:
            assert time.monotonic() < deadline, client.get("/ready").json()
            time.sleep(0.02)
        yield client


@pytest.fixture(scope="module")
def predictor(trained_artifact: Path) -> ChurnPredictor:
    return ChurnPredictor.from_artifact(trained_artifact)


def test_one_customer_gets_probability_decision_band_and_three_reasons(
    client: TestClient, predictor: ChurnPredictor
) -> None:
    answer = client.post("/predict", json=RISKY).json()
    assert answer["customerID"] == RISKY["customerID"]
    assert 0.4 < answer["churn_probability"] < 1
    assert answer["churn"] is (answer["churn_probability"] >= predictor.threshold)
    assert answer["risk_band"] in ("medium", "high")
    reasons = answer["reasons"]
    assert len(reasons) == 3
    fields = {*REQUEST_SCHEMA.names, "avg_monthly_charge", "charge_change", "n_services"}
    assert {r["feature"] for r in reasons} <= fields
    sizes = [abs(r["contribution"]) for r in reasons]
    assert sizes == sorted(sizes, reverse=True)
    # The value is the one the model saw: the request's own for a raw field.
    for r in reasons:
        if r["feature"] in RISKY:
            assert r["value"] == RISKY[r["feature"]] or r["value"] == float(RISKY[r["feature"]])
    safe = client.post("/predict", json=SAFE).json()
    assert safe["risk_band"] == "low" and not safe["churn"]


def test_api_csv_and_in_process_agree_row_by_row(
    client: TestClient, predictor: ChurnPredictor, telco_frame: pd.DataFrame
) -> None:
    rows = telco_frame.drop(columns=LABEL).sample(300, random_state=3).reset_index(drop=True)
    expected = predictor.predict_table(validate(rows, REQUEST_SCHEMA))
    body = rows.to_csv(index=False, header=False)
    response = client.post("/invocations", content=body, headers={"content-type": "text/csv"})
    assert response.status_code == 200
    names = list(predictor.output_columns)
    served = pd.read_csv(
        io.StringIO(response.text), header=None, names=names, keep_default_na=False
    )
    # SageMaker batch ordering: line i of the answer is line i of the request.
    assert served["customerID"].tolist() == rows["customerID"].tolist()
    np.testing.assert_allclose(served["churn_probability"], expected["churn_probability"])
    assert served["reason_1_feature"].tolist() == expected["reason_1_feature"].tolist()
    records = json.loads(rows.head(20).to_json(orient="records"))
    as_json = client.post("/predict", json=records).json()
    np.testing.assert_allclose(
        [a["churn_probability"] for a in as_json], expected["churn_probability"][:20], rtol=1e-12
    )


def test_ibm_style_blank_total_charges_is_accepted(client: TestClient) -> None:
    new = {**RISKY, "tenure": 0, "TotalCharges": None}
    assert client.post("/predict", json=new).status_code == 200
    line = ",".join(str(new[c]) if new[c] is not None else " " for c in REQUEST_SCHEMA.names)
    response = client.post("/invocations", content=line, headers={"content-type": "text/csv"})
    assert response.status_code == 200, response.text


def without(record: dict, field: str) -> dict:
    return {k: v for k, v in record.items() if k != field}


CSV_LINE = ",".join(str(v) for v in RISKY.values())


@pytest.mark.parametrize(
    ("body", "content_type", "status", "expected"),
    [
        (without(RISKY, "Contract"), None, 422, "Contract: Field required"),
        ({**RISKY, "favouriteColour": "red"}, None, 422,
         "favouriteColour: Extra inputs are not permitted (got 'red')"),
        ({**RISKY, "tenure": "two"}, None, 422, "tenure: Input should be a valid integer"),
        ({**RISKY, "tenure": True}, None, 422, "tenure: Input should be a valid integer"),
        ({**RISKY, "MonthlyCharges": "85.5"}, None, 422,
         "MonthlyCharges: Input should be a valid number"),
        ({**RISKY, "SeniorCitizen": [1]}, None, 422, "SeniorCitizen: Input should be a valid"),
        ('{"MonthlyCharges": NaN}', "application/json", 422, "Field required"),
        (json.dumps({**RISKY, "MonthlyCharges": float("nan")}), "application/json", 422,
         "MonthlyCharges: Input should be a finite number (got nan)"),
        (json.dumps({**RISKY, "TotalCharges": float("inf")}), "application/json", 422,
         "TotalCharges: Input should be a finite number (got inf)"),
        ({**RISKY, "Contract": "Weekly"}, None, 422, "Contract: Input should be 'Month-to-month'"),
        ({**RISKY, "tenure": -3}, None, 422,
         "tenure: Input should be greater than or equal to 0 (got -3)"),
        # Finite in float64 but inf in the float32 model matrix: refused by the schema's maximum.
        ({**RISKY, "MonthlyCharges": 1e39}, None, 422, "MonthlyCharges: Input should be less"),
        ({**RISKY, "TotalCharges": 1e39}, None, 422, "TotalCharges: Input should be less"),
        ("", "application/json", 400, "empty body"),
        ([], None, 422, "List should have at least 1 item"),
        ('{"tenure": 3,', "application/json", 400, "malformed JSON"),
        (CSV_LINE, "text/csv", 415, "unsupported content type: 'text/csv'"),
        ([RISKY, {**RISKY, "gender": "X"}], None, 422, "[1].gender: Input should be"),
    ],
)  # fmt: skip
def test_bad_requests_to_predict(client, body, content_type, status: int, expected: str) -> None:
    if content_type is None:
        response = client.post("/predict", json=body)
    else:
        response = client.post("/predict", content=body, headers={"content-type": content_type})
    assert response.status_code == status, response.text
    error = response.json()
    assert set(error) == {"error", "detail"}
    assert expected in error["error"]
    assert client.post("/predict", json=SAFE).status_code == 200  # still serving


@pytest.mark.parametrize(
    ("body", "status", "expected"),
    [
        (CSV_LINE + ",Yes", 400, "must have 20 fields"),
        (CSV_LINE + "\n" + CSV_LINE + ",extra", 400, "line 2: 21 fields, expected 20"),
        (CSV_LINE.replace("Fiber optic", "Fibre"), 422, "column 'InternetService': has unknown"),
        (CSV_LINE.replace(",2,", ",-2,", 1), 422, "column 'tenure': is below the minimum 0"),
        (CSV_LINE.replace("85.5", "inf"), 422, "column 'MonthlyCharges': is infinite"),
        (CSV_LINE.replace(",2,", ",inf,", 1), 422, "column 'tenure': is infinite"),
        (CSV_LINE.replace("85.5", "lots"), 422, "column 'MonthlyCharges': is not numeric"),
        (CSV_LINE.replace("85.5", "1e39"), 422, "column 'MonthlyCharges': is above the maximum"),
    ],
)
def test_bad_csv_to_invocations(client, body: str, status: int, expected: str) -> None:
    response = client.post("/invocations", content=body, headers={"content-type": "text/csv"})
    assert response.status_code == status, response.text
    assert expected in response.json()["error"]
    assert client.get("/ping").status_code == 200


@pytest.mark.parametrize("field", ["MonthlyCharges", "TotalCharges"])
def test_huge_charges_to_json_invocations_are_a_422_not_a_500(client, field: str) -> None:
    # 1e39 is a finite float64 but overflows float32; before the schema's maximum it reached
    # the model as inf and the NaN reason codes broke the JSON answer (a 500).
    response = client.post("/invocations", json=[{**RISKY, field: 1e39}])
    assert response.status_code == 422, response.text
    assert f"{field}: Input should be less than or equal to" in response.json()["error"]


def test_100k_rows_are_refused_by_the_batch_limit_not_processed(
    client: TestClient, telco_frame: pd.DataFrame
) -> None:
    rows = pd.concat([telco_frame.drop(columns=LABEL)] * 15, ignore_index=True).head(100_000)
    body = rows.to_csv(index=False).encode()
    assert len(body) < ServeSettings().max_body_bytes  # so it is the row limit that refuses it
    response = client.post("/invocations", content=body, headers={"content-type": "text/csv"})
    assert response.status_code == 413
    assert "batch of 100000 rows is above this service's limit of 50000" in response.text
    # JSON records too: ~26 MB, under the 32 MiB body limit, so again the row limit refuses it.
    as_json = rows.head(60_000).to_json(orient="records").encode()
    assert len(as_json) < ServeSettings().max_body_bytes
    listed = client.post(
        "/invocations", content=as_json, headers={"content-type": "application/json"}
    )
    assert listed.status_code == 413
    assert "batch of 60000 rows is above this service's limit of 50000" in listed.text
    assert client.post("/predict", json=SAFE).status_code == 200


def test_metadata_carries_the_manifest_summary(client: TestClient, predictor) -> None:
    meta = client.get("/metadata").json()
    assert meta["name"] == "churn" and meta["version"] == predictor.manifest.version
    assert meta["metrics"]["test"]["roc_auc"] == predictor.manifest.metric("test.roc_auc")
    assert meta["data_fingerprint"] == predictor.manifest.data_fingerprint
    assert set(meta["input_schema"]["properties"]) == set(TELCO_SCHEMA.names) - {LABEL}
    assert list(meta["output_columns"])[:4] == ["customerID", "churn_probability", "churn",
                                                "risk_band"]  # fmt: skip
