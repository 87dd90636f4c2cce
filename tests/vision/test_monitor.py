"""The vision monitor: the reference profile training stores, a monitoring run over a batch like
the training images and over a shifted one (darker, flatter, larger: drift and alerts), and the
batches it must refuse or count (unknown class folders, no images, undecodable files).

Runs use the session's tiny model, copied into each test's store, and `sinks=[]`: alerts are
evaluated and reported, never posted anywhere.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from common.artifacts import ArtifactStore, read_manifest
from common.errors import UserError
from common.monitoring.profile import ReferenceProfile
from vision.data import write_shapes
from vision.images import STAT_NAMES, Preprocessing
from vision.monitor import LOW_CONFIDENCE, WATCHED, monitor, reference_profile, shift_images

from .conftest import CLASSES


@pytest.fixture
def published(settings, vision_artifact: Path) -> Path:
    store = ArtifactStore(settings.artifacts_root, "vision")
    target = shutil.copytree(vision_artifact, store.project_dir / vision_artifact.name)
    store.set_alias("latest", vision_artifact.name)
    return Path(target)


@pytest.fixture(scope="module")
def batches(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """New images drawn like the training set (another seed), and the same ones shifted."""
    root = tmp_path_factory.mktemp("vision-batches")
    same = write_shapes(root / "same", per_class=12, size=48, seed=101, classes=CLASSES)
    return {"same": same, "shifted": shift_images(same, root / "shifted", strength=1.0)}


def run(folder: Path, settings, labels: bool = True):
    return monitor(folder, with_labels=labels, settings=settings, sinks=[])


def test_training_stores_a_reference_profile(vision_artifact: Path) -> None:
    profile = ReferenceProfile.load(vision_artifact)
    assert profile is not None
    assert set(profile.features) == set(WATCHED) == {*STAT_NAMES, "predicted_class"}
    assert profile.features["predicted_class"].kind == "category"
    assert set(profile.features["predicted_class"].shares) <= set(CLASSES)
    manifest = read_manifest(vision_artifact)
    n_train = sum(manifest.extra["counts"]["train"].values())
    for name in STAT_NAMES:
        stats = profile.features[name]
        assert stats.kind == "numeric" and stats.count == n_train, name
    assert profile.features["width"].min == profile.features["width"].max == 48  # as stored
    assert 0 < profile.features["brightness"].mean < 1
    assert profile.score_name == "confidence" and profile.score_histogram is not None
    # The yardstick is validation's: the accuracy the manifest reports.
    assert profile.performance["accuracy"] == pytest.approx(manifest.metric("val.accuracy"))
    assert 0 <= profile.performance["confidence.low_rate"] <= 1
    assert 0 < profile.performance["confidence.mean"] <= 1


def test_reference_profile_of_known_answers(shapes_dir: Path) -> None:
    images = sorted(shapes_dir.rglob("*.png"))[:10]
    prep = Preprocessing.for_size(32, list(CLASSES))
    probabilities = np.array([[0.9, 0.05, 0.05], [0.2, 0.7, 0.1], [0.3, 0.3, 0.4], [0.1, 0.1, 0.8]])
    labels = np.array([0, 1, 1, 2])
    profile = reference_profile(images, prep, probabilities, labels)
    assert profile.features["brightness"].count == 10  # the images...
    assert profile.features["predicted_class"].shares == pytest.approx(  # ...and the answers
        {"circle": 0.25, "square": 0.25, "triangle": 0.5}
    )
    assert profile.performance == pytest.approx({
        "accuracy": 0.75,
        "confidence.mean": (0.9 + 0.7 + 0.4 + 0.8) / 4,
        "confidence.low_rate": 0.25,  # 0.4 < LOW_CONFIDENCE
    })  # fmt: skip
    assert LOW_CONFIDENCE == 0.5


def test_a_batch_like_training_gets_a_report_and_every_metric(
    settings, published: Path, batches
) -> None:
    result = run(batches["same"], settings)
    assert result.rows == 36
    assert result.report_dir == settings.monitoring_root / "vision" / "runs" / result.run_id
    assert (result.report_dir / "report.html").stat().st_size > 0
    summary = json.loads((result.report_dir / "report.json").read_text())
    assert summary["context"]["model"] == published.name
    assert summary["rows"] == 36
    metrics = summary["metrics"]
    for name in ("confidence.mean", "confidence.low_rate", "confidence.low_rate_increase",
                 "confidence.mean_drop", "performance.accuracy", "performance.accuracy_drop",
                 "data.unreadable_rate", "drift.share_drifted"):  # fmt: skip
        assert name in metrics and np.isfinite(metrics[name]), name
    assert 0 <= metrics["performance.accuracy"] <= 1 and metrics["data.unreadable_rate"] == 0
    profile = ReferenceProfile.load(published)
    assert metrics["confidence.low_rate_increase"] == pytest.approx(
        metrics["confidence.low_rate"] - profile.performance["confidence.low_rate"]
    )
    assert metrics["performance.accuracy_drop"] == pytest.approx(
        profile.performance["accuracy"] - metrics["performance.accuracy"]
    )
    assert {f["feature"] for f in summary["drift"]["features"]} == set(WATCHED)
    assert not {"width", "height", "aspect"} & set(result.drift.drifted)  # same camera
    assert not (settings.monitoring_root / "vision" / "alerts.jsonl").exists()  # nothing posted


def test_without_labels_there_is_no_accuracy(settings, published: Path, batches) -> None:
    result = run(batches["same"], settings, labels=False)
    assert "performance.accuracy" not in result.metrics
    assert "confidence.low_rate" in result.metrics


def test_a_shifted_batch_is_flagged(settings, published: Path, batches) -> None:
    same = run(batches["same"], settings)
    shifted = run(batches["shifted"], settings)
    assert {"brightness", "contrast", "saturation"} <= set(shifted.drift.drifted)
    assert shifted.metrics["drift.share_drifted"] >= 0.5
    assert shifted.metrics["drift.share_drifted"] > same.metrics["drift.share_drifted"]
    assert "image-drift" in {a.rule for a in shifted.alerts if a.status == "firing"}
    for name in ("confidence.low_rate", "confidence.low_rate_increase", "performance.accuracy"):
        assert name in shifted.metrics, name
    summary = json.loads((shifted.report_dir / "report.json").read_text())
    assert "image-drift" in summary["open_alerts"]


def test_larger_images_from_a_new_camera_are_flagged(settings, published: Path, batches) -> None:
    shifted = run(batches["shifted"], settings)  # 96x77 images; training's were 48x48
    assert {"width", "height", "aspect"} <= set(shifted.drift.drifted)


def test_an_unknown_class_folder_is_refused_naming_it(
    settings, published: Path, batches, tmp_path: Path
) -> None:
    batch = tmp_path / "batch"
    shutil.copytree(batches["same"] / "circle", batch / "circle")
    shutil.copytree(batches["same"] / "square", batch / "hexagon")
    with pytest.raises(UserError, match="hexagon is not one of the model's classes"):
        run(batch, settings)
    assert not (settings.monitoring_root / "vision" / "runs").exists()
    run(batch, settings, labels=False)  # without --labels, folder names do not matter


@pytest.mark.parametrize("content", [{}, {"README.txt": b"notes"}], ids=["empty", "no images"])
def test_a_folder_without_images_is_refused(
    settings, published: Path, tmp_path: Path, content: dict[str, bytes]
) -> None:
    batch = tmp_path / "batch"
    batch.mkdir()
    for name, data in content.items():
        (batch / name).write_bytes(data)
    with pytest.raises(UserError, match="holds no images"):
        run(batch, settings)


def test_undecodable_files_are_counted_not_fatal(
    settings, published: Path, batches, tmp_path: Path
) -> None:
    batch = shutil.copytree(batches["same"], tmp_path / "batch")
    (batch / "circle" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    (batch / "square" / "empty.jpg").write_bytes(b"")
    result = run(batch, settings)
    assert result.rows == 36  # the 36 good images were predicted
    assert result.metrics["data.unreadable_rate"] == pytest.approx(2 / 38)
    assert 0 <= result.metrics["performance.accuracy"] <= 1


def test_a_batch_of_only_undecodable_files_is_refused(
    settings, published: Path, tmp_path: Path
) -> None:
    batch = tmp_path / "batch"
    batch.mkdir()
    (batch / "a.png").write_bytes(b"garbage")
    with pytest.raises(UserError, match="none of the 1 images"):
        run(batch, settings, labels=False)


def test_without_a_model_monitoring_is_an_artifact_error(settings, batches) -> None:
    from common.errors import ArtifactError

    with pytest.raises(ArtifactError, match="train a model first"):
        run(batches["same"], settings)


def test_shift_images_darkens_flattens_and_enlarges(batches) -> None:
    from PIL import Image, ImageStat

    source = sorted(batches["same"].rglob("*.png"))[0]
    target = batches["shifted"] / source.relative_to(batches["same"])
    with Image.open(source) as a, Image.open(target) as b:
        assert b.size == (96, 77)  # 2x larger, and less tall than wide
        before, after = ImageStat.Stat(a.convert("L")), ImageStat.Stat(b.convert("L"))
    assert after.mean[0] < 0.7 * before.mean[0]
    assert after.stddev[0] < before.stddev[0]
    assert len(list(batches["shifted"].rglob("*.*"))) == 36
