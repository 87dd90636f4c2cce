"""The forecast API on the session's trained artifact: probes, metadata, forecasts with and
without history, SageMaker's /invocations, and bad requests (a 4xx JSON error naming the field,
after which the service keeps serving)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from openapi_spec_validator import validate as validate_openapi

from common.serving.app import create_app
from common.settings import ServeSettings
from forecast.serve import ForecastPredictor, ForecastRequest
from tests.forecast.conftest import HORIZON


@pytest.fixture(scope="module")
def client(forecast_predictor: ForecastPredictor) -> Iterator[TestClient]:
    settings = ServeSettings(model_dir=forecast_predictor.path)
    app = create_app(ForecastPredictor, settings, load=lambda: forecast_predictor)
    with TestClient(app, raise_server_exceptions=False) as client:
        deadline = time.monotonic() + 60
        while client.get("/ready").status_code != 200:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        yield client


def test_probes_and_metadata(client: TestClient, forecast_predictor: ForecastPredictor) -> None:
    assert client.get("/health").json() == {"status": "ok"}
    meta = client.get("/metadata").json()
    assert meta["name"] == "forecast"
    assert meta["horizon"] == HORIZON and meta["freq"] == "D"
    assert {s["series_id"] for s in meta["series"]} == set(forecast_predictor.ids)
    assert meta["metrics"]["backtest"]["seasonal_naive"]["relative_mase"] == pytest.approx(1.0)


def test_a_forecast_without_history_is_the_one_made_at_training(
    client: TestClient, forecast_predictor: ForecastPredictor
) -> None:
    sid = forecast_predictor.ids[0]
    body = client.post("/predict", json={"series_id": sid, "horizon": 5}).json()
    assert body["series_id"] == sid and body["model"] == forecast_predictor.selected[sid]
    assert body["level"] == pytest.approx(0.8)
    points = pd.DataFrame(body["points"])
    assert len(points) == 5
    assert (points["yhat_lower"] <= points["yhat"]).all()
    assert (points["yhat"] <= points["yhat_upper"]).all()
    model = forecast_predictor.models[sid]
    expected = model.predict(5)
    assert pd.to_datetime(points["ds"]).tolist() == expected["ds"].tolist()
    assert points["yhat"].to_numpy() == pytest.approx(expected["yhat"].to_numpy(), rel=1e-6)


def test_history_moves_the_forecast_on(
    client: TestClient, forecast_predictor: ForecastPredictor, forecast_files
) -> None:
    sid = forecast_predictor.ids[0]
    actuals = pd.read_csv(forecast_files.healthy, parse_dates=["ds"])
    recent = actuals[actuals["series_id"] == sid].head(10)
    history = [
        {"ds": d.isoformat(), "y": y} for d, y in zip(recent["ds"], recent["y"], strict=True)
    ]
    body = client.post("/predict", json={"series_id": sid, "horizon": 3, "history": history})
    assert body.status_code == 200, body.json()
    first = pd.Timestamp(body.json()["points"][0]["ds"])
    assert first == recent["ds"].iloc[-1] + pd.Timedelta(days=1)


def test_zoned_history_is_read_as_utc_like_training(
    client: TestClient, forecast_predictor: ForecastPredictor
) -> None:
    sid = forecast_predictor.ids[0]
    end = forecast_predictor.models[sid].history_["ds"].iloc[-1] + pd.Timedelta(days=1)
    naive = {"ds": end.isoformat(), "y": 500.0}
    zoned = {"ds": (end.tz_localize("UTC").tz_convert("Europe/Paris")).isoformat(), "y": 500.0}
    answers = [
        client.post("/predict", json={"series_id": sid, "horizon": 2, "history": [point]})
        for point in (naive, zoned)
    ]
    assert [a.status_code for a in answers] == [200, 200]
    assert answers[0].json() == answers[1].json()


def test_a_batch_and_invocations_answer_in_order(
    client: TestClient, forecast_predictor: ForecastPredictor
) -> None:
    ids = forecast_predictor.ids
    batch = [{"series_id": ids[1], "horizon": 2}, {"series_id": ids[0]}]
    answers = client.post("/predict", json=batch).json()
    assert [a["series_id"] for a in answers] == [ids[1], ids[0]]
    assert [len(a["points"]) for a in answers] == [2, HORIZON]
    sagemaker = client.post("/invocations", json={"instances": batch}).json()
    assert sagemaker["predictions"] == answers


BAD: list[tuple[Any, int, str]] = [
    ({"series_id": "nope"}, 422, "series_id"),
    ({"horizon": 3}, 422, "series_id is required"),
    ({"series_id": "store_01", "horizon": HORIZON + 1}, 422, "longer than the trained horizon"),
    ({"series_id": "store_01", "horizon": 0}, 422, "horizon"),
    ({"series_id": "store_01", "history": [{"ds": "not a date", "y": 1}]}, 422, "ds"),
    ({"series_id": "store_01", "history": [{"ds": "2030-01-01T12:00:00", "y": 1}]}, 422,
     "not on the series' D grid"),
    ({"series_id": "store_01", "history": [{"ds": "2030-01-01", "y": "abc"}]}, 422, "y"),
    ({"series_id": "store_01", "history": [{"ds": "1990-01-01", "y": 1}]}, 422,
     "outside the series' span"),
    ({"series_id": "store_01", "history": [{"ds": "2200-01-01", "y": 1}]}, 422,
     "outside the series' span"),
    ({"series_id": "store_01", "colour": "blue"}, 422, "colour"),
    ([{"series_id": "store_01"}, {"series_id": "nope"}], 422, "[1].series_id"),
]  # fmt: skip


@pytest.mark.parametrize(("body", "status", "named"), BAD, ids=[str(i) for i in range(len(BAD))])
def test_bad_requests_are_4xx_json_naming_the_problem(
    client: TestClient, body: Any, status: int, named: str
) -> None:
    response = client.post("/predict", json=body)
    assert response.status_code == status, response.text
    assert named in response.text
    assert set(response.json()) == {"error", "detail"}
    assert client.post("/predict", json={"series_id": "store_01", "horizon": 1}).status_code == 200


def test_non_finite_history_is_refused() -> None:
    with pytest.raises(ValueError, match="finite"):
        ForecastRequest.model_validate({"history": [{"ds": "2024-01-01", "y": float("nan")}]})


def test_openapi_schema_is_valid(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    validate_openapi(spec)
    assert "ForecastRequest" in spec["components"]["schemas"]
