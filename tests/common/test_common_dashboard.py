"""Unit tests of common.dashboard's plain functions: which model, API errors, problems, reports.

The Streamlit parts (loading with a cache, showing errors) are exercised through a real
dashboard in tests/churn/test_dashboard.py.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from common.artifacts import ArtifactStore
from common.dashboard import (
    ApiCallError,
    api_url,
    error_of,
    model_dir,
    post_json,
    problems_frame,
    read_report,
)
from common.errors import ArtifactError
from common.schema import Problem
from common.settings import get_settings


def test_model_dir_prefers_model_dir_then_production_then_latest(
    clean_env: Path,
    store: ArtifactStore,
    publish: Callable[..., Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MLP_ARTIFACTS_ROOT", str(store.root))
    monkeypatch.delenv("MODEL_DIR", raising=False)
    get_settings.cache_clear()
    with pytest.raises(ArtifactError, match="none yet: train a model first"):
        model_dir("toy")

    first, second = publish(), publish()
    assert model_dir("toy") == second  # latest
    store.promote(first.name)
    assert model_dir("toy") == first  # production wins over latest
    monkeypatch.setenv("MODEL_DIR", str(second))
    assert model_dir("toy") == second  # an explicit directory wins over both


def test_api_url_is_optional_and_loses_its_trailing_slash(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("API_URL", raising=False)
    assert api_url() is None
    monkeypatch.setenv("API_URL", "  ")
    assert api_url() is None
    monkeypatch.setenv("API_URL", "http://api:8080/")
    assert api_url() == "http://api:8080"


def test_error_of_reads_the_error_body_or_falls_back_to_the_status() -> None:
    body = {"error": "invalid request: tenure: too big", "detail": [{"field": "tenure"}]}
    assert error_of(httpx.Response(422, json=body)) == (body["error"], body["detail"])
    message, detail = error_of(httpx.Response(502, text="<html>bad gateway</html>"))
    assert message == "the API answered 502 Bad Gateway: <html>bad gateway</html>"
    assert detail is None
    assert error_of(httpx.Response(503))[0] == "the API answered 503 Service Unavailable"


def test_an_unreachable_api_is_an_api_call_error() -> None:
    # Port 9 is "discard": nothing listens there, so the connection is refused at once.
    with pytest.raises(ApiCallError, match=r"cannot reach the API at http://127\.0\.0\.1:9/x"):
        post_json("http://127.0.0.1:9", "/x", {})
    with pytest.raises(ApiCallError, match="cannot reach the API"):
        post_json("localhost:8080", "/x", {})  # no scheme


def test_problems_frame_has_one_text_row_per_problem() -> None:
    problems = [
        Problem("tenure", "is below the minimum 0", rows=[3, 7], count=2, examples=[-3, -1]),
        {"column": "Contract", "message": "has unknown categories", "rows": [2], "count": 1,
         "examples": ["Weekly"]},
    ]  # fmt: skip
    frame = problems_frame(problems)
    assert frame.to_dict("records") == [
        {"column": "tenure", "message": "is below the minimum 0", "rows": "3, 7", "count": 2,
         "examples": "-3, -1"},
        {"column": "Contract", "message": "has unknown categories", "rows": "2", "count": 1,
         "examples": "Weekly"},
    ]  # fmt: skip
    # The API's pydantic errors have other keys and values of any type.
    fields = problems_frame([{"field": "[1].tenure", "message": "too big", "value": 500}])
    assert fields.to_dict("records") == [
        {"field": "[1].tenure", "message": "too big", "value": 500}
    ]


def test_read_report_finds_what_evaluation_saved(tmp_path: Path) -> None:
    (tmp_path / "plots").mkdir()
    (tmp_path / "plots" / "roc.png").write_bytes(b"png")
    (tmp_path / "explanations").mkdir()
    (tmp_path / "explanations" / "importance.csv").write_text("feature,x\n")
    (tmp_path / "metrics.json").write_text('{"roc_auc": 0.8}')
    (tmp_path / "model_card.md").write_text("# Card")
    report = read_report(tmp_path)
    assert report.metrics == {"roc_auc": 0.8}
    assert report.model_card == "# Card"
    assert report.plots == {"roc": tmp_path / "plots" / "roc.png"}
    assert report.tables == {"importance": tmp_path / "explanations" / "importance.csv"}

    empty = read_report(tmp_path / "nothing")
    assert (empty.metrics, empty.model_card, empty.plots, empty.tables) == ({}, None, {}, {})
