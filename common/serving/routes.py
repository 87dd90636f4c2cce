"""The service's own endpoints: health, readiness, metadata, metrics and `/predict`.

`/predict` takes one record (a JSON object) or a batch (a list) and answers in kind, with
request and response models generated from the Predictor's, so they show in the OpenAPI
schema with examples. Small batches are predicted on the event loop (a thread hop costs more
than the ~0.1 ms prediction); large ones in a worker thread so that probes are answered
meanwhile. (FastAPI parses and validates a `/predict` body on the loop; big batches belong on
`/invocations`, which does all its work off the loop.) Where the Predictor allows it, small
requests that arrive together share one model call (batching.py).

This module does not use `from __future__ import annotations`: FastAPI reads the endpoint
annotations, which here are types built at run time from the Predictor class.
"""

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Annotated, Any, TypeVar, Union

import numpy as np
from fastapi import Body, Depends, FastAPI, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, TypeAdapter

from common.predictor import MediaPredictor, Predictor
from common.serving.app import current_predictor
from common.serving.batching import MAX_MERGED_ROWS, RequestCoalescer
from common.serving.codecs import JSON, require_content_type
from common.serving.errors import ErrorBody

#: Above this many rows a prediction runs in a worker thread instead of the event loop.
INLINE_ROWS = 256
T = TypeVar("T")

# Documented on every endpoint that can answer them.
ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": text}
    for status, text in {
        400: "Malformed or empty body",
        413: "Body or batch above the service's limits",
        415: "Unsupported content type",
        422: "A field is missing, unknown, of the wrong type or out of range",
        503: "The model is not loaded (yet)",
    }.items()
}


class Health(BaseModel):
    status: str


class ModelMetadata(BaseModel):
    """Which model answers, where it came from and how well it did when it was trained; plus
    whatever the predictor's own `metadata()` adds (e.g. a vision model's classes)."""

    model_config = ConfigDict(extra="allow")

    name: str
    version: str
    created_at: datetime
    git_commit: str | None
    data_fingerprint: str | None
    metrics: dict[str, Any]
    input_schema: dict[str, Any]
    output_schema: dict[str, Any]
    output_columns: dict[str, str] | None = Field(
        None, description="Tabular models: the flat columns of a CSV or tensor answer, in order."
    )
    limits: dict[str, int]


def batch_limit(predictor_cls: type[Predictor], settings: Any) -> int:
    """Most records in one request: the service's limit, or the model's own if tighter."""
    own = predictor_cls.max_batch
    return min(settings.max_batch_rows, own) if own else settings.max_batch_rows


async def predict_off_loop(fn: Callable[[], T], n_rows: int) -> T:
    """Run `fn` inline for small batches, in a worker thread for large ones."""
    return await off_loop_if(fn, n_rows > INLINE_ROWS)


async def off_loop_if(fn: Callable[[], T], large: bool) -> T:
    """Run `fn` in a worker thread if the work is large, else right here on the event loop."""
    return await run_in_threadpool(fn) if large else fn()


def scores_of(predictor: Predictor, outputs: Sequence[BaseModel]) -> np.ndarray | None:
    field = predictor.score_field
    if field is None:
        return None
    return np.array([getattr(o, field) for o in outputs], dtype=np.float64)


async def predictor_for_json(request: Request) -> Predictor:
    """The loaded predictor for a JSON request, or 415 unless the body is declared JSON. A
    dependency, so it runs before the body is validated; one, rather than two, because each
    costs ~15 µs a request."""
    require_content_type(request.headers.get("content-type"), (JSON,))
    return await current_predictor(request)


def add_routes(app: FastAPI, predictor_cls: type[Predictor], settings: Any) -> None:
    """Register the endpoints on `app` itself: an included APIRouter is a nested router in
    FastAPI, one more matching pass per request."""
    PredictorDep = Annotated[Predictor, Depends(current_predictor)]
    Input = predictor_cls.input_model
    Output = predictor_cls.output_model
    limit = batch_limit(predictor_cls, settings)
    Batch = Annotated[list[Input], Field(min_length=1, max_length=limit)]
    # A callable discriminator picks the branch from the JSON's shape, so a bad record gets
    # the errors of the record model alone rather than those of both union members.
    Records = Annotated[
        Union[Annotated[Input, Tag("record")], Annotated[Batch, Tag("batch")]],  # noqa: UP007
        Discriminator(lambda v: "batch" if isinstance(v, list) else "record"),
    ]
    examples = getattr(predictor_cls, "examples", [])
    openapi_examples = {}
    if examples:
        openapi_examples = {
            "one record": {"summary": "One record", "value": examples[0]},
            "a batch": {"summary": "A batch, answered in order", "value": examples},
        }
    one_out, many_out = TypeAdapter(Output), TypeAdapter(list[Output])
    coalescer = RequestCoalescer() if predictor_cls.coalesce_requests else None
    app.state.coalescer = coalescer

    @app.get("/health", response_model=Health, tags=["probes"])
    async def health() -> Health:
        """Liveness: the process answers (the model may still be loading)."""
        return Health(status="ok")

    @app.get("/ready", response_model=Health, responses={503: ERRORS[503]}, tags=["probes"])
    async def ready(predictor: PredictorDep) -> Health:
        """Readiness: the model is loaded and predictions can be served."""
        return Health(status="ready")

    @app.get("/metadata", response_model=ModelMetadata, responses={503: ERRORS[503]})
    async def metadata(predictor: PredictorDep) -> ModelMetadata:
        """The served model: version, provenance, metrics and input/output schemas."""
        meta = predictor.metadata()
        return ModelMetadata(
            name=meta.pop("project"),
            limits={"max_body_bytes": settings.max_body_bytes,
                    "max_batch_rows": limit},
            **meta,
        )  # fmt: skip

    @app.get("/metrics", tags=["probes"], response_class=Response)
    async def metrics(request: Request) -> Response:
        """Prometheus metrics of this process."""
        return Response(request.app.state.metrics.render(), media_type="text/plain; version=0.0.4")

    if issubclass(predictor_cls, MediaPredictor):  # uploads and raw bytes too: see media.py
        from common.serving import media

        media.add_routes(app, predictor_cls, settings)
        return

    @app.post(
        "/predict",
        response_model=Union[Output, list[Output]],  # noqa: UP007
        responses=ERRORS,
        summary=f"Predict one {Input.__name__} or a list of them",
    )
    async def predict(
        request: Request,
        records: Annotated[Records, Body(openapi_examples=openapi_examples)],
        predictor: Annotated[Predictor, Depends(predictor_for_json)],
    ) -> Response:
        """One JSON object gets one prediction; a list gets a list, in the same order."""
        batch = records if isinstance(records, list) else [records]
        if coalescer is not None and len(batch) <= MAX_MERGED_ROWS:
            outputs = await coalescer.predict(predictor, batch)
        else:
            outputs = await predict_off_loop(lambda: predictor.predict_batch(batch), len(batch))
        request.app.state.metrics.record_predictions(
            "/predict", scores_of(predictor, outputs), len(outputs),
            predictor.monitoring_inputs(batch, outputs),
        )  # fmt: skip
        body = (
            many_out.dump_json(outputs)
            if isinstance(records, list)
            else one_out.dump_json(outputs[0])
        )
        return Response(body, media_type=JSON)
