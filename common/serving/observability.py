"""What a running service tells its operators: Prometheus metrics and JSON log lines.

Each app gets its own metrics registry (no process-global state, so tests can build many apps),
served on `/metrics`:

    http_requests_total{route, method, status}             counter
    http_request_duration_seconds{route, method, status}   histogram
    model_predictions_total{route}                         rows predicted
    model_prediction_score                                 histogram of the model's score
    model_info{name, version}                              1, labelled with the loaded model
    model_drift_window_rows, model_feature_psi{feature}, ...   drift of recent inputs, when
                                                           the artifact has a reference profile

Routes are labelled by their template (`/v2/models/{name}/infer`), never the raw path, so a
scan of random URLs cannot blow up the number of series.
"""

from __future__ import annotations

import bisect
import json
import logging
import math
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import HistogramMetricFamily
from prometheus_client.registry import Collector

from common.monitoring.live import DriftCollector, LiveMonitor

# Latency buckets around the service's targets (p50 ~1 ms, p99 ~3 ms) and up to big batches.
LATENCY_BUCKETS = (0.0005, 0.001, 0.0015, 0.002, 0.003, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                   0.5, 1.0, 2.5, 5.0, 10.0)  # fmt: skip
SCORE_BUCKETS = tuple(np.round(np.arange(0.1, 1.01, 0.1), 2))
# Fields of a log record that are not extras passed by the caller.
_RESERVED = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "color_message",  # uvicorn duplicates its message with ANSI colours
}


class ScoreHistogram(Collector):
    """A histogram filled a whole batch at a time with numpy (prometheus_client's `observe` is
    one Python call per value: 10,000 of them would cost more than scoring a small batch)."""

    def __init__(self, name: str, documentation: str, buckets: tuple[float, ...]) -> None:
        self.name, self.documentation = name, documentation
        self.edges = np.asarray(buckets, dtype=np.float64)
        self.edges_list = [float(edge) for edge in buckets]
        self._counts = np.zeros(len(buckets) + 1, dtype=np.int64)  # last: above the top edge
        self._sum = 0.0
        self._lock = threading.Lock()

    def observe_many(self, values: np.ndarray) -> None:
        if len(values) == 1:  # one API record: a bisect, not six numpy calls
            value = float(values[0])
            if math.isfinite(value):
                with self._lock:
                    self._counts[bisect.bisect_left(self.edges_list, value)] += 1
                    self._sum += value
            return
        values = np.asarray(values, dtype=np.float64)
        values = values[np.isfinite(values)]
        counts = np.bincount(
            np.searchsorted(self.edges, values, side="left"), minlength=len(self._counts)
        )
        with self._lock:
            self._counts += counts
            self._sum += float(values.sum())

    def collect(self) -> Iterator[HistogramMetricFamily]:
        with self._lock:
            cumulative = np.cumsum(self._counts).tolist()
            total = self._sum
        buckets = [
            (f"{edge:g}", count) for edge, count in zip(self.edges, cumulative, strict=False)
        ]
        buckets.append(("+Inf", cumulative[-1]))
        family = HistogramMetricFamily(self.name, self.documentation)
        family.add_metric([], buckets, total)
        yield family


class ServiceMetrics:
    """The registry of one app and the few calls the app makes into it."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "http_requests", "HTTP requests answered.", ["route", "method", "status"],
            registry=self.registry,
        )  # fmt: skip
        self.latency = Histogram(
            "http_request_duration_seconds", "Time to answer a request.",
            ["route", "method", "status"],
            buckets=LATENCY_BUCKETS, registry=self.registry,
        )  # fmt: skip
        self.predictions = Counter(
            "model_predictions", "Rows predicted.", ["route"], registry=self.registry
        )
        self.scores = ScoreHistogram(
            "model_prediction_score", "The model's score per predicted row.", SCORE_BUCKETS
        )
        self.registry.register(self.scores)
        self.model = Gauge(
            "model_info", "The loaded model (value 1).", ["name", "version"], registry=self.registry
        )
        self.monitor: LiveMonitor | None = None
        # The labelled series by their labels: `labels()` converts, checks and locks on every
        # call, twice a request. Few keys: route templates x methods x status codes.
        self._request_series: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}
        self._prediction_series: dict[str, Counter] = {}

    def record_request(self, route: str, method: str, status: int, seconds: float) -> None:
        series = self._request_series.get((route, method, status))
        if series is None:
            code = str(status)
            series = (
                self.requests.labels(route, method, code),
                self.latency.labels(route, method, code),
            )
            self._request_series[(route, method, status)] = series
        series[0].inc()
        series[1].observe(seconds)

    def watch(self, monitor: LiveMonitor) -> None:
        """Keep a drift window of what is predicted, exposed as gauges (see monitoring.live)."""
        self.monitor = monitor
        self.registry.register(DriftCollector(monitor))

    def record_predictions(
        self, route: str, scores: np.ndarray | None, n: int, inputs: Any = None
    ) -> None:
        """Count `n` predicted rows; `inputs` (a frame or the records) feed the drift window."""
        counter = self._prediction_series.get(route)
        if counter is None:
            counter = self._prediction_series[route] = self.predictions.labels(route)
        counter.inc(n)
        if scores is not None:
            self.scores.observe_many(scores)
        if self.monitor is not None and inputs is not None:
            self.monitor.observe(inputs, scores, rows=n)

    def set_model(self, name: str, version: str) -> None:
        self.model.clear()
        self.model.labels(name, version).set(1)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and any `extra=` fields."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        line.update({k: v for k, v in vars(record).items() if k not in _RESERVED})
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


def log_config(level: str = "INFO") -> dict[str, Any]:
    """A `logging.config.dictConfig` (and uvicorn `log_config`) that writes JSON to stderr.

    Uvicorn's own access log is off: the request middleware logs each request once, with its
    request id, status and duration.
    """
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": JsonFormatter}},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "json",
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"handlers": ["stderr"], "level": level},
        "loggers": {
            "uvicorn": {"handlers": [], "propagate": True},
            "uvicorn.access": {"handlers": [], "propagate": False, "level": "WARNING"},
        },
    }
