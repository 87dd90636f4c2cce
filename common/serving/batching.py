"""Request coalescing: concurrent small `/predict` requests share one model call.

A boosted-tree model pays a fixed cost per call (building XGBoost's `DMatrix`, waking its
predictor) that is larger than the cost of one more row: one churn record takes ~0.4 ms,
sixteen take ~1 ms. Under concurrent load a service that predicts each request on its own
spends most of its time on that fixed cost. The coalescer queues the records of requests that
arrive together, predicts them in one `predict_batch` call, and hands each request its own
slice of the answer, in order.

It never waits for company: a request that finds no batch forming starts one, which runs on
the next turn of the event loop, so at concurrency 1 a request costs one loop turn more
(~20 µs). The batch is the requests that reached the model in the same turn, which under load
is what the loop read from every socket while the previous batch ran.

A request's error stays its own: if a merged call fails, each request of the batch is
predicted again on its own, so a record that makes the model fail gets its 4xx and its
neighbours get their answers. (A merged call runs in a task of its own, so what the model logs
while predicting carries the request id of the request that started the batch.)
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from common.predictor import Predictor

#: Most rows one merged call takes; the routes send bigger requests to a worker thread.
MAX_MERGED_ROWS = 256


@dataclass
class _Waiting:
    predictor: Predictor
    records: Sequence[Any]
    future: asyncio.Future[list[Any]]


@dataclass
class RequestCoalescer:
    """Merges the records of concurrent requests into one `predict_batch` call (per app)."""

    max_rows: int = MAX_MERGED_ROWS
    #: How many merged calls and requests it has served: a test's (and an operator's) view of
    #: how much merging happens.
    calls: int = 0
    requests: int = 0
    _waiting: list[_Waiting] = field(default_factory=list)
    _drain: asyncio.Task[None] | None = None

    async def predict(self, predictor: Predictor, records: Sequence[Any]) -> list[Any]:
        """`predictor.predict_batch(records)`, possibly as part of a larger call."""
        loop = asyncio.get_running_loop()
        waiting = _Waiting(predictor, records, loop.create_future())
        self._waiting.append(waiting)
        if self._drain is None:
            # The task is kept on self: the loop holds only a weak reference to it.
            self._drain = loop.create_task(self._drain_queue())
        return await waiting.future

    async def _drain_queue(self) -> None:
        try:
            while self._waiting:
                # One turn of the loop, so that requests parsed in this turn join the batch.
                await asyncio.sleep(0)
                self._run(self._take())
        except BaseException:
            # Cancelled (the app is shutting down) or worse: no request may wait forever.
            for item in self._waiting:
                item.future.cancel()
            self._waiting.clear()
            raise
        finally:
            self._drain = None

    def _take(self) -> list[_Waiting]:
        """The waiting requests, oldest first, up to `max_rows` records (always at least one)."""
        taken, rows = [], 0
        while self._waiting:
            if taken and rows + len(self._waiting[0].records) > self.max_rows:
                break
            item = self._waiting.pop(0)
            if item.future.done():  # the client went away (its task was cancelled)
                continue
            taken.append(item)
            rows += len(item.records)
        return taken

    def _run(self, batch: list[_Waiting]) -> None:
        if not batch:
            return
        records = [r for item in batch for r in item.records]
        try:
            outputs = batch[0].predictor.predict_batch(records)
        except BaseException as exc:
            if not isinstance(exc, Exception):  # e.g. SystemExit: release the batch, re-raise
                for item in batch:
                    item.future.cancel()
                raise
            if len(batch) == 1:
                _settle(batch[0], exc=exc)
            else:  # find whose records failed: each request on its own
                for item in batch:
                    self._run([item])
            return
        self.calls += 1
        self.requests += len(batch)
        start = 0
        for item in batch:
            _settle(item, result=list(outputs[start : start + len(item.records)]))
            start += len(item.records)


def _settle(item: _Waiting, result: list[Any] | None = None, exc: Exception | None = None) -> None:
    if item.future.done():
        return
    if exc is not None:
        item.future.set_exception(exc)
    else:
        item.future.set_result(result or [])
