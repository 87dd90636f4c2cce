"""`/predict` for a `MediaPredictor` (images): the payload as a file upload, raw bytes, or base64
in JSON, all validated by the predictor's one input model.

    curl -F file=@cat.jpg localhost:8081/predict                      multipart: one answer
    curl -F files=@a.jpg -F files=@b.png localhost:8081/predict       several: a list, in order
    curl --data-binary @cat.jpg -H 'Content-Type: image/jpeg' 'localhost:8081/predict?top_k=5'
    curl -H 'Content-Type: application/json' -d '{"image": "<base64>"}' localhost:8081/predict

Options (the input model's other fields, e.g. `top_k`, `gradcam`) come from form fields or the
query string. An upload's parts are cut out of the body the request middleware has already read
(`common.serving.multipart`), not streamed through Starlette's form parser again. The
endpoint is a `DirectRoute`: documented by FastAPI, called without its per-request machinery,
which it does not use.

A prediction runs in a worker thread unless the predictor calls it light
(`MediaPredictor.is_light`: for vision, one image of a few megapixels at most, without
Grad-CAM): decoding a 40-megapixel photo or a Grad-CAM takes long enough to stall the probes if
done on the event loop, while for a small photo the hop, with the two threads handing the CPU
and the GIL to each other, cost ~0.2 ms of a ~4.5 ms answer (benchmarks/README.md).
"""

from collections.abc import Awaitable, Callable
from typing import Any, Union

from fastapi import FastAPI, Request, Response
from fastapi.routing import APIRoute
from pydantic import BaseModel, TypeAdapter, ValidationError
from starlette.types import ASGIApp, Receive, Scope, Send

from common.predictor import MediaPredictor
from common.serving.codecs import JSON, parse_json, require_content_type
from common.serving.errors import ApiError, field_errors, summarise, too_many_rows
from common.serving.multipart import MultipartError, TooManyParts, parse_form
from common.serving.routes import ERRORS, batch_limit, off_loop_if, scores_of

MULTIPART = "multipart/form-data"
FILE_FIELDS = ("file", "files")  # one image, or several answered with a list
#: Text fields an upload may carry besides its files (Starlette's default limit too).
MAX_FORM_FIELDS = 1000
ROUTE = "/predict"


class DirectRoute(APIRoute):
    """A route whose endpoint takes the `Request` and returns a `Response` itself.

    FastAPI documents it like any other (OpenAPI, /docs), but calls it directly: without the
    dependency solving, body reading, response validation and two exit stacks it wraps every
    endpoint in, none of which such an endpoint uses. Right after a forward pass has evicted
    the caches, that machinery costs ~80 µs a request (benchmarks/README.md). An exception
    still reaches the app's handlers (ApiError -> its status, in the common error shape).
    """

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        super().__init__(path, endpoint, **kwargs)
        self.app = _direct(endpoint)


def _direct(endpoint: Callable[[Request], Awaitable[Response]]) -> ASGIApp:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        response = await endpoint(Request(scope, receive, send))
        await response(scope, receive, send)

    return app


def records_from_bytes(
    predictor_cls: type[MediaPredictor], blobs: list[bytes], options: dict[str, Any]
) -> list[BaseModel]:
    """One validated record per payload, with the same options; 422 naming a bad option."""
    try:
        return [predictor_cls.record_from_bytes(blob, options) for blob in blobs]
    except ValidationError as exc:
        problems = field_errors(exc.errors())
        raise ApiError(422, f"invalid request: {summarise(problems)}", problems) from None


def records_from_json(
    body: bytes, one: TypeAdapter, many: TypeAdapter, limit: int
) -> tuple[list[BaseModel], bool]:
    """JSON: one object (one answer) or a list (a list); 4xx naming what is wrong."""
    data = parse_json(body)
    single = not isinstance(data, list)
    if not single and not data:
        raise ApiError(422, "invalid request: the batch is empty; send at least one record")
    if not single and len(data) > limit:
        raise ApiError(413, too_many_rows(len(data), limit))
    try:
        return ([one.validate_python(data)] if single else many.validate_python(data)), single
    except ValidationError as exc:
        problems = field_errors(exc.errors())
        raise ApiError(422, f"invalid request: {summarise(problems)}", problems) from None


