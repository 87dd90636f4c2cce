"""Fixtures for the tests of the shared layer (common/): a small schema, an artifact store in
tmp_path and a helper that publishes a toy artifact into it."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from common.artifacts import ArtifactStore
from common.schema import Column, TableSchema
from common.settings import get_settings


@pytest.fixture
def customer_schema() -> TableSchema:
    """One column of each kind, with a key, ranges, categories and a nullable/optional column."""
    return TableSchema(
        "customers",
        (
            Column("id", "string", description="Customer id."),
            Column("age", "int", min=18, max=120),
            Column("income", "float", min=0, nullable=True),
            Column("plan", "category", categories=("basic", "pro")),
            Column("note", "string", required=False, nullable=True),
        ),
        key="id",
    )


@pytest.fixture
def clean_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """No MLP_* variables, an empty working directory (so no stray .env is read), fresh cache."""
    for name in list(os.environ):
        if name.startswith("MLP_"):
            monkeypatch.delenv(name)
    workdir = tmp_path / "cwd"
    workdir.mkdir()
    monkeypatch.chdir(workdir)
    get_settings.cache_clear()
    yield workdir
    get_settings.cache_clear()


@pytest.fixture
def store(tmp_path: Path) -> ArtifactStore:
    return ArtifactStore(tmp_path / "store", "toy")


@pytest.fixture
def publish(store: ArtifactStore) -> Callable[..., Path]:
    """Publish a toy artifact (a model file and a nested file) and return its directory."""

    def _publish(
        model: str = "weights-v1", *, target: ArtifactStore | None = None, **info: Any
    ) -> Path:
        with (target or store).create() as draft:
            (draft.path / "model.txt").write_text(model)
            (draft.path / "plots").mkdir()
            (draft.path / "plots" / "curve.csv").write_text("x,y\n0,1\n")
            draft.info.update(info)
        assert draft.final_path is not None
        return draft.final_path

    return _publish
