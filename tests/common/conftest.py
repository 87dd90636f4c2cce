"""Fixtures for the tests of the shared layer (common/): a small schema, an artifact store in
tmp_path, a helper that publishes a toy artifact into it, and a toy tabular predictor for the
serving tests (proof that common/serving knows nothing of churn: a customer's score is
age / 100, plus 0.25 on the pro plan; at 0.5 or more they are flagged)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Self

import numpy as np
import pandas as pd
import pytest
from pydantic import BaseModel

from common.artifacts import ArtifactStore, Manifest, read_manifest
from common.predictor import TabularPredictor
from common.schema import Column, TableSchema, record_model
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


TOY_SCHEMA = TableSchema(
    "toy_customers",
    (
        Column("id", "string", required=False, nullable=True),
        Column("age", "int", min=18, max=120, description="Age in years."),
        Column("plan", "category", categories=("basic", "pro")),
    ),
)
Customer = record_model(TOY_SCHEMA, "ToyCustomer")
TOY_OUTPUT_COLUMNS = {"id": "string", "score": "float", "flagged": "bool"}
TOY_EXAMPLES = [{"id": "a", "age": 30, "plan": "pro"}, {"id": "b", "age": 70, "plan": "basic"}]


class Scored(BaseModel):
    id: str | None
    score: float
    flagged: bool


class ToyPredictor(TabularPredictor[BaseModel, Scored]):
    """Scores toy customers (test double)."""

    project = "toy"
    input_model = Customer
    output_model = Scored
    input_schema = TOY_SCHEMA
    output_columns = TOY_OUTPUT_COLUMNS
    score_field = "score"
    examples = TOY_EXAMPLES

    def __init__(self, path: Path, manifest: Manifest, bonus: float) -> None:
        super().__init__(path, manifest)
        self.bonus = bonus

    @classmethod
    def from_artifact(cls, path: Path) -> Self:
        manifest = read_manifest(path, project=cls.project)
        return cls(path, manifest, json.loads((path / "model.json").read_text())["bonus"])

    def _score(self, age: np.ndarray, plan: np.ndarray) -> np.ndarray:
        return age / 100 + self.bonus * (plan == "pro")

    def predict_table(self, table: pd.DataFrame) -> pd.DataFrame:
        score = self._score(table["age"].to_numpy(float), table["plan"].to_numpy(object))
        ids = table["id"] if "id" in table else [None] * len(table)
        return pd.DataFrame({"id": ids, "score": score, "flagged": score >= 0.5})

    def predict_batch(self, records: Sequence[BaseModel]) -> list[Scored]:
        age = np.array([r.age for r in records], dtype=float)
        score = self._score(age, np.array([r.plan for r in records], dtype=object))
        return [
            Scored(id=r.id, score=float(s), flagged=bool(s >= 0.5))
            for r, s in zip(records, score, strict=True)
        ]


@pytest.fixture
def toy_artifact(tmp_path: Path) -> Path:
    return publish_toy(tmp_path / "toy-store")


def publish_toy(root: Path, bonus: float = 0.25) -> Path:
    """A real artifact of the toy model in a store under `root`; returns its directory."""
    with ArtifactStore(root, "toy").create() as draft:
        (draft.path / "model.json").write_text(json.dumps({"bonus": bonus}))
        draft.info.update(metrics={"test": {"accuracy": 1.0}}, data_fingerprint="f" * 64)
    assert draft.final_path is not None
    return draft.final_path


@pytest.fixture
def toy_predictor() -> type[ToyPredictor]:
    return ToyPredictor
