"""A subset of the Open Inference Protocol (KServe v2) for tabular models.

    GET  /v2/health/live, /v2/health/ready
    GET  /v2/models/{name}, /v2/models/{name}/ready
    POST /v2/models/{name}/infer

A table travels as one 1-D tensor per column (`{"name": "tenure", "shape": [n], "datatype":
"INT64", "data": [...]}`); the answer is one tensor per output column, in the same row order.
Tensors are validated against the predictor's table schema like any other batch.
"""

import math
from typing import Annotated, Any, Literal

import numpy as np
import pandas as pd
from fastapi import Depends, FastAPI, Request
from pydantic import BaseModel, Field

from common.predictor import Predictor, TabularPredictor
from common.schema import TableSchema, validate
from common.serving.errors import ApiError, ErrorBody, too_many_rows
from common.serving.routes import (
    ERRORS,
    Health,
    batch_limit,
    predict_off_loop,
    predictor_for_json,
)

TAGS = ["open inference protocol (v2)"]
Datatype = Literal["BOOL", "INT64", "FP64", "FP32", "INT32", "BYTES"]
_DATATYPES = {"int": "INT64", "float": "FP64", "bool": "BOOL", "category": "BYTES",
              "string": "BYTES"}  # fmt: skip
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorBody, "description": "No model of that name here"},
    503: ERRORS[503],
}
# Which tensor datatypes may carry each kind of column.
_ACCEPTED = {"int": {"INT64", "INT32"}, "float": {"FP64", "FP32", "INT64", "INT32"},
             "category": {"BYTES"}, "string": {"BYTES"}}  # fmt: skip
_NUMBER_TYPES = {"INT64", "INT32", "FP64", "FP32"}


class Tensor(BaseModel):
    name: str
    shape: list[int]
    datatype: Datatype
    data: list[Any]


class InferRequest(BaseModel):
    id: str | None = None
    inputs: list[Tensor] = Field(min_length=1)
    parameters: dict[str, Any] | None = None


class InferResponse(BaseModel):
    model_name: str
    model_version: str
    id: str | None = None
    outputs: list[Tensor]


class TensorSpec(BaseModel):
    name: str
    datatype: str
    shape: list[int]


class ModelMetadataV2(BaseModel):
    name: str
    versions: list[str]
    platform: str
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]


def add_routes(app: FastAPI, predictor_cls: type[TabularPredictor], settings: Any) -> None:
    from common.serving.app import current_predictor

    PredictorDep = Annotated[Predictor, Depends(current_predictor)]
    schema = predictor_cls.input_schema
    # The same limit as /predict and /invocations: the model's own if tighter than the service's.
    limit = batch_limit(predictor_cls, settings)

    def model_named(name: str, predictor: TabularPredictor) -> TabularPredictor:
        served = predictor.manifest.project
        if name != served:
            raise ApiError(404, f"no model named {name!r}; this server has {served!r}")
        return predictor

    @app.get("/v2/health/live", tags=TAGS, response_model=Health)
    async def live() -> Health:
        return Health(status="live")

    @app.get("/v2/health/ready", tags=TAGS, response_model=Health, responses={503: ERRORS[503]})
    async def ready(predictor: PredictorDep) -> Health:
        return Health(status="ready")

    @app.get("/v2/models/{name}", tags=TAGS, response_model=ModelMetadataV2, responses=NOT_FOUND)
    async def model_metadata(name: str, predictor: PredictorDep) -> ModelMetadataV2:
        model = model_named(name, predictor)
        return ModelMetadataV2(
            name=name,
            versions=[model.manifest.version],
            platform="ml-portfolio",
            inputs=[TensorSpec(name=c.name, datatype=_DATATYPES[c.kind], shape=[-1])
                    for c in schema.columns],
            outputs=[TensorSpec(name=n, datatype=_DATATYPES[kind], shape=[-1])
                     for n, kind in model.output_columns.items()],
        )  # fmt: skip

    @app.get(
        "/v2/models/{name}/ready", tags=TAGS, response_model=Health, responses={503: ERRORS[503]}
    )
    async def model_ready(name: str, predictor: PredictorDep) -> Health:
        model_named(name, predictor)
        return Health(status="ready")

    @app.post("/v2/models/{name}/infer", tags=TAGS, response_model=InferResponse,
              responses={**ERRORS, **NOT_FOUND})  # fmt: skip
    async def infer(
        name: str,
        payload: InferRequest,
        request: Request,
        predictor: Annotated[Predictor, Depends(predictor_for_json)],
    ) -> InferResponse:
        model = model_named(name, predictor)
        table = validate(_to_frame(payload.inputs, schema, limit), schema,
                         source="request", allow_extra=False)  # fmt: skip
        out = await predict_off_loop(lambda: model.predict_table(table), len(table))
        field = model.score_field
        request.app.state.metrics.record_predictions(
            "/v2/models/{name}/infer", out[field].to_numpy() if field else None, len(out), table
        )
        return InferResponse(
            model_name=name,
            model_version=model.manifest.version,
            id=payload.id,
            outputs=[_to_tensor(str(c), out[c]) for c in out.columns],
        )


