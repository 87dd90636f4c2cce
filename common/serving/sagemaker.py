"""SageMaker's container contract: `GET /ping` and `POST /invocations`.

SageMaker (real-time endpoints and batch transform) only ever calls these two. `/invocations`
is "a table in, a table out": `text/csv` lines (header optional) or JSON records (one object,
a list, or `{"instances": [...]}`) in; one output row per input row, in order, out, as CSV
lines or `{"predictions": [...]}` as `Accept` asks (default: the request's own type). A
tabular predictor's rows are its flat `predict_table` columns in both encodings. A media
predictor also takes the raw bytes of one image (`image/jpeg`, `application/x-image`, ...;
options in the query string) and answers in JSON.
"""

from typing import Annotated, Any

import numpy as np
import pandas as pd
from fastapi import Depends, FastAPI, Header, Request, Response
from pydantic import TypeAdapter, ValidationError

from common.predictor import MediaPredictor, Predictor, TabularPredictor
from common.schema import validate
from common.serving.codecs import (
    CSV,
    JSON,
    json_records,
    negotiate,
    read_csv,
    require_content_type,
    write_table,
)
from common.serving.errors import ApiError, too_many_rows, validation_error
from common.serving.media import records_from_bytes
from common.serving.routes import ERRORS, batch_limit, off_loop_if, scores_of

ROUTE = "/invocations"
#: Bodies above this size (~300 CSV rows) are handled in a worker thread.
INLINE_BYTES = 64 * 1024
TAGS = ["sagemaker"]


def add_routes(app: FastAPI, predictor_cls: type[Predictor], settings: Any) -> None:
    from common.serving.app import current_predictor

    PredictorDep = Annotated[Predictor, Depends(current_predictor)]
    records_adapter = TypeAdapter(list[predictor_cls.input_model])
    outputs_adapter = TypeAdapter(list[predictor_cls.output_model])
    tabular = issubclass(predictor_cls, TabularPredictor)
    media = issubclass(predictor_cls, MediaPredictor)
    accepted = (JSON, CSV) if tabular else (JSON,)
    if media:  # SageMaker's image content types: the raw bytes of one image
        accepted = (JSON, *predictor_cls.media_types)
    limit = batch_limit(predictor_cls, settings)

    @app.get("/ping", responses={503: ERRORS[503]}, tags=TAGS)
    async def ping(predictor: PredictorDep) -> Response:
        """200 with an empty body once the model is loaded (SageMaker's health check)."""
        return Response(status_code=200)

    @app.post(
        ROUTE,
        tags=TAGS,
        responses=ERRORS,
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {kind: {"schema": {}} for kind in accepted},
            }
        },
    )
    async def invocations(
        request: Request,
        predictor: PredictorDep,
        content_type: Annotated[str | None, Header(include_in_schema=False)] = None,
        accept: Annotated[str | None, Header(include_in_schema=False)] = None,
    ) -> Response:
        """Batch-transform style: many rows in one request, one answer row per row, in order."""
        kind = require_content_type(content_type, accepted)
        answer, header = negotiate(accept, (CSV, JSON) if tabular else (JSON,),
                                   default=CSV if kind == CSV else JSON)  # fmt: skip
        body = await request.body()
        # Parsing, validating and predicting a big body take long enough to stall every other
        # request (probes included) if done on the event loop.
        large = len(body) > INLINE_BYTES
        if tabular:

            def answer_table() -> tuple[bytes, np.ndarray | None, pd.DataFrame]:
                table = _read_table(body, kind, predictor, records_adapter, limit)
                out = predictor.predict_table(table)
                field = predictor.score_field
                scores = out[field].to_numpy() if field else None
                return write_table(out, answer, header), scores, table

            content, scores, table = await off_loop_if(answer_table, large)
            request.app.state.metrics.record_predictions(ROUTE, scores, len(table), table)
            return Response(content, media_type=answer)

        def read_records() -> list[Any]:
            if kind == JSON:
                return _validate_records(json_records(body), records_adapter, limit)
            return records_from_bytes(predictor_cls, [body], dict(request.query_params))

        records = await off_loop_if(read_records, large)
        # A small body can still be a large image: a media predictor knows what it costs.
        heavy = not predictor.is_light(records) if isinstance(predictor, MediaPredictor) else large
        outputs = await off_loop_if(lambda: predictor.predict_batch(records), heavy)
        request.app.state.metrics.record_predictions(
            ROUTE, scores_of(predictor, outputs), len(outputs),
            predictor.monitoring_inputs(records, outputs),
        )  # fmt: skip
        return Response(
            b'{"predictions":' + outputs_adapter.dump_json(outputs) + b"}", media_type=JSON
        )


def _validate_records(data: list[Any], adapter: TypeAdapter, limit: int) -> list[Any]:
    if not data:
        raise ApiError(422, "invalid request: the batch is empty; send at least one record")
    if len(data) > limit:  # counted before validating 100k records for nothing
        raise ApiError(413, too_many_rows(len(data), limit))
    try:
        return adapter.validate_python(data)
    except ValidationError as exc:
        raise validation_error(exc.errors()) from None


def _read_table(
    body: bytes, kind: str, predictor: TabularPredictor, adapter: TypeAdapter, limit: int
) -> pd.DataFrame:
    """The request as a frame validated against the predictor's input schema."""
    schema = predictor.input_schema
    if kind == CSV:
        # Every problem of every line at once, with its row number (1 = first data line).
        return validate(read_csv(body, schema, max_rows=limit), schema,
                        source="request", allow_extra=False)  # fmt: skip
    records = _validate_records(json_records(body), adapter, limit)
    fields = list(predictor.input_model.model_fields)
    return pd.DataFrame({f: [getattr(r, f) for r in records] for f in fields})
