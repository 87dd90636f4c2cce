"""Tests of common.deploy: the model.tar.gz an artifact becomes, and the SageMaker deployment,
against moto's in-memory S3 and SageMaker (fake credentials: nothing ever reaches AWS)."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import tarfile
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto.core.responses import ActionResult
from moto.sagemaker.responses import SageMakerResponse
from typer.testing import CliRunner

from common.artifacts import MANIFEST, MANIFEST_SHA, ArtifactStore, read_manifest, sha256_file
from common.deploy.__main__ import app
from common.deploy.sagemaker import (
    DeployError,
    Deployment,
    EndpointSpec,
    aws_errors,
    check_model_data,
    check_name,
    deploy,
    upload_model,
    wait_in_service,
)
from common.deploy.tarball import read_tarball_manifest, write_model_tarball
from common.errors import ArtifactError
from common.settings import Settings

REGION = "us-east-1"
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/ml-portfolio-toy:1"
ROLE = "arn:aws:iam::123456789012:role/SageMakerExecution"
BUCKET = "models"
T1 = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
T2 = datetime(2025, 1, 2, 4, 0, 0, tzinfo=UTC)
runner = CliRunner()


def _update_endpoint(self: SageMakerResponse) -> ActionResult:
    """UpdateEndpoint, which moto 5 does not implement: the endpoint takes the new config."""
    backend = self.sagemaker_backend
    name, config_name = self._get_param("EndpointName"), self._get_param("EndpointConfigName")
    backend.describe_endpoint(name)  # SageMaker's ValidationException for a missing one
    config = backend.describe_endpoint_config(config_name)
    endpoint = backend.endpoints[name]
    endpoint.endpoint_config_name = config_name
    endpoint.production_variants = endpoint._process_production_variants(
        config["ProductionVariants"]
    )
    return ActionResult({"EndpointArn": endpoint.arn})


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """The CLI points the root logger at CliRunner's stderr, which is closed after the call."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    yield
    root.handlers[:], root.level = saved[0], saved[1]
    logging.captureWarnings(False)


