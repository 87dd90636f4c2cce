"""The ASGI middleware every request passes through: request id, body limit, metrics, log line.

Written as plain ASGI rather than Starlette's `BaseHTTPMiddleware`, which costs a task and
queues per request: on a ~1 ms endpoint that overhead would be visible in p50.

- Request id: taken from the client's `X-Request-ID` when it is sane, else a new one; returned
  in the response header and in every log line of the request.
- Body limit: the body is read here, up to `max_body_bytes`; a larger one gets 413 before the
  app parses a byte of it (a declared Content-Length is refused without reading).
- Unexpected exceptions: logged with the traceback and the request id, answered with a generic
  500 in the common error shape, never the traceback.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from common.serving.errors import error_response
from common.serving.observability import ServiceMetrics

logger = logging.getLogger("common.serving.requests")
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_SANE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
# Probes and scrapes arrive every few seconds forever; their log lines go to DEBUG.
_QUIET = frozenset(
    {"/health", "/ready", "/ping", "/metrics", "/v2/health/live", "/v2/health/ready"}
)


class RequestMiddleware:
    def __init__(self, app: ASGIApp, metrics: ServiceMetrics, max_body_bytes: int) -> None:
        self.app = app
        self.metrics = metrics
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        headers = dict(scope["headers"])
        sent_id = headers.get(b"x-request-id", b"").decode("latin-1")
        request_id = sent_id if _SANE_ID.match(sent_id) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        status = 500
        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                status = message["status"]
                started = True
                message["headers"] = [*message.get("headers", []),
                                      (b"x-request-id", request_id.encode())]  # fmt: skip
            await send(message)

        try:
            body = await self._read_body(receive, headers)
            if body is None:
                response = error_response(
                    413, f"request body is larger than this service's limit of "
                    f"{self.max_body_bytes:,} bytes",
                )  # fmt: skip
                await response(scope, receive, send_with_id)
            else:
                await self.app(scope, _replay(body, receive), send_with_id)
        except Exception:
            logger.exception("unhandled error", extra={"request_id": request_id})
            if started:
                raise
            response = error_response(500, "internal error", f"logged with request id {request_id}")
            await response(scope, receive, send_with_id)
        finally:
            seconds = time.perf_counter() - start
            route = getattr(scope.get("route"), "path", "unmatched")
            # Label values must come from a small set: a client can send any method name.
            method = scope["method"] if scope["method"] in _METHODS else "other"
            self.metrics.record_request(route, method, status, seconds)
            level = logging.DEBUG if scope["path"] in _QUIET else logging.INFO
            if logger.isEnabledFor(level):
                extra: dict[str, Any] = {
                    "request_id": request_id, "method": scope["method"], "path": scope["path"],
                    "status": status, "duration_ms": round(seconds * 1000, 3),
                }  # fmt: skip
                logger.log(level, "%s %s %d", scope["method"], scope["path"], status, extra=extra)

    async def _read_body(self, receive: Receive, headers: dict[bytes, bytes]) -> bytes | None:
        """The whole body, or None when it is over the limit."""
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            return None
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":  # client went away
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                return None
            chunks.append(chunk)
            more = message.get("more_body", False)
        return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A `receive` that hands the app the already-read body, then waits on the client."""
    delivered = False

    async def replay() -> Message:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
