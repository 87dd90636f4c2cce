"""Drift in a running service: a bounded window of the latest inputs and scores, compared with the
model's reference profile when Prometheus scrapes `/metrics`.

Recording a request costs a few microseconds: `observe` keeps what it is given, and the
columns are read from what it kept in bulk, once `settle_rows` rows wait or when the window is
read. Bulk matters where a column is computed, not looked up: an image's brightness is a dozen
numpy calls, ~180 µs for one image right after a forward pass, ~12 µs each for 32 at once.
The drift itself is computed at scrape time, at most once per batch of new rows, and only once
the window holds `min_rows` rows, since PSI on a handful of rows is mostly noise. Gauges:

    model_drift_window_rows                rows in the window
    model_feature_psi{feature}             PSI per input feature
    model_feature_drifted{feature}         1 when the feature counts as drifted (see drift.py)
    model_drifted_features_share           share of features drifted
    model_prediction_psi                   PSI of the score

`docker/prometheus/alerts.yml` holds the alert rules on them.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from common.monitoring.columns import ColumnReader, concat_columns
from common.monitoring.drift import DriftResult, detect_drift
from common.monitoring.profile import ReferenceProfile


class LiveMonitor:
    """The rolling window of one service; thread-safe (big batches predict in worker threads).

    `columns` reads the watched columns from what `observe` was given: by default a frame, a
    mapping of columns or records; a predictor whose inputs are no table passes its own
    (`Predictor.monitoring_columns`)."""

    def __init__(
        self,
        profile: ReferenceProfile,
        window: int = 2000,
        min_rows: int = 200,
        *,
        columns: ColumnReader = concat_columns,
        settle_rows: int = 32,
    ) -> None:
        self.profile = profile
        self.window, self.min_rows, self.settle_rows = window, min_rows, settle_rows
        self._read_columns = columns
        self._names = list(profile.features)
        self._columns: dict[str, deque[Any]] = {n: deque(maxlen=window) for n in self._names}
        self._scores: deque[float] = deque(maxlen=window)
        self._waiting: list[Any] = []  # observed batches whose columns are not read yet
        self._waiting_rows = 0
        self._lock = threading.Lock()
        self._seen = 0  # batches observed: tells the cached drift it is stale
        self._cached: tuple[int, DriftResult | None] = (-1, None)

    def observe(self, inputs: Any, scores: np.ndarray | None, rows: int | None = None) -> None:
        """Record a batch: its inputs (whatever `columns` reads) and scores (None: no score).

        With `rows`, the number of rows in it, the inputs are kept as they are and read with
        others later; without, they are read at once."""
        if isinstance(inputs, pd.DataFrame) and len(inputs) > self.window:
            inputs = inputs.iloc[-self.window :]  # the rest would fall out of the window at once
        with self._lock:
            self._waiting.append(inputs)
            self._waiting_rows += self.settle_rows if rows is None else rows
            if scores is not None:
                self._scores.extend(np.asarray(scores, dtype=np.float64)[-self.window :].tolist())
            self._seen += 1
            if self._waiting_rows >= self.settle_rows:
                self._settle()

    def _settle(self) -> None:
        """Read the columns of the waiting batches into the window (the lock is held)."""
        if not self._waiting:
            return
        # Taken off the list first: a batch whose columns fail to read is not read again.
        waiting, self._waiting, self._waiting_rows = self._waiting, [], 0
        columns = self._read_columns(waiting, self._names)
        for name in self._names:
            self._columns[name].extend(columns.get(name, ()))

    @property
    def rows(self) -> int:
        with self._lock:
            self._settle()
            return min((len(c) for c in self._columns.values()), default=0)

    def drift(self) -> DriftResult | None:
        """Drift of the window, or None while it holds fewer than `min_rows` rows."""
        with self._lock:
            self._settle()
            seen, cached = self._cached
            if seen == self._seen:
                return cached
            rows = min((len(c) for c in self._columns.values()), default=0)
            snapshot = {n: list(c)[-rows:] for n, c in self._columns.items()}
            scores = np.asarray(self._scores, dtype=np.float64) if self._scores else None
            now = self._seen
        result = detect_drift(self.profile, snapshot, scores) if rows >= self.min_rows else None
        with self._lock:
            self._cached = (now, result)
        return result


class DriftCollector(Collector):
    """Exposes a `LiveMonitor` as Prometheus gauges, computed when scraped."""

    def __init__(self, monitor: LiveMonitor) -> None:
        self.monitor = monitor

    def collect(self) -> Iterator[Metric]:
        rows = GaugeMetricFamily("model_drift_window_rows", "Rows in the drift window.")
        rows.add_metric([], self.monitor.rows)
        yield rows
        drift = self.monitor.drift()
        if drift is None:
            return
        psi = GaugeMetricFamily(
            "model_feature_psi", "PSI of a feature vs training.", labels=["feature"]
        )
        drifted = GaugeMetricFamily(
            "model_feature_drifted", "1 if the feature counts as drifted.", labels=["feature"]
        )
        for f in drift.features:
            psi.add_metric([f.feature], f.psi)
            drifted.add_metric([f.feature], float(f.drifted))
        yield psi
        yield drifted
        yield GaugeMetricFamily(
            "model_drifted_features_share", "Share of features drifted.",
            value=drift.metrics()["drift.share_drifted"],
        )  # fmt: skip
        if drift.prediction is not None:
            yield GaugeMetricFamily(
                "model_prediction_psi", "PSI of the model score vs training.",
                value=drift.prediction.psi,
            )  # fmt: skip
