"""Experiment tracking with MLflow, arranged so that tracking can never cost a trained model.

`Tracker` wraps one MLflow run through `MlflowClient` (explicit run ids, no global "active run").
Any failure (server down, bad URI, disk full) is logged as a warning and turns the tracker off
for the rest of the run; the artifact store, not MLflow, is the source of truth for models.
By default runs go to an embedded sqlite database under the artifacts root, so nothing needs a
server: `make mlflow-ui` browses it.
"""

from __future__ import annotations

import logging
import numbers
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)
_MAX_PARAM_CHARS = 6000  # MLflow's limit on a parameter value


def flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"a": {"b": 1}} -> {"a.b": 1}: MLflow keys are flat."""
    flat: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


class Tracker:
    """One MLflow run. Use as a context manager; the run ends FINISHED or FAILED on exit."""

    def __init__(
        self,
        tracking_uri: str,
        experiment: str,
        *,
        enabled: bool = True,
        artifact_location: Path | None = None,
        run_name: str | None = None,
    ) -> None:
        self.tracking_uri = tracking_uri
        self.experiment = experiment
        self.enabled = enabled
        self.artifact_location = artifact_location
        self.run_name = run_name
        self.run_id: str | None = None
        self._client: Any = None

    def __enter__(self) -> Tracker:
        self._guard("start the run", self._start)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        status = "FINISHED" if exc_type is None else "FAILED"
        self._guard("end the run", lambda: self._client.set_terminated(self.run_id, status))

    def _start(self) -> None:
        # Imported here: MLflow takes seconds to import and serving never needs it.
        from mlflow.tracking import MlflowClient

        for name in ("alembic", "mlflow"):
            logging.getLogger(name).setLevel(logging.WARNING)
        self._client = MlflowClient(tracking_uri=self.tracking_uri)
        found = self._client.get_experiment_by_name(self.experiment)
        if found is not None:
            experiment_id = found.experiment_id
        else:
            location = self.artifact_location.resolve().as_uri() if self.artifact_location else None
            experiment_id = self._client.create_experiment(self.experiment, location)
        self.run_id = self._client.create_run(experiment_id, run_name=self.run_name).info.run_id

    def _guard(self, what: str, action: Callable[[], object]) -> None:
        """Run one tracking call; on failure warn once and stop tracking for this run."""
        if not self.enabled:
            return
        try:
            action()
        except Exception as exc:  # by design: tracking must never break training
            logger.warning(
                "MLflow tracking at %s failed to %s (%s: %s); the run goes on untracked, "
                "the artifact is unaffected",
                self.tracking_uri,
                what,
                type(exc).__name__,
                exc,
            )
            self.enabled = False

    def log_params(self, params: Mapping[str, Any]) -> None:
        if not self.enabled:
            return
        from mlflow.entities import Param

        items = [Param(k, str(v)[:_MAX_PARAM_CHARS]) for k, v in flatten(params).items()]
        self._guard("log parameters", lambda: self._client.log_batch(self.run_id, params=items))

    def log_metrics(self, metrics: Mapping[str, Any], step: int = 0) -> None:
        if not self.enabled:
            return
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [
            Metric(k, float(v), now, step)
            for k, v in flatten(metrics).items()
            # numbers.Real admits numpy scalars (np.float32, np.int64); bools are not metrics.
            if isinstance(v, numbers.Real) and not isinstance(v, bool | np.bool_)
        ]
        self._guard("log metrics", lambda: self._client.log_batch(self.run_id, metrics=items))

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        for key, value in tags.items():
            self._guard("set a tag", lambda k=key, v=value: self._client.set_tag(self.run_id, k, v))

    def log_artifacts(self, local_dir: Path, artifact_path: str | None = None) -> None:
        self._guard(
            "log artifacts",
            lambda: self._client.log_artifacts(self.run_id, str(local_dir), artifact_path),
        )
