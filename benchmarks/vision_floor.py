"""The floor for the vision API benchmark: uvicorn serving a bare ASGI app around the same
`VisionPredictor`, with nothing of ours around it.

    python -m benchmarks.vision_floor MODEL_DIR PORT

It answers `POST` with a raw image body exactly as the service's `/predict` does (the record,
`predict_batch`, the answer's JSON), and `GET /ready` for `wait_ready`. What it leaves out is
everything else a request passes through in the service: FastAPI and Starlette (routing,
error handling), our middleware (request id, body limit, log line), the metrics and the drift
window. `benchmarks.vision_api` takes turns with it, so the gap between the two is what that
stack costs per request, and the floor's own ratio is what uvicorn, the loopback and the
client cost on this machine. Not a server to deploy: no errors handled, no limits.
"""

from __future__ import annotations

import gc
import sys
from pathlib import Path

from starlette.types import ASGIApp, Receive, Scope, Send


def bare_app(model_dir: Path) -> ASGIApp:
    """The ASGI app: the predictor loaded once, then one prediction per POST."""
    from pydantic import TypeAdapter

    from vision.serve import VisionPredictor

    predictor = VisionPredictor.from_artifact(model_dir)
    answer = TypeAdapter(VisionPredictor.output_model)
    # As the service does once the model is in: the libraries' objects out of collections.
    gc.collect()
    gc.freeze()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        chunks, more = [], True
        while more:
            message = await receive()
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        if scope["method"] == "POST":
            record = VisionPredictor.record_from_bytes(b"".join(chunks), {})
            body = answer.dump_json(predictor.predict_batch([record])[0])
        else:
            body = b'{"status": "ready"}'
        headers = [(b"content-type", b"application/json"),
                   (b"content-length", str(len(body)).encode())]  # fmt: skip
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return app


def main() -> None:
    import uvicorn

    from common.serving.memory import keep_freed_memory

    model_dir, port = Path(sys.argv[1]), int(sys.argv[2])
    keep_freed_memory()  # as the service's process does (common.serving.app.run)
    # The service's uvicorn settings, less its log configuration.
    uvicorn.run(bare_app(model_dir), host="127.0.0.1", port=port, log_level="warning",
                access_log=False)  # fmt: skip


if __name__ == "__main__":
    main()
