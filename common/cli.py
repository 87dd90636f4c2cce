"""What every project's command line shares: logging to stderr and turning user errors into a
clear message and a non-zero exit code, without a traceback.

stdout is kept for results (e.g. the artifact directory `train` prints), so scripts can capture
it; progress, warnings and errors go to stderr.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import typer
from pydantic import ValidationError

from common.errors import UserError

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
        details = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        typer.echo(f"error: invalid settings or options: {details}", err=True)
        raise typer.Exit(EXIT_USER_ERROR) from None
