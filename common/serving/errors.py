"""One error shape for every response that is not a success: `{"error": ..., "detail": ...}`.

`error` is one sentence naming the problem (the field, the value, the line); `detail` carries
the specifics a program can use (e.g. every invalid field). Clients never see a stack trace:
an unexpected exception is logged with its request id and answered with a generic 500 that
quotes the id, so an operator can find it in the logs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from common.errors import DataValidationError, InputError

# Tags of the "one record or a list" union: pydantic puts them in error locations, users
# shouldn't see them.
_UNION_TAGS = frozenset({"record", "batch"})
_MAX_VALUE_CHARS = 200


class ErrorBody(BaseModel):
    """Every error response's body."""

    error: str
    detail: Any = None


class ApiError(Exception):
    """An error with its HTTP status, raised anywhere in a request and answered as ErrorBody."""

    def __init__(self, status: int, error: str, detail: Any = None) -> None:
        super().__init__(error)
        self.status = status
        self.error = error
        self.detail = detail


def error_response(status: int, error: str, detail: Any = None) -> JSONResponse:
    return JSONResponse({"error": error, "detail": _json_safe(detail)}, status_code=status)


def too_many_rows(n: int, limit: int) -> str:
    return f"batch of {n} rows is above this service's limit of {limit} rows; split it"


def field_errors(errors: Sequence[Any], prefix: str = "") -> list[dict[str, Any]]:
    """pydantic errors as `{"field", "message", "value"}`: `[2].tenure` is the third record's
    tenure; the value is the one sent (shortened), absent when the field itself is missing."""
    out = []
    for e in errors:
        loc = list(e["loc"])
        if loc[:1] == ["body"]:
            loc = loc[1:]
        if loc[:1] and loc[0] in _UNION_TAGS:  # the branch pydantic chose, not a field
            loc = loc[1:]
        path = prefix
        for part in loc:
            path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
        item: dict[str, Any] = {"field": path or "body", "message": e["msg"]}
        if e["type"] != "missing":
            item["value"] = e.get("input")
        out.append(item)
    return out


def summarise(problems: list[dict[str, Any]]) -> str:
    """One line for the `error` field: the first problem, and how many more there are."""
    first = problems[0]
    text = f"{first['field']}: {first['message']}"
    if "value" in first:
        text += f" (got {_short(first['value'])})"
    if len(problems) > 1:
        text += f"; and {len(problems) - 1} more problem{'s' if len(problems) > 2 else ''}"
    return text


def validation_error(errors: Sequence[Any]) -> ApiError:
    """A request body that parsed but does not fit the model: 422 naming each field."""
    problems = field_errors(errors)
    return ApiError(422, f"invalid request: {summarise(problems)}", problems)


def _from_request_validation(exc: RequestValidationError) -> ApiError:
    errors = exc.errors()
    for e in errors:
        if e["type"] == "json_invalid":
            position = e["loc"][-1] if len(e["loc"]) > 1 else "?"
            reason = (e.get("ctx") or {}).get("error", "not valid JSON")
            return ApiError(400, f"malformed JSON: {reason} at character {position}")
        if e["type"] == "missing" and tuple(e["loc"]) == ("body",):
            return ApiError(400, "empty body: send a JSON object (one record) or a list of them")
        if e["type"] == "too_long" and tuple(e["loc"]) == ("body", "batch"):
            limit = (e.get("ctx") or {}).get("max_length")
            return ApiError(413, too_many_rows(len(e["input"]), limit))
    return validation_error(errors)


def install_error_handlers(app: FastAPI) -> None:
    """Answer every expected failure in the ErrorBody shape (500s: see the request middleware)."""

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.error, exc.detail)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        err = _from_request_validation(exc)
        return error_response(err.status, err.error, err.detail)

    @app.exception_handler(DataValidationError)
    async def _invalid_table(request: Request, exc: DataValidationError) -> JSONResponse:
        problems = [
            {"column": p.column, "message": p.message, "rows": p.rows, "count": p.count,
             "examples": p.examples}
            for p in exc.problems
        ]  # fmt: skip
        summary = "; ".join(str(p) for p in exc.problems[:3])
        more = len(exc.problems) - 3
        summary += f"; and {more} more problem{'s' if more > 1 else ''}" if more > 0 else ""
        return error_response(422, f"invalid request: {summary}", problems)

    @app.exception_handler(InputError)
    async def _bad_record(request: Request, exc: InputError) -> JSONResponse:
        problem = {"field": exc.location, "message": exc.message}
        return error_response(422, f"invalid request: {summarise([problem])}", [problem])

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        error = {404: f"no such endpoint: {request.url.path}"}.get(exc.status_code, exc.detail)
        if exc.status_code == 405:
            error = f"method {request.method} not allowed on {request.url.path}"
        response = error_response(exc.status_code, str(error))
        response.headers.update(exc.headers or {})
        return response


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _json_safe(value: Any) -> Any:
    """What JSON can carry: NaN/inf as strings (a client may have sent them), long values cut."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, str):
        return value if len(value) <= _MAX_VALUE_CHARS else value[:_MAX_VALUE_CHARS] + "..."
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in list(value.items())[:50]}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value[:50]]
    return _json_safe(repr(value))
