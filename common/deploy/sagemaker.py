r"""A SageMaker real-time endpoint serving one artifact, with boto3.

`deploy` creates a Model (the project's serving image plus the model.tar.gz on S3), an
EndpointConfig (one production variant) and the Endpoint. Model and config are named
`NAME-YYYYmmdd-HHMMSS` and never reused, so deploying again makes a new pair and points the
existing endpoint at it with `UpdateEndpoint`: SageMaker swaps the instances behind the endpoint
without downtime, and rolls back to the old config if the new one fails to start. Every
function takes its boto3 client, so tests pass moto's; the CLI is `common/deploy/__main__.py`.

Deploying to SageMaker for real
-------------------------------
Needs: the AWS CLI and docker, `pip install -e '.[deploy]'`, an S3 bucket in the endpoint's
region, and an execution role that SageMaker can assume with read access to that bucket and to
ECR (the managed policy AmazonSageMakerFullAccess to start with; narrow it for production).

1. Build the project's image (SageMaker runs linux/amd64) and push it to ECR:

    export AWS_DEFAULT_REGION=eu-west-1      # read by the aws CLI and by boto3 alike
    ACCOUNT=$(aws sts get-caller-identity --query Account --output text)
    REGISTRY=$ACCOUNT.dkr.ecr.$AWS_DEFAULT_REGION.amazonaws.com
    IMAGE=$REGISTRY/ml-portfolio-churn:1
    aws ecr create-repository --repository-name ml-portfolio-churn        # once
    aws ecr get-login-password | docker login --username AWS --password-stdin $REGISTRY
    docker build --platform linux/amd64 -f docker/churn.Dockerfile -t $IMAGE .
    docker push $IMAGE

2. Package the model and deploy it. `--upload` puts the tarball at
   s3://BUCKET/NAME/VERSION/model.tar.gz first; `--wait` returns once the endpoint is in
   service (5-10 minutes):

    python -m common.deploy sagemaker package production --project churn --out model.tar.gz
    python -m common.deploy sagemaker deploy --name churn --image $IMAGE \
        --role arn:aws:iam::$ACCOUNT:role/SageMakerExecution \
        --upload model.tar.gz --bucket my-models --wait

   Or upload it yourself (`aws s3 cp model.tar.gz s3://my-models/churn/model.tar.gz`) and pass
   `--model-data s3://my-models/churn/model.tar.gz` instead of `--upload` and `--bucket`.
   Deploying again with the same `--name` updates the endpoint in place, without downtime.

3. Invoke it: CSV or JSON in, as `POST /invocations` takes them (the label column must go):

    head -3 data/churn/telco.csv | cut -d, -f1-20 > rows.csv
    aws sagemaker-runtime invoke-endpoint --endpoint-name churn --body fileb://rows.csv \
        --content-type text/csv --accept application/json out.json && cat out.json

4. Delete it when done: an endpoint bills by the hour until deleted. The versioned models and
   configs (`aws sagemaker list-models --name-contains churn-`) cost nothing but clutter:

    aws sagemaker delete-endpoint --endpoint-name churn
    aws sagemaker delete-endpoint-config --endpoint-config-name churn-20250101-120000
    aws sagemaker delete-model --model-name churn-20250101-120000
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from boto3.exceptions import S3UploadFailedError
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    NoCredentialsError,
    NoRegionError,
    WaiterError,
)

from common.errors import UserError

logger = logging.getLogger(__name__)

# SageMaker's rule for model, endpoint config and endpoint names.
NAME_PATTERN = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9])*$")
MAX_NAME = 63
STAMP = "%Y%m%d-%H%M%S"
# The versioned model and config names add "-" and a stamp to NAME.
MAX_BASE_NAME = MAX_NAME - 1 - len(datetime(2000, 1, 1).strftime(STAMP))
VARIANT = "AllTraffic"


class DeployError(UserError):
    """An AWS call failed; the message says what was being done and AWS's reason."""


@dataclass(frozen=True)
class EndpointSpec:
    """What to deploy: the endpoint `name`, the serving `image` (an ECR URI), the S3 URL of the
    model.tar.gz, the execution `role` ARN, the instances, the container's environment and
    tags for the model, config and endpoint."""

    name: str
    image: str
    model_data: str
    role: str
    instance_type: str = "ml.m5.large"
    instance_count: int = 1
    environment: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Deployment:
    """What `deploy` did: `created` is False when an existing endpoint was updated."""

    endpoint: str
    model: str
    endpoint_config: str
    created: bool


def check_name(name: str) -> None:
    """DeployError unless `name` can name an endpoint and, with a stamp, its model and config."""
    if not NAME_PATTERN.match(name) or len(name) > MAX_BASE_NAME:
        raise DeployError(
            f"endpoint name {name!r}: use letters, digits and hyphens, starting and ending with a "
            f"letter or digit, at most {MAX_BASE_NAME} characters"
        )


def parse_s3_url(url: str) -> tuple[str, str]:
    """`s3://bucket/some/key` as ("bucket", "some/key"); DeployError if it is not one."""
    match = re.fullmatch(r"s3://([^/]+)/(.+)", url)
    if not match:
        raise DeployError(f"{url!r} is not an S3 object URL (s3://bucket/key/model.tar.gz)")
    return match.group(1), match.group(2)


@contextmanager
def aws_errors(what: str) -> Iterator[None]:
    """Turn a failed AWS call into a DeployError: `<what> failed: <AWS's reason> (<code>)`."""
    try:
        yield
    except (BotoCoreError, ClientError, S3UploadFailedError) as exc:
        raise DeployError(f"{what} failed: {_reason(exc)}") from exc


