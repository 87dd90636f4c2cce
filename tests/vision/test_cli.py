"""The vision command line and the bad inputs a user can give it: each gives exit code 2 and a
message naming the problem (and how to go on), with no traceback, and leaves the store as it
was.
"""

from __future__ import annotations

import shutil
import urllib.error
from pathlib import Path

import pytest
import torch
from PIL import Image
from torchvision.models import get_model_weights
from typer.testing import CliRunner

from common.artifacts import ArtifactStore, read_manifest
from vision import train
from vision.__main__ import app
from vision.data import SHAPES

from .conftest import CLASSES

runner = CliRunner()


def invoke(*args: object):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture
def store(settings) -> ArtifactStore:
    return ArtifactStore(settings.artifacts_root, "vision")


@pytest.fixture
def published(store: ArtifactStore, vision_artifact: Path) -> Path:
    """A copy of the session's model in this test's store, aliased `latest`."""
    target = shutil.copytree(vision_artifact, store.project_dir / vision_artifact.name)
    store.set_alias("latest", vision_artifact.name)
    return Path(target)


def snapshot(store: ArtifactStore) -> tuple:
    """Everything a failed command must leave as it was."""
    files = sorted(str(p.relative_to(store.root)) for p in store.root.rglob("*"))
    return store.versions(), store.aliases(), files if store.root.exists() else []


def test_data_writes_class_folders(tmp_path: Path, settings) -> None:
    out = tmp_path / "shapes"
    result = invoke("data", "--out", out, "--per-class", 4, "--size", 32)
    assert result.exit_code == 0, result.output
    assert Path(result.stdout.strip()) == out
    assert sorted(p.name for p in out.iterdir()) == sorted(SHAPES)
    for folder in out.iterdir():
        images = sorted(folder.iterdir())
        assert len(images) == 4, folder
        with Image.open(images[0]) as image:
            assert image.size == (32, 32)


def test_data_with_a_shift_writes_drifted_images(tmp_path: Path, settings) -> None:
    out = tmp_path / "shifted"
    result = invoke("data", "--out", out, "--per-class", 2, "--size", 32, "--shift", 1.0)
    assert result.exit_code == 0, result.output
    assert Path(result.stdout.strip()) == out
    with Image.open(next(out.glob("circle/*"))) as image:
        assert image.size == (64, 51)  # larger, and wider than tall


def test_data_refuses_to_overwrite_a_folder(tmp_path: Path, settings) -> None:
    out = tmp_path / "shapes"
    out.mkdir()
    (out / "mine.txt").write_text("keep me")
    result = invoke("data", "--out", out, "--per-class", 2, "--size", 32)
    assert result.exit_code == 2 and "already exists and is not empty" in result.stderr
    assert [p.name for p in out.iterdir()] == ["mine.txt"]


def test_train_offline_with_default_weights_says_how_to_go_on(
    shapes_dir: Path, store: ArtifactStore, published: Path, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))  # an empty cache

    def no_network(url: str, *args: object, **kwargs: object) -> None:
        raise urllib.error.URLError("offline")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    before = snapshot(store)
    result = invoke("train", "--data", shapes_dir, "--weights", "DEFAULT")
    assert result.exit_code == 2, result.output
    assert "\nerror: " in "\n" + result.stderr and "Traceback" not in result.output
    assert get_model_weights("mobilenet_v3_small").DEFAULT.url in result.stderr
    assert "--weights none" in result.stderr and "--weights PATH" in result.stderr
    # No artifact directory printed. (torch.hub's "Downloading: ..." line does land on stdout:
    # see test_model.py::test_a_first_download_writes_nothing_on_stdout.)
    assert str(store.root) not in result.stdout
    assert snapshot(store) == before


def test_train_on_a_missing_folder_names_it(tmp_path: Path, settings) -> None:
    missing = tmp_path / "no-such-photos"
    result = invoke("train", "--data", missing, "--weights", "none")
    assert result.exit_code == 2
    assert str(missing) in result.stderr and "no such directory" in result.stderr


def test_train_with_an_unknown_backbone_is_explained(shapes_dir: Path, settings) -> None:
    result = invoke("train", "--data", shapes_dir, "--weights", "none", "--backbone", "vgg11")
    assert result.exit_code == 2
    assert "invalid settings or options: backbone" in result.stderr


def test_train_on_an_absent_device_is_a_user_error(
    shapes_dir: Path, store: ArtifactStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    args = ("--data", shapes_dir, "--weights", "none", "--image-size", 32, "--device", "cuda")
    result = invoke("train", *args)
    assert result.exit_code == 2 and "device 'cuda' is not available here" in result.stderr
    assert store.versions() == []


def test_train_resume_without_a_checkpoint_is_a_user_error(
    shapes_dir: Path, store: ArtifactStore
) -> None:
    args = ("--data", shapes_dir, "--weights", "none", "--image-size", 32, "--resume")
    result = invoke("train", *args)
    assert result.exit_code == 2 and "no checkpoint to resume from" in result.stderr
    assert store.versions() == []


def test_train_prints_only_the_artifact_directory(
    shapes_dir: Path, store: ArtifactStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    def export(net, example, path: Path) -> Path:  # the real export is tested elsewhere
        path.write_bytes(b"not exported in this test")
        return path

    monkeypatch.setattr(train, "export_onnx", export)
    monkeypatch.setattr(train, "check_parity", lambda net, path, images: 0.0)
    args = ("--weights", "none", "--image-size", 32, "--epochs", 1, "--batch-size", 16)
    result = invoke("train", "--data", shapes_dir, *args, "--seed", 11)
    assert result.exit_code == 0, result.output
    [line] = result.stdout.splitlines()
    path = Path(line)
    assert store.resolve("latest") == path
    manifest = read_manifest(path)
    assert manifest.seed == 11 and manifest.config["finetune_epochs"] == 1
    assert manifest.extra["classes"] == list(CLASSES)


def test_promote_passes_and_fails_the_gate(published: Path, store: ArtifactStore) -> None:
    accuracy = read_manifest(published).metric("val.accuracy")
    too_high = round(accuracy + 0.01, 3)
    result = invoke("promote", "latest", "--min-accuracy", too_high)
    assert result.exit_code == 2
    assert "not promoted" in result.stderr and f"< {too_high}" in result.stderr
    assert "production" not in store.aliases()

    result = invoke("promote", "latest", "--min-accuracy", 0.0)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"production -> {published.name} (val accuracy")
    assert store.aliases()["production"] == published.name


def test_promote_without_a_model(settings) -> None:
    result = invoke("promote", "latest")
    assert result.exit_code == 2 and "train a model first" in result.stderr


def test_monitor_on_a_missing_folder_names_it(published: Path, tmp_path: Path, settings) -> None:
    missing = tmp_path / "no-such-batch"
    result = invoke("monitor", "--current", missing)
    assert result.exit_code == 2
    assert str(missing) in result.stderr and "not a folder of images" in result.stderr
    assert not (settings.monitoring_root / "vision").exists()


def test_monitor_prints_the_report(published: Path, shapes_dir: Path, settings) -> None:
    result = invoke("monitor", "--current", shapes_dir, "--labels")
    assert result.exit_code in (0, 3), result.output  # 3: a critical alert is open
    report = Path(result.stdout.strip())
    assert report.name == "report.html" and report.is_file()
    assert (report.parent / "report.json").is_file()
    assert report.parent.parent == settings.monitoring_root / "vision" / "runs"