def records_from_form(
    body: bytes,
    content_type: str,
    query: dict[str, str],
    predictor_cls: type[MediaPredictor],
    limit: int,
) -> tuple[list[BaseModel], bool]:
    """multipart/form-data: one `file` (one answer) or several `files` (a list); options from
    the query string and the other form fields, which win."""
    try:
        parts = parse_form(body, content_type, max_parts=limit + MAX_FORM_FIELDS)
    except TooManyParts as exc:
        raise ApiError(413, f"{exc}: above this service's limit; split it") from None
    except MultipartError as exc:
        raise ApiError(400, f"invalid multipart upload: {exc}") from None
    files = [p for p in parts if p.name in FILE_FIELDS]
    if not files:
        raise ApiError(
            422,
            "invalid request: no file in the upload; send the image as form field `file` "
            "(or several as `files`)",
        )
    if not all(f.is_file for f in files):
        raise ApiError(422, "invalid request: `file`/`files` must be file uploads, not text")
    if len(files) > limit:
        raise ApiError(413, too_many_rows(len(files), limit))
    single = len(files) == 1 and files[0].name == "file"
    options = query | {p.name: p.text() for p in parts if p.name not in FILE_FIELDS}
    return records_from_bytes(predictor_cls, [f.data for f in files], options), single


def add_routes(app: FastAPI, predictor_cls: type[MediaPredictor], settings: Any) -> None:
    from common.serving.app import current_predictor

    Input, Output = predictor_cls.input_model, predictor_cls.output_model
    one, many = TypeAdapter(Input), TypeAdapter(list[Input])
    one_out, many_out = TypeAdapter(Output), TypeAdapter(list[Output])
    limit = batch_limit(predictor_cls, settings)
    accepted = (MULTIPART, JSON, *predictor_cls.media_types)
    options = [name for name in Input.model_fields if name != predictor_cls.payload_field]
    record_schema = Input.model_json_schema()
    form_schema = {
        "type": "object",
        "properties": {
            "file": {"type": "string", "format": "binary", "description": "One image."},
            "files": {"type": "array", "items": {"type": "string", "format": "binary"},
                      "description": "Several images: answered with a list, in order."},
            **{n: record_schema["properties"][n] for n in options},
        },
    }  # fmt: skip
    examples = getattr(predictor_cls, "examples", [])
    json_content: dict[str, Any] = {
        "schema": {"anyOf": [record_schema, {"type": "array", "items": record_schema}]}
    }
    if examples:
        json_content["example"] = examples[0]
    content = {MULTIPART: {"schema": form_schema}, JSON: json_content}
    content |= {kind: {"schema": {"type": "string", "format": "binary"}}
                for kind in predictor_cls.media_types}  # fmt: skip

    async def predict(request: Request) -> Response:
        """A file upload (`file`, or several `files`), the raw image bytes, or JSON with the
        image base64-encoded; options as form fields or query parameters."""
        # A DirectRoute solves no dependencies: the predictor (or the 503) is looked up here.
        predictor = await current_predictor(request)
        kind = require_content_type(request.headers.get("content-type"), accepted)
        if kind == MULTIPART:
            records, single = records_from_form(
                await request.body(), request.headers["content-type"],
                dict(request.query_params), predictor_cls, limit,
            )  # fmt: skip
        elif kind == JSON:
            records, single = records_from_json(await request.body(), one, many, limit)
        else:
            body = await request.body()
            records = records_from_bytes(predictor_cls, [body], dict(request.query_params))
            single = True
        outputs = await off_loop_if(
            lambda: predictor.predict_batch(records), not predictor.is_light(records)
        )
        request.app.state.metrics.record_predictions(
            ROUTE, scores_of(predictor, outputs), len(outputs),
            predictor.monitoring_inputs(records, outputs),
        )  # fmt: skip
        body = one_out.dump_json(outputs[0]) if single else many_out.dump_json(outputs)
        return Response(body, media_type=JSON)

    app.router.add_api_route(
        ROUTE,
        predict,
        methods=["POST"],
        route_class_override=DirectRoute,
        response_model=Union[Output, list[Output]],  # noqa: UP007
        responses=ERRORS,
        summary="Predict one image or a batch: upload, raw bytes or base64 JSON",
        openapi_extra={"requestBody": {"required": True, "content": content}},
    )
