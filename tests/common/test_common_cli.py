"""Unit tests of common.cli: user errors become a message on stderr and exit code 2."""

from __future__ import annotations

import logging

import pytest
import typer
from pydantic import BaseModel, Field
from typer.testing import CliRunner

from common.cli import EXIT_USER_ERROR, setup_logging, user_errors
from common.errors import ArtifactError, UserError


class Options(BaseModel):
    trials: int = Field(ge=1)
    name: str


app = typer.Typer()


@app.command()
def main(what: str) -> None:
    with user_errors():
        if what == "user":
            raise ArtifactError("artifacts/churn/v1: artifact is corrupted: model.json is missing")
        if what == "options":
            Options(trials=0, name="x")
        if what == "bug":
            raise RuntimeError("a real bug")
        typer.echo("done")


def run(what: str):
    return CliRunner().invoke(app, [what])


def test_success_passes_through() -> None:
    result = run("ok")

    assert result.exit_code == 0
    assert result.stdout == "done\n"


def test_user_error_exits_2_with_the_message_on_stderr() -> None:
    result = run("user")

    assert result.exit_code == EXIT_USER_ERROR == 2
    assert result.stderr == (
        "error: artifacts/churn/v1: artifact is corrupted: model.json is missing\n"
    )
    assert result.stdout == ""
    assert "Traceback" not in result.output


def test_validation_error_is_a_readable_invalid_options_message() -> None:
    result = run("options")

    assert result.exit_code == 2
    assert result.stderr.startswith("error: invalid settings or options: trials: ")
    assert "greater than or equal to 1" in result.stderr
    assert "Traceback" not in result.output


def test_other_exceptions_propagate() -> None:
    result = run("bug")

    assert result.exit_code == 1
    assert isinstance(result.exception, RuntimeError)
    assert "error:" not in result.stderr


def test_user_errors_outside_typer() -> None:
    with pytest.raises(typer.Exit) as excinfo, user_errors():
        raise UserError("bad input")
    assert excinfo.value.exit_code == 2

    with pytest.raises(KeyError), user_errors():
        raise KeyError("bug")

    with user_errors():
        pass  # no error, no exit


def test_validation_error_lists_every_field(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(typer.Exit), user_errors():
        Options(trials=0)  # type: ignore[call-arg]

    err = capsys.readouterr().err
    assert err.startswith("error: invalid settings or options: ")
    assert "trials: " in err
    assert "name: Field required" in err


def test_setup_logging_sends_records_to_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        setup_logging(verbose=True)
        assert root.level == logging.DEBUG
        logging.getLogger("common.test").debug("hello")
        captured = capsys.readouterr()
        assert "DEBUG   common.test: hello" in captured.err
        assert captured.out == ""
        setup_logging()
        assert root.level == logging.INFO
    finally:
        logging.captureWarnings(False)
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])


def test_a_project_app_has_verbose_and_the_shared_serve_command(settings) -> None:
    from common.cli import add_serve_command, project_app

    project = project_app("A project.")
    add_serve_command(project, "churn.serve:ChurnPredictor")
    runner = CliRunner()
    help_text = runner.invoke(project, ["serve", "--help"]).output
    assert "--model" in help_text and "--host" in help_text and "--port" in help_text
    # No model in the (empty) store: one message naming what is missing, exit 2, no server.
    result = runner.invoke(project, ["--verbose", "serve"])
    assert result.exit_code == EXIT_USER_ERROR
    assert "churn" in result.stderr and "Traceback" not in result.output
