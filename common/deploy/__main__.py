"""The deployment command line: `python -m common.deploy sagemaker package|deploy`, and
`python -m common.deploy path PROJECT [REF]` (the model an image or compose stack gets).

`package` prints the tarball's path on stdout (and nothing else), so
`tar=$(python -m common.deploy sagemaker package ...)` works; `deploy` prints what it uploaded,
created and updated. Progress goes to stderr. How to go from a trained model to a live endpoint,
step by step: the docstring of common/deploy/sagemaker.py.
"""

from __future__ import annotations

import logging
import re
import tempfile
from enum import StrEnum
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import typer

from common.cli import project_app, user_errors
from common.errors import ArtifactError, UserError
from common.settings import get_settings

if TYPE_CHECKING:
    from common.artifacts import Manifest

app = project_app(__doc__)
sagemaker_app = typer.Typer(
    help="Amazon SageMaker real-time endpoints.", no_args_is_help=True, add_completion=False
)
app.add_typer(sagemaker_app, name="sagemaker")

# SageMaker's rule for a container environment variable's name.
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class Project(StrEnum):
    churn = "churn"
    vision = "vision"
    forecast = "forecast"


PROJECT_HELP = (
    "Look aliases and versions up in this project's store ($MLP_ARTIFACTS_ROOT), and refuse "
    "another project's model."
)


@app.command()
def path(
    project: Project = typer.Argument(..., help="Whose store to look in."),
    ref: str | None = typer.Argument(
        None, help="Artifact directory, alias or version; default: production, else latest."
    ),
) -> None:
    """Print the artifact directory to deploy, the way a service picks its model: what the
    image builds and `make compose-up` mount."""
    from common.artifacts import ArtifactStore

    with user_errors():
        store = ArtifactStore(get_settings().artifacts_root, project.value)
        found = store.resolve(ref) if ref else store.resolve_serving(None)
    typer.echo(found.resolve())


@sagemaker_app.command()
def package(
    artifact: str = typer.Argument(
        ..., help="Artifact directory; with --project also an alias (production) or a version."
    ),
    out: Path = typer.Option(Path("model.tar.gz"), "--out", "-o", help="Tarball to write."),
    project: Project | None = typer.Option(None, help=PROJECT_HELP),
) -> None:
    """Verify an artifact and pack it as the model.tar.gz SageMaker unpacks into /opt/ml/model;
    print the tarball's path."""
    from common.deploy.tarball import write_model_tarball

    with user_errors():
        path, _ = write_model_tarball(
            resolve_artifact(artifact, project), out, project=_value(project)
        )
    typer.echo(path.resolve())


@sagemaker_app.command()
def deploy(
    name: str = typer.Option(..., help="Endpoint name; its models and configs get NAME-<time>."),
    image: str = typer.Option(
        ..., help="Serving image in ECR (ACCOUNT.dkr.ecr.REGION.amazonaws.com/REPO:TAG)."
    ),
    role: str = typer.Option(..., help="ARN of the execution role SageMaker assumes."),
    model_data: str | None = typer.Option(
        None, help="s3://bucket/key of an uploaded model.tar.gz; with --upload, where to put it."
    ),
    upload: str | None = typer.Option(
        None,
        help="Upload this first: a model.tar.gz, an artifact directory (packed on the way) or, "
        "with --project, an alias or version.",
    ),
    bucket: str | None = typer.Option(
        None, help="Where --upload puts the tarball: s3://BUCKET/NAME/VERSION/model.tar.gz."
    ),
    instance_type: str = typer.Option("ml.m5.large", help="Instance type of the endpoint."),
    instance_count: int = typer.Option(1, min=1, help="Instances behind the endpoint."),
    region: str | None = typer.Option(None, help="AWS region; default: AWS_DEFAULT_REGION."),
    env: list[str] | None = typer.Option(
        None, "--env", help="KEY=VALUE for the container's environment; repeatable."
    ),
    project: Project | None = typer.Option(None, help=PROJECT_HELP),
    wait: bool = typer.Option(False, "--wait", help="Return once the endpoint is in service."),
) -> None:
    """Create or update a SageMaker endpoint serving a model.tar.gz on S3; print what was done.

    A new model and endpoint config are created each time; an existing endpoint of the same
    name is updated to them, without downtime.
    """
    with user_errors():
        aws = _sagemaker_module()
        environment = parse_env(env or [])
        aws.check_name(name)
        if upload is None and model_data is None:
            raise UserError(
                "which model? Give --model-data s3://... (a model.tar.gz already uploaded) or "
                "--upload ARTIFACT --bucket BUCKET"
            )
        if upload is None and bucket is not None:
            raise UserError("--bucket is where --upload puts the model: add --upload ARTIFACT")
        if upload is not None and model_data is None and bucket is None:
            raise UserError("--upload needs --bucket (or --model-data s3://... to upload to)")
        if model_data is not None:
            aws.parse_s3_url(model_data)  # a typo fails here, before anything is uploaded
        sagemaker, s3 = _clients(aws, region)
        tags: dict[str, str] = {}
        if upload is not None:
            model_data, manifest = _upload(aws, s3, upload, name, bucket, model_data, project)
            tags = {
                "ml-portfolio:project": manifest.project,
                "ml-portfolio:version": manifest.version,
            }
            typer.echo(f"uploaded: {model_data}")
        else:
            assert model_data is not None  # checked above
            aws.check_model_data(s3, model_data)
        spec = aws.EndpointSpec(
            name=name,
            image=image,
            model_data=model_data,
            role=role,
            instance_type=instance_type,
            instance_count=instance_count,
            environment=environment,
            tags=tags,
        )
        done = aws.deploy(sagemaker, spec)
        typer.echo(f"model: {done.model} ({image})")
        typer.echo(f"endpoint config: {done.endpoint_config} ({instance_count} x {instance_type})")
        action = "creating" if done.created else f"updating to {done.endpoint_config}"
        typer.echo(f"endpoint: {done.endpoint} ({action})")
        if wait:
            aws.wait_in_service(sagemaker, done)
            typer.echo(f"endpoint: {done.endpoint} (in service)")


