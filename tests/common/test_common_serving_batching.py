"""Request coalescing (common/serving/batching.py): concurrent requests share one model call,
each gets its own answers in order, and one request's error stays its own."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from common.serving.app import create_app
from common.serving.batching import RequestCoalescer
from common.settings import ServeSettings
from tests.common.conftest import ToyPredictor
from tests.common.test_common_serving import wait_ready


class Doubler:
    """Doubles numbers, records every call, and refuses negative numbers (test double)."""

    def __init__(self) -> None:
        self.calls: list[list[int]] = []

    def predict_batch(self, records: Sequence[int]) -> list[int]:
        self.calls.append(list(records))
        if any(r < 0 for r in records):
            raise ValueError(f"negative record in {list(records)}")
        return [2 * r for r in records]


def gather(coalescer: RequestCoalescer, model: Doubler, *requests: list[int]) -> list:
    async def run() -> list:
        jobs = [coalescer.predict(model, r) for r in requests]  # type: ignore[arg-type]
        return await asyncio.gather(*jobs, return_exceptions=True)

    return asyncio.run(run())


def test_requests_of_one_turn_share_one_call_and_keep_their_order() -> None:
    model, coalescer = Doubler(), RequestCoalescer()
    answers = gather(coalescer, model, [1], [2, 3], [4], [5, 6, 7])
    assert answers == [[2], [4, 6], [8], [10, 12, 14]]
    assert model.calls == [[1, 2, 3, 4, 5, 6, 7]]
    assert (coalescer.calls, coalescer.requests) == (1, 4)


def test_a_lone_request_is_predicted_on_its_own() -> None:
    model, coalescer = Doubler(), RequestCoalescer()
    assert gather(coalescer, model, [21]) == [[42]]
    assert gather(coalescer, model, [1]) == [[2]]
    assert model.calls == [[21], [1]]


def test_a_failing_request_gets_its_error_and_its_neighbours_their_answers() -> None:
    model, coalescer = Doubler(), RequestCoalescer()
    first, bad, last = gather(coalescer, model, [1], [2, -1], [3])
    assert (first, last) == ([2], [6])
    assert isinstance(bad, ValueError) and "[2, -1]" in str(bad)
    # The merged call failed, then each request was tried on its own.
    assert model.calls == [[1, 2, -1, 3], [1], [2, -1], [3]]


def test_merged_calls_stop_at_max_rows() -> None:
    model, coalescer = Doubler(), RequestCoalescer(max_rows=4)
    answers = gather(coalescer, model, [1, 2], [3], [4, 5], [6])
    assert answers == [[2, 4], [6], [8, 10], [12]]
    assert model.calls == [[1, 2, 3], [4, 5, 6]]


def test_a_cancelled_request_is_left_out() -> None:
    model, coalescer = Doubler(), RequestCoalescer()

    async def run() -> list[int]:
        gone = asyncio.ensure_future(coalescer.predict(model, [9]))  # type: ignore[arg-type]
        kept = asyncio.ensure_future(coalescer.predict(model, [1]))  # type: ignore[arg-type]
        await asyncio.sleep(0)  # both are queued
        gone.cancel()
        return await kept

    assert asyncio.run(run()) == [2]
    assert model.calls == [[1]]


class SlowToy(ToyPredictor):
    """The toy model, 20 ms a call: long enough for concurrent requests to queue behind it."""

    def predict_batch(self, records):  # type: ignore[no-untyped-def]
        time.sleep(0.02)
        return super().predict_batch(records)


def test_concurrent_api_requests_are_merged_and_answered_correctly(toy_artifact: Path) -> None:
    app = create_app(SlowToy, ServeSettings(model_dir=toy_artifact))
    rows = [{"id": f"c{i}", "age": 20 + i, "plan": "pro" if i % 2 else "basic"} for i in range(24)]
    with TestClient(app) as client:
        wait_ready(client)
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda row: client.post("/predict", json=row), rows))
    for row, answer in zip(rows, answers, strict=True):
        assert answer.status_code == 200, answer.text
        expected = row["age"] / 100 + (0.25 if row["plan"] == "pro" else 0)
        assert answer.json()["id"] == row["id"]
        assert answer.json()["score"] == pytest.approx(expected)
    coalescer = app.state.coalescer
    assert coalescer.requests == len(rows)
    assert coalescer.calls < len(rows)  # 8 clients and a 20 ms model: requests queue and merge


def test_a_served_process_freezes_the_loaded_objects_and_a_test_app_does_not(
    toy_artifact: Path,
) -> None:
    import gc

    before = gc.get_freeze_count()
    for freeze, grows in [(False, False), (True, True)]:
        app = create_app(SlowToy, ServeSettings(model_dir=toy_artifact), freeze_gc=freeze)
        try:
            with TestClient(app) as client:
                wait_ready(client)
                assert (gc.get_freeze_count() > before) == grows
        finally:
            gc.unfreeze()  # give the rest of the test session its collector back
