"""What every project's command line shares: logging to stderr and turning user errors into a
clear message and a non-zero exit code, without a traceback.

stdout is kept for results (e.g. the artifact directory `train` prints), so scripts can capture
it; progress, warnings and errors go to stderr.
"""

from __future__ import annotations

import importlib
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import typer
from pydantic import ValidationError

from common.errors import UserError

if TYPE_CHECKING:
    from common.monitoring.run import MonitorResult
    from common.predictor import Predictor

#: Exit code for errors the user can fix (bad data, bad options, corrupted artifact).
EXIT_USER_ERROR = 2


def setup_logging(verbose: bool = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
        force=True,
    )
    logging.captureWarnings(True)  # data-quality warnings share the log's format


@contextmanager
def user_errors() -> Iterator[None]:
    """Print a UserError (or invalid options) as one clear message and exit with code 2."""
    try:
        yield
    except UserError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(EXIT_USER_ERROR) from None
    except ValidationError as exc:
        details = "; ".join(_describe(e) for e in exc.errors())
        typer.echo(f"error: invalid settings or options: {details}", err=True)
        raise typer.Exit(EXIT_USER_ERROR) from None


def _describe(error: Any) -> str:
    """`models.1: Input should be 'naive' or 'ets' (got 'arima')`: the bad value is named."""
    text = f"{'.'.join(map(str, error['loc']))}: {error['msg']}"
    value = error.get("input")
    if isinstance(value, (str, int, float)) and not isinstance(value, bool):
        text += f" (got {value!r})"
    return text


def project_app(doc: str | None) -> typer.Typer:
    """A project's command line: its commands are added to this, which already takes what
    every command shares (`--verbose`)."""
    app = typer.Typer(
        help=doc, no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False
    )

    @app.callback()
    def main(verbose: bool = typer.Option(False, "--verbose", "-v", help="Debug logging.")) -> None:
        setup_logging(verbose)

    return app


def add_serve_command(app: typer.Typer, predictor: str) -> None:
    """Add the `serve` command, the same for every project; `predictor` ("module:Class") is
    imported only when the command runs, so the rest of the CLI starts without its libraries."""

    @app.command()
    def serve(
        model: str | None = typer.Option(
            None,
            help="Alias, version or artifact directory; default: MODEL_DIR, else the "
            "production alias, else latest.",
        ),
        host: str | None = typer.Option(
            None, help="Interface; default 127.0.0.1 (0.0.0.0 to expose)."
        ),
        port: int | None = typer.Option(None, help="Port; default SAGEMAKER_BIND_TO_PORT or 8080."),
    ) -> None:
        """Serve the model over HTTP (docs at /docs) until interrupted."""
        module, name = predictor.split(":")
        run_server(getattr(importlib.import_module(module), name), model, host, port)


def run_server(predictor_cls: type[Predictor], model: str | None, host: str | None,
               port: int | None) -> None:  # fmt: skip
    """What every project's `serve` command does: resolve the model now (an error naming what
    is missing beats a server that never becomes ready), then serve until interrupted."""
    from common.artifacts import ArtifactStore
    from common.serving.app import run
    from common.settings import ServeSettings, get_settings

    with user_errors():
        store = ArtifactStore(get_settings().artifacts_root, predictor_cls.project)
        options: dict[str, Any] = {"host": host, "port": port}
        if model is not None:
            options["model_dir"] = store.resolve(model)
        settings = ServeSettings(**{k: v for k, v in options.items() if v is not None})
        path = store.resolve_serving(settings.model_dir)
        settings = settings.model_copy(update={"model_dir": path})
    logging.getLogger(predictor_cls.project).info(
        "serving %s on http://%s:%d", path, settings.host, settings.port
    )
    run(predictor_cls, settings)


def finish_monitoring(result: MonitorResult) -> None:
    """What every project's `monitor` command ends with: undelivered alerts logged, the
    report's path on stdout, and the run's exit status (0 fine, 3 critical open, 1 undelivered)."""
    logger = logging.getLogger("common.monitoring")
    for failure in result.failures:
        logger.error("alert not delivered (the next run sends it again): %s", failure)
    typer.echo(result.report_dir / "report.html")
    if result.exit_code:
        raise typer.Exit(result.exit_code)
