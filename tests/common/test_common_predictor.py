"""Unit tests of the Predictor contract, on a toy model that doubles its input."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Self

import pytest
from pydantic import BaseModel, ConfigDict

from common.artifacts import ArtifactStore, read_manifest
from common.errors import ArtifactError
from common.predictor import Predictor
from common.settings import Settings


class Number(BaseModel):
    model_config = ConfigDict(extra="forbid")
    x: float


class Doubled(BaseModel):
    y: float


class Doubler(Predictor[Number, Doubled]):
    project = "toy"
    input_model = Number
    output_model = Doubled

    def __init__(self, path: Path, manifest, factor: float) -> None:  # type: ignore[no-untyped-def]
        super().__init__(path, manifest)
        self.factor = factor

    @classmethod
    def from_artifact(cls, path: Path) -> Self:
        manifest = read_manifest(path, project=cls.project)
        factor = json.loads((path / "model.json").read_text())["factor"]
        return cls(path, manifest, factor)

    def predict_batch(self, records: Sequence[Number]) -> list[Doubled]:
        return [Doubled(y=self.factor * r.x) for r in records]


def publish_doubler(root: Path, factor: float = 2.0) -> Path:
    with ArtifactStore(root, "toy").create() as draft:
        (draft.path / "model.json").write_text(json.dumps({"factor": factor}))
        draft.info.update(
            metrics={"test": {"mae": 0.0}},
            data_fingerprint="f" * 64,
            input_schema=Number.model_json_schema(),
        )
    assert draft.final_path is not None
    return draft.final_path


def test_from_store_loads_latest(tmp_path: Path) -> None:
    publish_doubler(tmp_path, factor=2.0)
    newest = publish_doubler(tmp_path, factor=2.0)

    predictor = Doubler.from_store("latest", Settings(artifacts_root=tmp_path))

    assert isinstance(predictor, Doubler)
    assert predictor.path == newest
    assert predictor.manifest.version == newest.name


def test_from_store_by_version_and_path(tmp_path: Path) -> None:
    first = publish_doubler(tmp_path, factor=3.0)
    publish_doubler(tmp_path, factor=2.0)
    settings = Settings(artifacts_root=tmp_path)

    assert Doubler.from_store(first.name, settings).factor == 3.0
    assert Doubler.from_store(first, settings).factor == 3.0
    assert Doubler.from_store(settings=settings).factor == 2.0  # "latest" by default


def test_from_store_reads_the_root_from_the_environment(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    final = publish_doubler(tmp_path / "models")
    monkeypatch.setenv("MLP_ARTIFACTS_ROOT", str(tmp_path / "models"))

    assert Doubler.from_store().path == final


def test_from_store_with_nothing_trained(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="none yet"):
        Doubler.from_store("latest", Settings(artifacts_root=tmp_path))


def test_predict_and_predict_batch_keep_order(tmp_path: Path) -> None:
    publish_doubler(tmp_path)
    predictor = Doubler.from_store("latest", Settings(artifacts_root=tmp_path))

    assert predictor.predict(Number(x=1.5)) == Doubled(y=3.0)
    outputs = predictor.predict_batch([Number(x=v) for v in (3.0, -1.0, 0.0, 10.0)])
    assert [o.y for o in outputs] == [6.0, -2.0, 0.0, 20.0]
    assert predictor.predict_batch([]) == []


def test_metadata_describes_the_model(tmp_path: Path) -> None:
    final = publish_doubler(tmp_path)
    predictor = Doubler.from_store("latest", Settings(artifacts_root=tmp_path))

    meta = predictor.metadata()

    assert meta["project"] == "toy"
    assert meta["version"] == final.name
    assert meta["metrics"] == {"test": {"mae": 0.0}}
    assert meta["data_fingerprint"] == "f" * 64
    assert meta["created_at"] == predictor.manifest.created_at.isoformat()
    assert "git_commit" in meta
    assert meta["input_schema"] == Number.model_json_schema()
    assert meta["input_schema"]["properties"]["x"]["type"] == "number"
    assert meta["output_schema"]["required"] == ["y"]
    json.dumps(meta)  # serialisable as is, for an HTTP endpoint


def test_predictor_cannot_be_built_without_the_abstract_methods() -> None:
    class Incomplete(Predictor[Number, Doubled]):
        project = "toy"
        input_model = Number
        output_model = Doubled

    with pytest.raises(TypeError, match="abstract"):
        Incomplete(Path("."), None)  # type: ignore[abstract, arg-type]


def test_a_tampered_artifact_is_refused_by_from_artifact(tmp_path: Path) -> None:
    final = publish_doubler(tmp_path)
    (final / "model.json").write_text(json.dumps({"factor": 1000}))

    with pytest.raises(ArtifactError, match=r"model\.json does not match its checksum"):
        Doubler.from_store("latest", Settings(artifacts_root=tmp_path))