def resolve_artifact(ref: str, project: Project | None) -> Path:
    """An artifact directory from a path or, with a project, also from an alias or a version."""
    from common.artifacts import ArtifactStore

    if project is not None:
        return ArtifactStore(get_settings().artifacts_root, project.value).resolve(ref)
    if not Path(ref).is_dir():
        raise ArtifactError(f"{ref}: no such directory (for an alias or a version, add --project)")
    return Path(ref)


def parse_env(items: list[str]) -> dict[str, str]:
    """`["A=1", "B=x=y"]` as {"A": "1", "B": "x=y"}; UserError naming a malformed item."""
    environment = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not ENV_NAME.fullmatch(key):
            raise UserError(f"--env {item!r}: expected KEY=VALUE, KEY made of letters, digits, _")
        environment[key] = value
    return environment


def _value(project: Project | None) -> str | None:
    return None if project is None else project.value


def _sagemaker_module() -> ModuleType:
    try:
        from common.deploy import sagemaker
    except ImportError as exc:
        if exc.name not in {"boto3", "botocore"}:
            raise
        raise UserError("deploying needs boto3: pip install -e '.[deploy]'") from exc
    return sagemaker


def _clients(aws: ModuleType, region: str | None) -> tuple[Any, Any]:
    import boto3

    # boto3 logs at INFO where it found the credentials: noise, unless debugging (--verbose).
    if not logging.getLogger().isEnabledFor(logging.DEBUG):
        logging.getLogger("botocore").setLevel(logging.WARNING)
    # A missing region is found when a client is made, not when it is first used.
    with aws.aws_errors("connecting to AWS"):
        session = boto3.session.Session(region_name=region)
        return session.client("sagemaker"), session.client("s3")


def _upload(
    aws: ModuleType,
    s3: Any,
    ref: str,
    name: str,
    bucket: str | None,
    url: str | None,
    project: Project | None,
) -> tuple[str, Manifest]:
    """Upload a tarball, or pack an artifact and upload that; the URL and the model's manifest.

    Without `url` the key is NAME/VERSION/model.tar.gz: packing is deterministic, so uploading
    the same model again writes the same bytes to the same key.
    """
    from common.deploy.tarball import read_tarball_manifest, write_model_tarball

    if Path(ref).is_file():
        manifest = read_tarball_manifest(Path(ref), project=_value(project))
        url = url or f"s3://{bucket}/{name}/{manifest.version}/model.tar.gz"
        return aws.upload_model(s3, Path(ref), url), manifest
    artifact = resolve_artifact(ref, project)
    with tempfile.TemporaryDirectory(prefix="model-") as tmp:
        tarball, manifest = write_model_tarball(
            artifact, Path(tmp) / "model.tar.gz", project=_value(project)
        )
        url = url or f"s3://{bucket}/{name}/{manifest.version}/model.tar.gz"
        return aws.upload_model(s3, tarball, url), manifest


if __name__ == "__main__":
    app()
