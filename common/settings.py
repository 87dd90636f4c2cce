"""Settings shared by every project, read from the environment (prefix `MLP_`) or a `.env` file.

Nothing is read at import time: call `get_settings()`, which caches one `Settings` per process.
Tests build their own `Settings(...)` or clear the cache with `get_settings.cache_clear()`.

    MLP_ARTIFACTS_ROOT=/srv/models   where artifacts/<project>/<version>/ live (default ./artifacts)
    MLP_DATA_ROOT=/srv/data          where generated and downloaded data go (default ./data)
    MLP_MONITORING_ROOT=/srv/monitoring   reports, alert history and state (default ./monitoring)
    MLP_TRACKING_URI=http://mlflow:5000   any MLflow tracking URI (default: sqlite file under
                                     the artifacts root); MLP_TRACKING=false turns tracking off
    MLP_SEED=7                       the seed every random step derives from

`ServeSettings` is how a service (and a dashboard) finds its model and runs: `MODEL_DIR`,
`SAGEMAKER_BIND_TO_PORT` and `MLP_SERVE_*`.
"""

from __future__ import annotations

import sys
from functools import lru_cache
from pathlib import Path
from typing import Literal, Self

from pydantic import AliasChoices, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Where things live and how runs are tracked. Frozen: pass a new one instead of mutating."""

    model_config = SettingsConfigDict(
        env_prefix="MLP_", env_file=".env", extra="ignore", frozen=True
    )

    artifacts_root: Path = Field(Path("artifacts"), description="Root of the artifact store.")
    data_root: Path = Field(Path("data"), description="Where generated or downloaded data go.")
    monitoring_root: Path = Field(
        Path("monitoring"), description="Where monitoring reports, alert history and state go."
    )
    tracking: bool = Field(True, description="Log runs to MLflow.")
    tracking_uri: str | None = Field(
        None, description="MLflow tracking URI; default: sqlite file under artifacts_root."
    )
    seed: int = Field(42, description="Seed for every random step.")

    def resolved_tracking_uri(self) -> str:
        """The MLflow URI to use: the configured one, else an embedded sqlite database."""
        if self.tracking_uri:
            return self.tracking_uri
        return f"sqlite:///{(self.artifacts_root / 'mlflow.db').resolve()}"

    def tracking_artifact_location(self) -> Path | None:
        """Where new MLflow experiments keep run files: beside the embedded database, or, for a
        configured tracking server, wherever that server decides (None)."""
        return None if self.tracking_uri else self.artifacts_root / "mlruns"


LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]


class ServeSettings(BaseSettings):
    """How a service runs; from the environment (`MLP_SERVE_...`, plus the two names that
    containers conventionally set: `MODEL_DIR` and SageMaker's `SAGEMAKER_BIND_TO_PORT`)."""

    model_config = SettingsConfigDict(
        env_prefix="MLP_SERVE_",
        extra="ignore",
        frozen=True,
        protected_namespaces=(),
        populate_by_name=True,  # ServeSettings(model_dir=...) in code, MODEL_DIR in the env
    )

    model_dir: Path | None = Field(
        None,
        validation_alias=AliasChoices("MODEL_DIR", "MLP_SERVE_MODEL_DIR"),
        description="Artifact directory to serve; default: the production alias, else latest.",
    )
    host: str = Field("127.0.0.1", description="Interface to bind; 0.0.0.0 in a container.")
    port: int = Field(
        8080,
        ge=1,
        le=65535,
        validation_alias=AliasChoices("SAGEMAKER_BIND_TO_PORT", "MLP_SERVE_PORT"),
    )
    max_body_bytes: int = Field(32 * 1024 * 1024, ge=1024, description="Larger bodies get 413.")
    max_batch_rows: int = Field(50_000, ge=1, description="Larger batches get 413.")
    log_level: LogLevel = Field("INFO", description="Level of the JSON log on stderr.")
    drift_window_rows: int = Field(2000, ge=10, description="Recent rows the drift gauges cover.")
    drift_min_rows: int = Field(200, ge=1, description="Rows needed before drift is reported.")

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        # `warning` and `WARNING` both work, as they do for uvicorn's own --log-level.
        return value.upper() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _drift_window_holds_enough_rows(self) -> Self:
        # The window never holds more than drift_window_rows, so a larger minimum would mean the
        # drift gauges silently never appear: refuse it at start-up instead.
        if self.drift_min_rows > self.drift_window_rows:
            raise ValueError(
                f"MLP_SERVE_DRIFT_MIN_ROWS ({self.drift_min_rows}) is larger than "
                f"MLP_SERVE_DRIFT_WINDOW_ROWS ({self.drift_window_rows}): the drift window "
                "could never hold enough rows; lower the first or raise the second"
            )
        return self


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, read once from the environment."""
    return Settings()


if __name__ == "__main__":
    # `python -m common.settings tracking-uri` lets the Makefile ask for the resolved URI.
    settings = get_settings()
    if sys.argv[1:] == ["tracking-uri"]:
        print(settings.resolved_tracking_uri())
    else:
        print(settings.model_dump_json(indent=2))