def _to_frame(inputs: list[Tensor], schema: TableSchema, limit: int) -> pd.DataFrame:
    """Input tensors as table columns; every tensor must be 1-D (or n x 1) of one length, with
    a datatype that fits its column (validation then checks the values)."""
    names = [t.name for t in inputs]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ApiError(422, f"invalid request: input tensors repeated: {', '.join(repeated)}")
    lengths = set()
    for t in inputs:
        if len(t.shape) not in (1, 2) or (len(t.shape) == 2 and t.shape[1] != 1):
            raise ApiError(422, f"invalid request: input {t.name!r} has shape {t.shape}; "
                           "send one 1-D tensor per column, shape [n]")  # fmt: skip
        if math.prod(t.shape) != len(t.data):
            raise ApiError(422, f"invalid request: input {t.name!r} has shape {t.shape} but "
                           f"{len(t.data)} values")  # fmt: skip
        if t.name in schema.names and t.datatype not in _ACCEPTED[schema[t.name].kind]:
            allowed = " or ".join(sorted(_ACCEPTED[schema[t.name].kind]))
            raise ApiError(422, f"invalid request: input {t.name!r} is {t.datatype}; "
                           f"its column takes {allowed}")  # fmt: skip
        if t.datatype in _NUMBER_TYPES:
            _require_numbers(t)
        lengths.add(t.shape[0])
    if len(lengths) > 1:
        raise ApiError(422, f"invalid request: input tensors differ in length: {sorted(lengths)}")
    n = lengths.pop()
    if n > limit:
        raise ApiError(413, too_many_rows(n, limit))
    return pd.DataFrame({t.name: pd.Series(t.data, dtype=object) for t in inputs})


def _require_numbers(tensor: Tensor) -> None:
    """Refuse strings and booleans in a number tensor. Validation would coerce `"2"` to 2 and
    `true` to 1, but /predict refuses both (strict numbers), and so must this protocol; a
    missing value (null) is left for validation to judge against the column's nullability."""
    for i, value in enumerate(tensor.data):
        if value is None or (isinstance(value, (int, float)) and not isinstance(value, bool)):
            continue
        raise ApiError(422, f"invalid request: input {tensor.name!r} is {tensor.datatype} but "
                       f"value {i} is {value!r}, not a number")  # fmt: skip


def _to_tensor(name: str, column: pd.Series) -> Tensor:
    values = column.to_numpy()
    if values.dtype == bool:
        return Tensor(name=name, shape=[len(values)], datatype="BOOL", data=values.tolist())
    if np.issubdtype(values.dtype, np.integer):
        return Tensor(name=name, shape=[len(values)], datatype="INT64", data=values.tolist())
    if np.issubdtype(values.dtype, np.floating):
        data = [None if np.isnan(v) else v for v in values.tolist()]
        return Tensor(name=name, shape=[len(values)], datatype="FP64", data=data)
    data = [None if v is None or v is pd.NA else str(v) for v in values.tolist()]
    return Tensor(name=name, shape=[len(values)], datatype="BYTES", data=data)
