"""The one contract every project's model implements, so serving, dashboards and monitoring are
written once.

A `Predictor` is built from an artifact directory (`from_artifact`), declares pydantic models for
one input record and one output record, predicts a batch, and describes itself (`metadata`).
Everything it needs to turn a raw record into a prediction, preprocessing included, is loaded
from the artifact: nothing is re-implemented at serving time.

A `MediaPredictor` (vision) takes records that carry one binary payload (an image): as base64 in
JSON, and also as the raw bytes of an upload, which is how most clients send a file.

A `TabularPredictor` (churn) also declares its input as a `TableSchema` and predicts whole
validated frames: that is how a 10,000-line CSV is scored without building 10,000 pydantic
objects, which would cost ~10x the prediction itself.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, Generic, Self, TypeVar

import pandas as pd
from pydantic import BaseModel

from common.artifacts import ArtifactStore, Manifest
from common.monitoring.columns import concat_columns
from common.schema import TableSchema
from common.settings import Settings, get_settings

InputT = TypeVar("InputT", bound=BaseModel)
OutputT = TypeVar("OutputT", bound=BaseModel)


class Predictor(ABC, Generic[InputT, OutputT]):
    """A loaded model: typed records in, typed predictions out."""

    #: The project's name; also its folder in the artifact store.
    project: ClassVar[str]
    #: One input record and one output record, as pydantic models (they become the API schema).
    input_model: ClassVar[type[BaseModel]]
    output_model: ClassVar[type[BaseModel]]
    #: The output field that is the model's score (e.g. a probability), for metrics and drift.
    score_field: ClassVar[str | None] = None
    #: Valid input records, shown in the API's OpenAPI examples and used by smoke tests.
    examples: ClassVar[list[dict[str, Any]]] = []
    #: Most records one request may carry, when the model needs a tighter bound than the
    #: service's `max_batch_rows` (a batch of images costs far more memory than one of rows).
    max_batch: ClassVar[int | None] = None
    #: Whether concurrent small `/predict` requests may share one `predict_batch` call
    #: (common/serving/batching.py): worth it where a call's fixed cost outweighs a row's.
    coalesce_requests: ClassVar[bool] = False

    def __init__(self, path: Path, manifest: Manifest) -> None:
        self.path = path
        self.manifest = manifest

    @classmethod
    @abstractmethod
    def from_artifact(cls, path: Path) -> Self:
        """Load from an artifact directory, verifying it (checksums, format, library versions)."""

    @classmethod
    def from_store(cls, ref: str | Path = "latest", settings: Settings | None = None) -> Self:
        """Load by alias, version or path from the store under `settings.artifacts_root`."""
        root = (settings or get_settings()).artifacts_root
        return cls.from_artifact(ArtifactStore(root, cls.project).resolve(ref))

    @abstractmethod
    def predict_batch(self, records: Sequence[InputT]) -> list[OutputT]:
        """Predict many records at once; the output keeps the input's order."""

    def predict(self, record: InputT) -> OutputT:
        return self.predict_batch([record])[0]

    def monitoring_inputs(self, records: Sequence[InputT], outputs: Sequence[OutputT]) -> Any:
        """What the service's drift window keeps of these predictions, taken on the request
        path, so cheap: the records themselves by default. `monitoring_columns` reads the
        watched columns from it later, in bulk."""
        return records

    def monitoring_columns(self, kept: Sequence[Any], names: Sequence[str]) -> Mapping[str, list]:
        """The columns `names` (those of the reference profile) of several `monitoring_inputs`
        results, in order. By default they are read from records, a frame or a mapping; a model
        whose input is no table computes them here (an image's brightness, size, ...)."""
        return concat_columns(kept, names)

    def metadata(self) -> dict[str, Any]:
        """What a client needs to know about the model: identity, provenance, metrics, schemas."""
        m = self.manifest
        return {
            "project": m.project,
            "version": m.version,
            "created_at": m.created_at.isoformat(),
            "git_commit": m.git_commit,
            "data_fingerprint": m.data_fingerprint,
            "metrics": m.metrics,
            "input_schema": self.input_model.model_json_schema(),
            "output_schema": self.output_model.model_json_schema(),
        }


class MediaPredictor(Predictor[InputT, OutputT]):
    """A predictor whose record is one binary payload (an image) plus options (e.g. `top_k`).

    In JSON the payload is base64 in `payload_field`; the API also takes it as raw bytes (a
    `Content-Type` in `media_types`) or a multipart upload, with the options as query or form
    fields. Either way the record is built by `record_from_bytes`, so it is validated by the
    same input model.
    """

    #: Content types a raw body may have, e.g. ("image/jpeg", "image/png", ...).
    media_types: ClassVar[tuple[str, ...]]
    #: The input model's field that carries the payload (base64 in JSON).
    payload_field: ClassVar[str] = "image"

    @classmethod
    def record_from_bytes(cls, data: bytes, options: Mapping[str, Any]) -> BaseModel:
        """A validated input record from a raw payload and options; pydantic's ValidationError
        names a bad option."""
        fields = {k: v for k, v in options.items() if k != cls.payload_field}
        # The options are validated with an empty payload, which then gets the bytes as they
        # are: base64-encoding them only for the validator to decode them would copy a 32 MB
        # body three times.
        record = cls.input_model.model_validate({**fields, cls.payload_field: ""})
        return record.model_copy(update={cls.payload_field: data})

    def is_light(self, records: Sequence[BaseModel]) -> bool:
        """Whether predicting `records` takes few enough milliseconds to run on the event loop.

        Otherwise the API predicts in a worker thread, so that a large payload never stalls
        the probes; for a small one the hop costs more than it protects. The default is never:
        only the predictor knows what its payloads cost."""
        return False


class TabularPredictor(Predictor[InputT, OutputT]):
    """A predictor over rows of a table: adds a column-wise path for batches (CSV, tensors)."""

    #: The columns one input row has; validated as a whole frame, every problem with its row.
    input_schema: ClassVar[TableSchema]
    #: The flat output columns `predict_table` returns, name -> int, float, bool or string.
    output_columns: ClassVar[dict[str, str]]
    coalesce_requests: ClassVar[bool] = True

    def metadata(self) -> dict[str, Any]:
        return {**super().metadata(), "output_columns": dict(self.output_columns)}

    @abstractmethod
    def predict_table(self, table: pd.DataFrame) -> pd.DataFrame:
        """Predict rows already validated against `input_schema`: one output row per input row,
        in order, with scalar columns only (nested outputs flattened, e.g. `reason_1_feature`)."""
