"""The app factory: any project's Predictor class in, a FastAPI app out.

    app = create_app(ChurnPredictor)      # what `python -m churn serve` runs

The model is loaded once, in the background, when the app starts: `/health` answers at once
(the process is alive), `/ready` and `/ping` answer 503 until the model is loaded, and every
endpoint that needs the model answers 503 with the reason until then, or for good if loading
failed (the error is logged and shown by `/ready`).

Which model: `MODEL_DIR` (an artifact directory, e.g. SageMaker's `/opt/ml/model`), else the
project's `production` alias in the artifact store, else its `latest` (`ServeSettings` and
`ArtifactStore.resolve_serving`, which the dashboards use too).
"""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

from fastapi import FastAPI, Request

from common.artifacts import ArtifactStore
from common.errors import ArtifactError
from common.monitoring.live import LiveMonitor
from common.monitoring.profile import ReferenceProfile
from common.predictor import Predictor, TabularPredictor
from common.serving.errors import ApiError, install_error_handlers
from common.serving.middleware import RequestMiddleware
from common.serving.observability import ServiceMetrics
from common.settings import ServeSettings, get_settings

logger = logging.getLogger("common.serving")


@dataclass
class ServiceState:
    """What the app knows about its model: loaded, still loading, or failed (and why)."""

    predictor: Predictor | None = None
    error: str | None = None


async def current_predictor(request: Request) -> Predictor:
    """The loaded predictor, or 503 saying why there is none (a FastAPI dependency).

    `async` although it awaits nothing: FastAPI runs a plain `def` dependency in a worker
    thread, a hop that costs ~0.1 ms per request, more than the churn model's prediction.
    """
    state: ServiceState = request.app.state.service
    if state.predictor is None:
        reason = state.error or "the model is still loading"
        raise ApiError(503, "model not ready", reason)
    return state.predictor


def create_app(
    predictor_cls: type[Predictor],
    settings: ServeSettings | None = None,
    *,
    load: Callable[[], Predictor] | None = None,
    freeze_gc: bool = False,
) -> FastAPI:
    """A FastAPI app serving `predictor_cls`; `load` replaces how the model is loaded (tests).

    `freeze_gc` (what `run` asks for) moves everything alive once the model is loaded out of
    the garbage collector's reach, for good: right for a process that is the service, not for
    one that builds apps and drops them (tests, notebooks)."""
    # Imported here, as they import this module; their request models are built from
    # `predictor_cls` by the `add_routes` calls below.
    from common.serving import kserve, routes, sagemaker

    settings = settings or ServeSettings()
    metrics = ServiceMetrics()
    state = ServiceState()

    def default_load() -> Predictor:
        store = ArtifactStore(get_settings().artifacts_root, predictor_cls.project)
        return predictor_cls.from_artifact(store.resolve_serving(settings.model_dir))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        task = asyncio.create_task(
            _load_into(state, load or default_load, metrics, settings, freeze_gc)
        )
        yield
        task.cancel()

    app = FastAPI(
        title=f"{predictor_cls.project} model API",
        description=(predictor_cls.__doc__ or "").strip(),
        lifespan=lifespan,
    )
    app.state.service = state
    app.state.metrics = metrics
    app.state.settings = settings
    install_error_handlers(app)
    app.add_middleware(RequestMiddleware, metrics=metrics, max_body_bytes=settings.max_body_bytes)
    routes.add_routes(app, predictor_cls, settings)
    sagemaker.add_routes(app, predictor_cls, settings)
    if issubclass(predictor_cls, TabularPredictor):
        kserve.add_routes(app, predictor_cls, settings)
    return app


async def _load_into(
    state: ServiceState,
    load: Callable[[], Predictor],
    metrics: ServiceMetrics,
    settings: ServeSettings,
    freeze_gc: bool,
) -> None:
    try:
        predictor = await asyncio.to_thread(load)
        profile = ReferenceProfile.load(predictor.path)
    except Exception as exc:  # any failure means "not ready": logged, and shown by /ready
        state.error = f"the model failed to load: {exc}"
        logger.error(state.error, exc_info=not isinstance(exc, ArtifactError))
        return
    if profile is not None:
        metrics.watch(
            LiveMonitor(profile, settings.drift_window_rows, settings.drift_min_rows,
                        columns=predictor.monitoring_columns)
        )  # fmt: skip
    else:
        logger.warning("no reference profile in %s: drift gauges are off", predictor.path)
    if freeze_gc:
        # The libraries and the model are millions of long-lived objects that a full garbage
        # collection would walk every time: ~100 ms with the loop stopped, ten times in 8 s of
        # load on the churn service. Frozen, they are left out of collections for good.
        await asyncio.to_thread(gc.collect)
        gc.freeze()
    state.predictor = predictor
    metrics.set_model(predictor.manifest.project, predictor.manifest.version)
    logger.info(
        "model loaded",
        extra={"model": predictor.manifest.project, "version": predictor.manifest.version,
               "path": str(predictor.path)},
    )  # fmt: skip


def run(predictor_cls: type[Predictor], settings: ServeSettings | None = None) -> None:
    """Serve with uvicorn until SIGINT/SIGTERM, logging JSON to stderr."""
    import uvicorn

    from common.serving.memory import keep_freed_memory
    from common.serving.observability import log_config

    settings = settings or ServeSettings()
    # Here, not in create_app: it sets the whole process's malloc, which a test or an app that
    # mounts this one should not have changed for it.
    keep_freed_memory()
    uvicorn.run(
        create_app(predictor_cls, settings, freeze_gc=True),
        host=settings.host,
        port=settings.port,
        log_config=log_config(settings.log_level),
        access_log=False,
        timeout_graceful_shutdown=10,
    )