@pytest.fixture
def aws(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """moto's AWS, with fake credentials and no trace of a developer's own AWS configuration."""
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    if not hasattr(SageMakerResponse, "update_endpoint"):
        monkeypatch.setattr(SageMakerResponse, "update_endpoint", _update_endpoint, raising=False)
    with mock_aws():
        yield


@pytest.fixture
def sm(aws: None) -> Any:
    return boto3.client("sagemaker", region_name=REGION)


@pytest.fixture
def s3(aws: None) -> Any:
    return boto3.client("s3", region_name=REGION)


@pytest.fixture
def bucket(s3: Any) -> str:
    s3.create_bucket(Bucket=BUCKET)
    return BUCKET


def spec(**changes: Any) -> EndpointSpec:
    values: dict[str, Any] = {
        "name": "toy",
        "image": IMAGE,
        "model_data": f"s3://{BUCKET}/toy/v1/model.tar.gz",
        "role": ROLE,
        "instance_type": "ml.c5.xlarge",
        "instance_count": 2,
        "environment": {"MLP_SERVE_LOG_LEVEL": "DEBUG"},
        "tags": {"ml-portfolio:version": "v1"},
    }
    return EndpointSpec(**{**values, **changes})


def members(tarball: Path) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(tarball, "r:gz") as tar:
        return {m.name: m for m in tar.getmembers()}


# -- the tarball -------------------------------------------------------------------------------


def test_package_holds_exactly_the_artifact_files_at_the_root(
    publish: Callable[..., Path], tmp_path: Path
) -> None:
    artifact = publish()
    manifest = read_manifest(artifact)

    out, packed = write_model_tarball(artifact, tmp_path / "out" / "model.tar.gz")

    assert out == tmp_path / "out" / "model.tar.gz" and packed == manifest
    found = members(out)
    files = sorted(n for n, m in found.items() if m.isfile())
    assert (
        files
        == sorted([MANIFEST, MANIFEST_SHA, *manifest.files])
        == [
            "manifest.json",
            "manifest.sha256",
            "model.txt",
            "plots/curve.csv",
        ]
    )
    assert [n for n, m in found.items() if m.isdir()] == ["plots"]
    assert {(m.uid, m.gid, m.uname, m.gname) for m in found.values()} == {(0, 0, "root", "root")}
    assert {m.mode for m in found.values() if m.isfile()} == {0o644}
    assert {m.mtime for m in found.values()} == {int(manifest.created_at.timestamp())}
    # What SageMaker unpacks into /opt/ml/model is the artifact itself, checksums and all.
    model_dir = tmp_path / "opt" / "ml" / "model"
    with tarfile.open(out, "r:gz") as tar:
        tar.extractall(model_dir, filter="data")
    assert read_manifest(model_dir, project="toy", verify=True) == manifest
    assert (model_dir / "model.txt").read_text() == "weights-v1"


def test_package_is_reproducible_byte_for_byte(
    publish: Callable[..., Path], tmp_path: Path
) -> None:
    artifact = publish()
    first, _ = write_model_tarball(artifact, tmp_path / "a" / "model.tar.gz")
    os.utime(artifact / "model.txt", (1e9, 1e9))  # a copy or a checkout changes the times
    second, _ = write_model_tarball(artifact, tmp_path / "b" / "other-name.tar.gz")

    assert first.read_bytes() == second.read_bytes()


def test_package_reads_through_symlinks(publish: Callable[..., Path], tmp_path: Path) -> None:
    artifact = publish()
    reference, _ = write_model_tarball(artifact, tmp_path / "reference.tar.gz")
    # An alias that is a link to the version, and a model file that is a link to a shared copy.
    shared = tmp_path / "shared-weights.txt"
    shared.write_text("weights-v1")
    (artifact / "model.txt").unlink()
    (artifact / "model.txt").symlink_to(shared)
    (tmp_path / "production").symlink_to(artifact, target_is_directory=True)

    out, _ = write_model_tarball(tmp_path / "production", tmp_path / "model.tar.gz")

    found = members(out)
    assert all(m.isfile() or m.isdir() for m in found.values())
    assert found["model.txt"].size == len("weights-v1")
    assert out.read_bytes() == reference.read_bytes()


def test_package_refuses_what_is_not_an_artifact(
    publish: Callable[..., Path], tmp_path: Path
) -> None:
    out = tmp_path / "model.tar.gz"
    (tmp_path / "empty").mkdir()
    (tmp_path / "file.txt").write_text("x")
    corrupted = publish()
    (corrupted / "model.txt").write_text("edited")

    with pytest.raises(ArtifactError, match=r"empty: no manifest.json; not an artifact directory"):
        write_model_tarball(tmp_path / "empty", out)
    with pytest.raises(ArtifactError, match=r"file.txt: not a directory"):
        write_model_tarball(tmp_path / "file.txt", out)
    with pytest.raises(ArtifactError, match=r"corrupted: model.txt does not match its checksum"):
        write_model_tarball(corrupted, out)
    with pytest.raises(ArtifactError, match=r"holds a 'toy' model, not a 'churn' one"):
        write_model_tarball(publish(), out, project="churn")
    assert list(tmp_path.glob("*.tar.gz")) == []


def test_package_leaves_out_files_the_manifest_does_not_list(
    publish: Callable[..., Path], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    artifact = publish()
    (artifact / "notes.txt").write_text("added by hand after publishing")

    out, _ = write_model_tarball(artifact, tmp_path / "model.tar.gz")

    assert "notes.txt" not in members(out)
    assert "left out, not in manifest.json: notes.txt" in caplog.text


def test_package_refuses_a_manifest_naming_a_file_outside_the_artifact(
    publish: Callable[..., Path], tmp_path: Path
) -> None:
    artifact = publish()
    (artifact.parent / "evil.txt").write_text("x")
    manifest = json.loads((artifact / MANIFEST).read_text())
    manifest["files"]["../evil.txt"] = sha256_file(artifact.parent / "evil.txt")
    (artifact / MANIFEST).write_text(json.dumps(manifest))
    (artifact / MANIFEST_SHA).write_text(sha256_file(artifact / MANIFEST) + "\n")

    with pytest.raises(ArtifactError, match=r"unsafe file name '../evil.txt'"):
        write_model_tarball(artifact, tmp_path / "model.tar.gz")


def test_read_tarball_manifest(publish: Callable[..., Path], tmp_path: Path) -> None:
    tarball, manifest = write_model_tarball(publish(), tmp_path / "model.tar.gz")
    (tmp_path / "not.tar.gz").write_bytes(b"not gzip")
    no_manifest = tmp_path / "no-manifest.tar.gz"
    with tarfile.open(no_manifest, "w:gz") as tar:
        tar.addfile(tarfile.TarInfo("model/x.txt"), io.BytesIO(b""))

    assert read_tarball_manifest(tarball, project="toy") == manifest
    with pytest.raises(ArtifactError, match=r"not.tar.gz: not a gzipped tarball"):
        read_tarball_manifest(tmp_path / "not.tar.gz")
    with pytest.raises(ArtifactError, match=r"no manifest.json at the archive's root"):
        read_tarball_manifest(no_manifest)
    with pytest.raises(ArtifactError, match=r"holds a 'toy' model, not a 'vision' one"):
        read_tarball_manifest(tarball, project="vision")


def test_cli_package_prints_the_tarball_path(publish: Callable[..., Path], tmp_path: Path) -> None:
    out = tmp_path / "model.tar.gz"

    result = runner.invoke(app, ["sagemaker", "package", str(publish()), "--out", str(out)])

    assert result.exit_code == 0, result.output
    assert result.stdout == f"{out.resolve()}\n"
    assert MANIFEST in members(out)


def test_cli_package_resolves_an_alias_in_the_project_store(
    settings: Settings, tmp_path: Path
) -> None:
    store = ArtifactStore(settings.artifacts_root, "churn")
    with store.create() as draft:
        (draft.path / "model.json").write_text("{}")
    out = tmp_path / "model.tar.gz"

    result = runner.invoke(
        app, ["sagemaker", "package", "latest", "--project", "churn", "--out", str(out)]
    )
    wrong = runner.invoke(app, ["sagemaker", "package", "latest", "--project", "vision"])

    assert result.exit_code == 0, result.output
    assert read_tarball_manifest(out).version == draft.version
    assert wrong.exit_code == 2
    assert "error: vision: no artifact 'latest'" in wrong.stderr


def test_cli_path_names_the_model_a_service_would_load(settings: Settings) -> None:
    store = ArtifactStore(settings.artifacts_root, "churn")
    for _ in range(2):
        with store.create() as draft:
            (draft.path / "model.json").write_text("{}")
    first, latest = store.versions()
    store.set_alias("production", first)

    serving = runner.invoke(app, ["path", "churn"])
    named = runner.invoke(app, ["path", "churn", latest])
    missing = runner.invoke(app, ["path", "vision"])

    assert serving.stdout.strip() == str((store.project_dir / first).resolve())  # production
    assert named.stdout.strip() == str((store.project_dir / latest).resolve())
    assert missing.exit_code == 2 and "no artifact 'latest'" in missing.stderr


def test_cli_package_refuses_a_non_artifact_cleanly(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["sagemaker", "package", str(tmp_path), "--out", str(tmp_path / "m.tar.gz")]
    )

    assert result.exit_code == 2
    assert result.stderr == f"error: {tmp_path}: no manifest.json; not an artifact directory\n"
    assert "Traceback" not in result.output
    assert not (tmp_path / "m.tar.gz").exists()


# -- SageMaker (moto) --------------------------------------------------------------------------


def test_deploy_creates_model_config_and_endpoint(sm: Any) -> None:
    done = deploy(sm, spec(), now=T1)

    assert done == Deployment("toy", "toy-20250102-030405", "toy-20250102-030405", created=True)
    model = sm.describe_model(ModelName=done.model)
    assert model["PrimaryContainer"] == {
        "Image": IMAGE,
        "ModelDataUrl": f"s3://{BUCKET}/toy/v1/model.tar.gz",
        "Environment": {"MLP_SERVE_LOG_LEVEL": "DEBUG"},
    }
    assert model["ExecutionRoleArn"] == ROLE
    tags = sm.list_tags(ResourceArn=model["ModelArn"])["Tags"]
    assert {"Key": "ml-portfolio:version", "Value": "v1"} in tags
    (variant,) = sm.describe_endpoint_config(EndpointConfigName=done.endpoint_config)[
        "ProductionVariants"
    ]
    assert variant["ModelName"] == done.model
    assert (variant["InstanceType"], variant["InitialInstanceCount"]) == ("ml.c5.xlarge", 2)
    endpoint = sm.describe_endpoint(EndpointName="toy")
    assert endpoint["EndpointConfigName"] == done.endpoint_config
    assert endpoint["EndpointStatus"] == "InService"


def test_redeploy_updates_the_endpoint_to_a_new_model_and_config(sm: Any) -> None:
    first = deploy(sm, spec(), now=T1)
    arn = sm.describe_endpoint(EndpointName="toy")["EndpointArn"]

    second = deploy(sm, spec(model_data=f"s3://{BUCKET}/toy/v2/model.tar.gz"), now=T2)

    assert second == Deployment("toy", "toy-20250102-040000", "toy-20250102-040000", False)
    endpoint = sm.describe_endpoint(EndpointName="toy")
    assert (endpoint["EndpointArn"], endpoint["EndpointConfigName"]) == (arn, second.model)
    models = {m["ModelName"] for m in sm.list_models()["Models"]}
    assert models == {first.model, second.model}  # the old one stays, for a rollback
    assert sm.describe_model(ModelName=second.model)["PrimaryContainer"]["ModelDataUrl"] == (
        f"s3://{BUCKET}/toy/v2/model.tar.gz"
    )
    wait_in_service(sm, second, delay=1, max_attempts=2)


def test_wait_refuses_an_endpoint_left_on_another_config(sm: Any) -> None:
    done = deploy(sm, spec(), now=T1)
    rolled_back = Deployment("toy", "toy-new", "toy-new", created=False)

    wait_in_service(sm, done, delay=1, max_attempts=2)
    with pytest.raises(DeployError, match=r"on config 'toy-20250102-030405'.*'toy-new' failed"):
        wait_in_service(sm, rolled_back, delay=1, max_attempts=2)
    with pytest.raises(DeployError, match=r"endpoint 'gone' did not come into service"):
        wait_in_service(sm, Deployment("gone", "x", "x", True), delay=1, max_attempts=2)


@pytest.mark.parametrize("name", ["has_underscore", "-leading", "trailing-", "x" * 48])
def test_bad_names_are_refused_before_anything_is_created(sm: Any, name: str) -> None:
    with pytest.raises(DeployError, match=r"letters, digits and hyphens.*at most 47"):
        deploy(sm, spec(name=name), now=T1)
    assert sm.list_models()["Models"] == []
    check_name("x" * 47)  # NAME-YYYYmmdd-HHMMSS: 63 characters, SageMaker's maximum


def test_upload_puts_the_tarball_at_the_key(
    s3: Any, bucket: str, publish: Callable[..., Path], tmp_path: Path
) -> None:
    tarball, _ = write_model_tarball(publish(), tmp_path / "model.tar.gz")
    url = f"s3://{bucket}/toy/v1/model.tar.gz"

    assert upload_model(s3, tarball, url) == url
    body = s3.get_object(Bucket=bucket, Key="toy/v1/model.tar.gz")["Body"].read()
    assert hashlib.sha256(body).hexdigest() == sha256_file(tarball)
    check_model_data(s3, url)  # there now
    with pytest.raises(DeployError, match=r"s3://models/toy/v2/model.tar.gz: no such object"):
        check_model_data(s3, f"s3://{bucket}/toy/v2/model.tar.gz")


def test_aws_failures_name_what_was_being_done(s3: Any, tmp_path: Path) -> None:
    (tmp_path / "model.tar.gz").write_bytes(b"x")

    with pytest.raises(DeployError) as raised:
        upload_model(s3, tmp_path / "model.tar.gz", "s3://missing/k/model.tar.gz")
    assert str(raised.value) == (
        f"uploading {tmp_path / 'model.tar.gz'} to s3://missing/k/model.tar.gz failed: "
        "The specified bucket does not exist (NoSuchBucket)"
    )
    sm = boto3.client("sagemaker", region_name=REGION)
    with (
        pytest.raises(DeployError, match=r"^describing a model failed: Could not find model"),
        aws_errors("describing a model"),
    ):
        sm.describe_model(ModelName="missing")


# -- the deploy command ------------------------------------------------------------------------


def deploy_args(*extra: str) -> list[str]:
    return ["sagemaker", "deploy", "--name", "toy", "--image", IMAGE, "--role", ROLE, *extra]


def test_cli_deploy_uploads_creates_and_waits(
    sm: Any, s3: Any, bucket: str, publish: Callable[..., Path]
) -> None:
    artifact = publish()
    version = read_manifest(artifact).version
    url = f"s3://{bucket}/toy/{version}/model.tar.gz"

    result = runner.invoke(
        app,
        deploy_args("--upload", str(artifact), "--bucket", bucket, "--env", "A=1=2", "--wait"),
    )

    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == f"uploaded: {url}"
    assert lines[1].startswith("model: toy-") and lines[1].endswith(f"({IMAGE})")
    assert lines[2].startswith("endpoint config: toy-") and lines[2].endswith("(1 x ml.m5.large)")
    assert lines[3:] == ["endpoint: toy (creating)", "endpoint: toy (in service)"]
    model = sm.describe_model(ModelName=lines[1].split()[1])
    assert model["PrimaryContainer"]["ModelDataUrl"] == url
    assert model["PrimaryContainer"]["Environment"] == {"A": "1=2"}
    assert {"Key": "ml-portfolio:version", "Value": version} in sm.list_tags(
        ResourceArn=model["ModelArn"]
    )["Tags"]
    body = s3.get_object(Bucket=bucket, Key=f"toy/{version}/model.tar.gz")["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(body), mode="r:gz") as tar:
        assert MANIFEST in tar.getnames()


def test_cli_deploy_uploads_a_packed_tarball_and_updates_the_endpoint(
    sm: Any, bucket: str, publish: Callable[..., Path], tmp_path: Path
) -> None:
    deploy(sm, spec(), now=T1)
    tarball, manifest = write_model_tarball(publish(), tmp_path / "model.tar.gz")

    result = runner.invoke(app, deploy_args("--upload", str(tarball), "--bucket", bucket))

    assert result.exit_code == 0, result.output
    assert f"uploaded: s3://{bucket}/toy/{manifest.version}/model.tar.gz" in result.stdout
    config = sm.describe_endpoint(EndpointName="toy")["EndpointConfigName"]
    assert config != "toy-20250102-030405"
    assert f"endpoint: toy (updating to {config})" in result.stdout


def test_cli_missing_bucket_is_a_clean_error(sm: Any, publish: Callable[..., Path]) -> None:
    result = runner.invoke(app, deploy_args("--upload", str(publish()), "--bucket", "missing"))

    assert result.exit_code == 2
    error = result.stderr.splitlines()[-1]  # after the log of the packing
    assert error.startswith("error: uploading ")
    assert error.endswith("failed: The specified bucket does not exist (NoSuchBucket)")
    assert "Traceback" not in result.output
    assert sm.list_models()["Models"] == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "which model? Give --model-data s3://..."),
        (("--upload", "x"), "--upload needs --bucket"),
        (("--model-data", "s3://b/k", "--bucket", "b"), "--bucket is where --upload puts"),
        (("--model-data", "models/k"), "'models/k' is not an S3 object URL"),
        (("--model-data", "s3://models/k", "--env", "NOVALUE"), "--env 'NOVALUE': expected"),
        (("--model-data", "s3://models/missing"), "s3://models/missing: no such object in S3"),
        (("--upload", "nowhere", "--bucket", "models"), "nowhere: no such directory"),
    ],
)
def test_cli_deploy_option_errors(
    sm: Any, bucket: str, args: tuple[str, ...], message: str
) -> None:
    result = runner.invoke(app, deploy_args(*args))

    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("error: ") and message in result.stderr
    assert "Traceback" not in result.output
    assert sm.list_models()["Models"] == []


def test_cli_deploy_without_a_region_says_how_to_give_one(
    aws: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_DEFAULT_REGION")

    result = runner.invoke(app, deploy_args("--model-data", "s3://models/k"))

    assert result.exit_code == 2
    assert "error: connecting to AWS failed: You must specify a region." in result.stderr
    assert "--region" in result.stderr