def upload_model(s3: Any, tarball: Path, url: str) -> str:
    """Upload a model.tar.gz to `url` (s3://bucket/key) and return the URL."""
    bucket, key = parse_s3_url(url)
    with aws_errors(f"uploading {tarball} to {url}"):
        # upload_file goes multipart for large files and retries failed parts.
        s3.upload_file(str(tarball), bucket, key)
    logger.info("uploaded %s to %s", tarball, url)
    return url


def check_model_data(s3: Any, url: str) -> None:
    """DeployError if the object at `url` does not exist: SageMaker itself would only say so when
    the endpoint fails to start, minutes later. A refused check (no s3:GetObject) only warns."""
    bucket, key = parse_s3_url(url)
    with aws_errors(f"checking {url}"):
        try:
            s3.head_object(Bucket=bucket, Key=key)
        except ClientError as exc:
            if exc.response["Error"].get("Code") in {"404", "NoSuchKey", "NoSuchBucket"}:
                raise DeployError(f"{url}: no such object in S3; upload it first") from exc
            logger.warning(
                "could not check %s: %s; SageMaker checks it when the endpoint starts",
                url,
                _reason(exc),
            )


def deploy(sagemaker: Any, spec: EndpointSpec, *, now: datetime | None = None) -> Deployment:
    """Create a model and an endpoint config named after `spec.name` and `now` (default: the
    current time), then create the endpoint, or point it at the new config if it exists."""
    check_name(spec.name)
    versioned = f"{spec.name}-{(now or datetime.now(UTC)).strftime(STAMP)}"
    tags = [{"Key": k, "Value": v} for k, v in spec.tags.items()]
    # Looked up first: a caller without the rights finds out before anything is created.
    with aws_errors(f"looking up endpoint {spec.name!r}"):
        exists = _endpoint_exists(sagemaker, spec.name)
    with aws_errors(f"creating model {versioned!r}"):
        container = {
            "Image": spec.image,
            "ModelDataUrl": spec.model_data,
            "Environment": spec.environment,
        }
        sagemaker.create_model(
            ModelName=versioned, PrimaryContainer=container, ExecutionRoleArn=spec.role, Tags=tags
        )
    logger.info("created model %s (%s, %s)", versioned, spec.image, spec.model_data)
    with aws_errors(f"creating endpoint config {versioned!r}"):
        variant = {
            "VariantName": VARIANT,
            "ModelName": versioned,
            "InstanceType": spec.instance_type,
            "InitialInstanceCount": spec.instance_count,
            "InitialVariantWeight": 1.0,
        }
        sagemaker.create_endpoint_config(
            EndpointConfigName=versioned, ProductionVariants=[variant], Tags=tags
        )
    logger.info(
        "created endpoint config %s (%d x %s)", versioned, spec.instance_count, spec.instance_type
    )
    if exists:
        with aws_errors(f"updating endpoint {spec.name!r} to config {versioned!r}"):
            sagemaker.update_endpoint(EndpointName=spec.name, EndpointConfigName=versioned)
    else:
        with aws_errors(f"creating endpoint {spec.name!r}"):
            sagemaker.create_endpoint(
                EndpointName=spec.name, EndpointConfigName=versioned, Tags=tags
            )
    logger.info("%s endpoint %s", "updating" if exists else "creating", spec.name)
    return Deployment(spec.name, versioned, versioned, created=not exists)


def wait_in_service(
    sagemaker: Any, deployment: Deployment, *, delay: int = 30, max_attempts: int = 120
) -> None:
    """Wait (by default up to an hour) until the endpoint serves the deployment's config.

    An update that fails leaves the endpoint in service on its old config: that is an error too.
    """
    name = deployment.endpoint
    try:
        sagemaker.get_waiter("endpoint_in_service").wait(
            EndpointName=name, WaiterConfig={"Delay": delay, "MaxAttempts": max_attempts}
        )
    except WaiterError as exc:
        reason = (exc.last_response or {}).get("FailureReason") or _reason(exc)
        raise DeployError(f"endpoint {name!r} did not come into service: {reason}") from exc
    with aws_errors(f"describing endpoint {name!r}"):
        described = sagemaker.describe_endpoint(EndpointName=name)
    if described["EndpointConfigName"] != deployment.endpoint_config:
        reason = described.get("FailureReason") or "no reason given"
        raise DeployError(
            f"endpoint {name!r} is in service on config {described['EndpointConfigName']!r}: "
            f"the update to {deployment.endpoint_config!r} failed ({reason})"
        )


def _endpoint_exists(sagemaker: Any, name: str) -> bool:
    try:
        sagemaker.describe_endpoint(EndpointName=name)
    except ClientError as exc:
        error = exc.response["Error"]
        # SageMaker's answer for a missing endpoint: a ValidationException, "Could not find ..."
        if error.get("Code") == "ValidationException" and "Could not find" in error["Message"]:
            return False
        raise
    return True


def _reason(exc: BaseException) -> str:
    """AWS's message and error code; for a wrapped error (a failed upload), the original's."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ClientError):
            error = seen.response.get("Error", {})
            return f"{error.get('Message') or seen} ({error.get('Code', 'no code')})"
        seen = seen.__cause__ or seen.__context__
    if isinstance(exc, NoCredentialsError):
        return f"{exc}: configure AWS (aws configure, AWS_PROFILE or AWS_ACCESS_KEY_ID)"
    if isinstance(exc, NoRegionError):
        return f"{exc} Pass --region or set AWS_DEFAULT_REGION"
    return str(exc)
