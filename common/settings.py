"""Settings shared by every project, read from the environment (prefix `MLP_`) or a `.env` file.

Nothing is read at import time: call `get_settings()`, which caches one `Settings` per process.
Tests build their own `Settings(...)` or clear the cache with `get_settings.cache_clear()`.

    MLP_ARTIFACTS_ROOT=/srv/models   where artifacts/<project>/<version>/ live (default ./artifacts)
    MLP_DATA_ROOT=/srv/data          where generated and downloaded data go (default ./data)
    MLP_TRACKING_URI=http://mlflow:5000   any MLflow tracking URI (default: sqlite file under
                                     the artifacts root); MLP_TRACKING=false turns tracking off
    MLP_SEED=7                       the seed every random step derives from
"""

from __future__ import annotations

import sys
from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Where things live and how runs are tracked. Frozen: pass a new one instead of mutating."""

    model_config = SettingsConfigDict(
        env_prefix="MLP_", env_file=".env", extra="ignore", frozen=True
    )

    artifacts_root: Path = Field(Path("artifacts"), description="Root of the artifact store.")
    data_root: Path = Field(Path("data"), description="Where generated or downloaded data go.")
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
