"""The drift window a running service keeps (common.monitoring.live) and its Prometheus gauges."""

from __future__ import annotations

import threading
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from prometheus_client import CollectorRegistry, generate_latest

from common.monitoring.columns import columns_of
from common.monitoring.live import DriftCollector, LiveMonitor
from common.monitoring.profile import build_profile


@pytest.fixture
def monitor() -> LiveMonitor:
    rng = np.random.default_rng(0)
    reference = {"age": rng.normal(40, 10, 3000), "plan": rng.choice(["a", "b"], 3000)}
    profile = build_profile(reference, {"age": "numeric", "plan": "category"},
                            scores=rng.random(3000), score_name="p")  # fmt: skip
    return LiveMonitor(profile, window=500, min_rows=100)


def records(n: int, age: float, plan: str) -> list[SimpleNamespace]:
    return [SimpleNamespace(age=age + i % 7, plan=plan, other="x") for i in range(n)]


def test_columns_come_from_frames_mappings_and_records() -> None:
    frame = pd.DataFrame({"age": [1, 2], "plan": ["a", "b"], "other": [0, 0]})
    assert columns_of(frame, ["age", "plan"]) == {"age": [1, 2], "plan": ["a", "b"]}
    assert columns_of({"age": (3,)}, ["age"]) == {"age": [3]}
    assert columns_of(records(1, 5, "a"), ["plan"]) == {"plan": ["a"]}


def test_no_drift_is_reported_below_min_rows(monitor: LiveMonitor) -> None:
    monitor.observe(records(99, 40, "a"), np.full(99, 0.5))
    assert monitor.rows == 99 and monitor.drift() is None
    monitor.observe(records(1, 40, "a"), np.full(1, 0.5))
    assert monitor.drift() is not None


def test_the_window_keeps_only_the_latest_rows(monitor: LiveMonitor) -> None:
    monitor.observe(pd.DataFrame({"age": np.full(2000, 90.0), "plan": "b"}), np.full(2000, 0.9))
    assert monitor.rows == 500
    old = monitor.drift()
    assert old is not None and set(old.drifted) == {"age", "plan"}
    rng = np.random.default_rng(1)
    fresh = pd.DataFrame({"age": rng.normal(40, 10, 500), "plan": rng.choice(["a", "b"], 500)})
    monitor.observe(fresh, rng.random(500))
    assert monitor.rows == 500 and monitor.drift().drifted == []  # the old rows are gone


def test_observing_from_many_threads_loses_no_rows(monitor: LiveMonitor) -> None:
    def work() -> None:
        for _ in range(20):
            monitor.observe(records(1, 40, "a"), np.full(1, 0.5))

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert monitor.rows == 160


def test_gauges_appear_once_the_window_is_full_enough(monitor: LiveMonitor) -> None:
    registry = CollectorRegistry()
    registry.register(DriftCollector(monitor))
    assert "model_feature_psi" not in generate_latest(registry).decode()
    monitor.observe(records(200, 80, "b"), np.full(200, 0.99))
    text = generate_latest(registry).decode()
    assert "model_drift_window_rows 200.0" in text
    assert 'model_feature_psi{feature="age"}' in text
    assert 'model_feature_drifted{feature="plan"} 1.0' in text
    assert "model_drifted_features_share 1.0" in text
    assert "model_prediction_psi" in text


def test_batches_with_a_row_count_wait_and_are_read_together_in_order() -> None:
    reads: list[list[str]] = []

    def read(batches, names):  # a column computed from what was kept, as vision's are
        reads.append([b["id"] for b in batches])
        return {"age": [b["age"] for b in batches], "plan": [b["plan"] for b in batches]}

    rng = np.random.default_rng(0)
    reference = {"age": rng.normal(40, 10, 500), "plan": rng.choice(["a", "b"], 500)}
    profile = build_profile(reference, {"age": "numeric", "plan": "category"})
    monitor = LiveMonitor(profile, window=100, min_rows=2, columns=read, settle_rows=3)
    for i in range(2):
        monitor.observe({"id": f"r{i}", "age": 40.0 + i, "plan": "a"}, None, rows=1)
    assert reads == []  # two rows wait: fewer than settle_rows
    monitor.observe({"id": "r2", "age": 42.0, "plan": "b"}, None, rows=1)
    assert reads == [["r0", "r1", "r2"]]  # the third fills the batch: read at once, in order
    monitor.observe({"id": "r3", "age": 43.0, "plan": "b"}, None, rows=1)
    assert monitor.rows == 4 and reads[-1] == ["r3"]  # reading the window reads what waits
    monitor.observe({"id": "r4", "age": 44.0, "plan": "a"}, None)  # no count: read at once
    assert reads[-1] == ["r4"] and monitor.drift() is not None


def test_a_batch_whose_columns_fail_to_read_is_not_read_again(monitor: LiveMonitor) -> None:
    calls = 0

    def read(batches, names):
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ValueError("broken reader")
        return {"age": [41.0] * len(batches), "plan": ["a"] * len(batches)}

    broken = LiveMonitor(monitor.profile, window=50, min_rows=1, columns=read, settle_rows=2)
    broken.observe(["x"], None, rows=1)
    with pytest.raises(ValueError, match="broken reader"):
        broken.observe(["y"], None, rows=1)
    broken.observe(["z"], None, rows=1)
    assert broken.rows == 1  # "z" alone: the failed pair was dropped, not retried forever
