"""The vision dashboard, page by page, through Streamlit's AppTest (no browser).

Each test runs the real entry point (`vision/dashboard/app.py`) and reaches a page the way
Streamlit does, with `AppTest.switch_page`, against the session's tiny trained model
(`MODEL_DIR`). Predictions are made in-process, or, with `API_URL` set, by the real vision API
served from a thread on a free local port, so the multipart upload (`post_files`) is exercised
end to end. The mistakes page is also shown copies of the artifact whose `mistakes.json` was
rewritten (and the artifact's checksums with it): images moved away, none at all, no file.
The pure functions behind the pages are checked directly.
"""

from __future__ import annotations

import base64
import io
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest
from streamlit.testing.v1.element_tree import Element

from common.artifacts import MANIFEST, MANIFEST_SHA, read_manifest, sha256_file
from common.dashboard import ApiCallError, post_files
from common.errors import InputError
from common.settings import Settings
from tests.conftest import assert_says_how_to_train
from vision.dashboard import mistakes as mistakes_page
from vision.dashboard import predict
from vision.images import decode
from vision.serve import ImagePrediction, VisionPredictor
from vision.shapes import SHAPES, render

APP = Path(__file__).parents[2] / "vision" / "dashboard" / "app.py"
# Loading the model on a cold cache (ONNX session, engine timing), then predicting with Grad-CAM,
# takes a few seconds on a slow machine.
TIMEOUT_S = 60
MODEL_PAGES = ["predict.py", "report.py", "mistakes.py"]


def shape_png(shape: str = "square", size: int = 64, seed: int = 11) -> bytes:
    """A rendered shape as PNG bytes."""
    buffer = io.BytesIO()
    render(shape, size, np.random.default_rng(seed)).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def dashboard_model(vision_artifact: Path) -> tuple[type, Path]:
    """What `model_dir`, `dashboard_api` and `via_api` (tests/conftest.py) show and serve."""
    return VisionPredictor, vision_artifact


def open_page(page: str | None = None) -> AppTest:
    """The app after its first run, on `page` (a file beside app.py) or the default page."""
    at = AppTest.from_file(APP, default_timeout=TIMEOUT_S).run()
    if page is not None:
        at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def upload(at: AppTest, data: bytes, name: str = "picture.png") -> AppTest:
    at.file_uploader(key="predict.upload").upload(name, data, "image/png").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def chart_data(chart: Element) -> pd.DataFrame:
    """The data behind an Altair chart, as Streamlit sent it (Arrow IPC bytes)."""
    return pa.ipc.open_stream(chart.proto.datasets[0].data.data).read_pandas()


def metric(at: AppTest, label: str) -> str:
    """The displayed value of the metric whose label starts with `label`."""
    values = [m.value for m in at.metric if m.label.startswith(label)]
    assert values, f"no metric {label!r} in {[m.label for m in at.metric]}"
    return values[0]


def assert_shows(at: AppTest, expected: ImagePrediction) -> None:
    """The page shows `expected`: label, confidence, size and the top-k bars."""
    assert not at.error, [e.value for e in at.error]
    assert metric(at, "Prediction") == expected.label
    assert float(metric(at, "Confidence").rstrip("%")) == pytest.approx(
        100 * expected.confidence, abs=0.051
    )
    assert metric(at, "Image size") == f"{expected.width} x {expected.height} px"
    bars = chart_data(at.get("vega_lite_chart")[0])
    # Ties (an untrained model answers ~1/3 for everything) may order differently across
    # engines, so compare class by class.
    shown = dict(zip(bars["class"], bars["probability"], strict=True))
    assert shown == pytest.approx({s.label: s.probability for s in expected.top_k}, abs=1e-4)


# -- predict -----------------------------------------------------------------------------------


def test_predict_an_upload_in_process(model_dir: Path, vision_predictor: VisionPredictor) -> None:
    at = open_page()
    assert at.title[0].value == "Predict"
    assert not at.metric, "nothing is predicted before an image is chosen"
    data = shape_png("square")
    at = upload(at, data, "square.png")
    assert_shows(at, predict.predict_in_process(vision_predictor, data))
    assert len(at.get("image")) == 2, "the image and its Grad-CAM overlay"


def test_predict_follows_top_k_and_the_grad_cam_switch(model_dir: Path) -> None:
    at = upload(open_page(), shape_png("triangle"))
    at.checkbox(key="predict.gradcam").uncheck()
    at.number_input(key="predict.top_k").set_value(1).run()
    assert not at.exception, [e.value for e in at.exception]
    assert len(at.get("image")) == 1, "the image alone, without the overlay"
    assert len(chart_data(at.get("vega_lite_chart")[0])) == 1


def test_predict_an_example_without_a_file(
    model_dir: Path, vision_predictor: VisionPredictor
) -> None:
    at = open_page()
    examples = at.selectbox(key="predict.example")
    assert examples.options == [s for s in SHAPES if s in vision_predictor.classes]
    examples.set_value("circle").run()
    assert not at.exception, [e.value for e in at.exception]
    expected = predict.predict_in_process(vision_predictor, predict.example_png("circle"))
    assert_shows(at, expected)


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (b"just some text, no image", "not an image"),
        (shape_png()[:200], "truncated"),
        (b"", "empty file"),
    ],
    ids=["not-an-image", "truncated", "empty"],
)
def test_a_bad_file_shows_what_is_wrong_not_a_traceback(
    model_dir: Path, data: bytes, problem: str
) -> None:
    at = upload(open_page(), data, "broken.png")
    assert len(at.error) == 1
    assert at.error[0].value.startswith("Cannot classify broken.png:")
    assert problem in at.error[0].value
    assert not at.metric


def test_a_tiny_image_is_refused_as_too_small(model_dir: Path) -> None:
    tiny = io.BytesIO()
    Image.new("RGB", (4, 4)).save(tiny, format="PNG")
    at = upload(open_page(), tiny.getvalue(), "tiny.png")
    assert "image too small: 4x4 pixels" in at.error[0].value


def test_predict_through_the_api_matches_in_process(
    via_api: str, vision_predictor: VisionPredictor
) -> None:
    data = shape_png("circle", size=80)
    at = upload(open_page(), data, "circle.png")
    assert_shows(at, predict.predict_in_process(vision_predictor, data))
    assert len(at.get("image")) == 2
    assert any(via_api in c.value for c in at.sidebar.caption)


def test_a_bad_file_through_the_api_shows_its_error_and_detail(via_api: str) -> None:
    at = upload(open_page(), b"definitely not pixels", "notes.png")
    assert at.error[0].value.startswith("invalid request")
    assert "not an image" in at.error[0].value
    problems = at.dataframe[0].value
    assert problems["field"].tolist() == ["image"]
    assert not at.metric


def test_predict_with_an_unreachable_api_shows_an_error(
    model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("API_URL", "http://127.0.0.1:9")  # the discard port: nothing listens
    at = upload(open_page(), shape_png())
    assert "cannot reach the API at http://127.0.0.1:9/predict" in at.error[0].value
    assert not at.metric


def test_post_files_sends_the_options_as_form_fields(
    dashboard_api: str, vision_predictor: VisionPredictor
) -> None:
    data = shape_png("square")
    one = {"file": ("a.png", data, "image/png")}
    answer = post_files(dashboard_api, "/predict", one, {"top_k": 1, "gradcam": False})
    assert len(answer["top_k"]) == 1 and answer["gradcam_png"] is None
    several = post_files(
        dashboard_api,
        "/predict",
        [("files", ("a.png", data, "image/png")), ("files", ("b.png", data, "image/png"))],
        {"top_k": 2, "gradcam": None},  # None: left out, so the API's default (no Grad-CAM)
    )
    assert [len(a["top_k"]) for a in several] == [2, 2]
    assert several[0]["gradcam_png"] is None
    with pytest.raises(ApiCallError, match="no such endpoint"):
        post_files(dashboard_api, "/nowhere", one)


def test_the_prediction_functions(dashboard_api: str, vision_predictor: VisionPredictor) -> None:
    data = shape_png("triangle")
    local = predict.predict_in_process(vision_predictor, data, top_k=2, gradcam=True)
    remote = predict.predict_with_api(dashboard_api, data, "t.png", top_k=2, gradcam=True)
    assert remote.label == local.label and len(remote.top_k) == len(local.top_k) == 2
    assert remote.confidence == pytest.approx(local.confidence, abs=1e-4)
    overlay = Image.open(io.BytesIO(base64.b64decode(remote.gradcam_png)))
    assert overlay.size == (vision_predictor.prep.image_size,) * 2
    with pytest.raises(InputError, match="empty file"):
        predict.predict_in_process(vision_predictor, b"")
    with pytest.raises(ApiCallError, match="not an image"):
        predict.predict_with_api(dashboard_api, b"text", "t.png")


def test_examples_are_the_models_shapes_drawn_the_same_every_time() -> None:
    assert predict.example_names(["circle", "square", "cat"]) == ["circle", "square"]
    assert predict.example_names(None) == list(SHAPES)
    assert predict.example_names(["cat", "dog"]) == list(SHAPES)  # photos: shapes still decode
    png = predict.example_png("star")
    assert png == predict.example_png("star")
    assert tuple(decode(png).shape) == (3, predict.EXAMPLE_SIZE, predict.EXAMPLE_SIZE)
    assert predict.listed(["a", "b"]) == "a, b"
    assert predict.listed([str(i) for i in range(1000)], most=3) == "0, 1, 2 and 997 more"
    big = Image.new("RGB", (2000, 1000))
    buffer = io.BytesIO()
    big.save(buffer, format="JPEG")
    assert predict.shown_image(buffer.getvalue()).shape == (256, 512, 3)


# -- model report ------------------------------------------------------------------------------


def test_report_shows_the_metrics_per_class_plots_and_model_card(model_dir: Path) -> None:
    at = open_page("report.py")
    metrics = json.loads((model_dir / "metrics.json").read_text())
    assert at.title[0].value == "Model report"
    assert metric(at, "Accuracy") == f"{metrics['accuracy']:.1%}"
    assert metric(at, "Macro F1") == f"{metrics['macro_f1']:.3f}"
    assert metric(at, "ECE (calibrated)") == f"{metrics['ece']:.3f}"
    assert metric(at, "ECE before") == f"{metrics['ece_before_temperature']:.3f}"
    per_class, confusion = (d.value for d in at.dataframe)
    assert per_class["class"].tolist() == list(metrics["per_class"])
    assert per_class["f1"].tolist() == pytest.approx(
        [v["f1"] for v in metrics["per_class"].values()]
    )
    assert confusion.to_numpy().tolist() == metrics["confusion_matrix"]
    assert len(at.get("image")) == 3  # confusion, reliability, training curves
    version = read_manifest(model_dir).version
    assert any(f"# Model card: vision {version}" in m.value for m in at.markdown)


# -- mistakes ----------------------------------------------------------------------------------


def with_mistakes(artifact: Path, target: Path, rows: list[dict[str, Any]] | None) -> Path:
    """A copy of `artifact` at `target` whose mistakes.json holds `rows` (None: no file), its
    checksums updated so that it still loads, as if training had saved it so."""
    shutil.copytree(artifact, target)
    manifest = json.loads((target / MANIFEST).read_text())
    if rows is None:
        (target / mistakes_page.MISTAKES_FILE).unlink()
        del manifest["files"][mistakes_page.MISTAKES_FILE]
    else:
        (target / mistakes_page.MISTAKES_FILE).write_text(json.dumps(rows))
        manifest["files"][mistakes_page.MISTAKES_FILE] = sha256_file(
            target / mistakes_page.MISTAKES_FILE
        )
    (target / MANIFEST).write_text(json.dumps(manifest, indent=2))
    (target / MANIFEST_SHA).write_text(sha256_file(target / MANIFEST))
    return target


def mistake(path: Path, true: str = "square", predicted: str = "circle") -> dict[str, Any]:
    return {"path": str(path), "true": true, "predicted": predicted, "confidence": 0.91,
            "true_probability": 0.05}  # fmt: skip


def show_artifact(path: Path, monkeypatch: pytest.MonkeyPatch) -> AppTest:
    monkeypatch.setenv("MODEL_DIR", str(path))
    monkeypatch.delenv("API_URL", raising=False)
    return open_page("mistakes.py")


def test_mistakes_of_the_session_model(model_dir: Path) -> None:
    at = open_page("mistakes.py")
    saved = json.loads((model_dir / "mistakes.json").read_text())
    if not saved:  # a model that got every validation image right
        assert "No mistakes" in at.success[0].value
        return
    titles = [c.value for c in at.caption if c.value.startswith("**")]
    first = saved[0]
    assert f"{first['true']} → {first['predicted']} ({first['confidence']:.0%})" in titles[0]
    assert len(titles) == len(saved) and len(at.get("image")) == len(saved)
    assert not at.warning


def test_mistakes_gallery_says_which_files_are_missing(
    vision_artifact: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    present = tmp_path / "images" / "square_0001.png"
    present.parent.mkdir()
    present.write_bytes(shape_png("square"))
    gone = tmp_path / "moved" / "triangle_0002.png"
    rows = [mistake(present), mistake(gone, "triangle", "square")]
    at = show_artifact(with_mistakes(vision_artifact, tmp_path / "a", rows), monkeypatch)
    assert not at.error
    assert at.warning[0].value.startswith("1 of the 2 images cannot be read")
    assert str(gone) in at.warning[0].value
    captions = [c.value for c in at.caption]
    assert any("square → circle (91%)" in c for c in captions)
    assert any("triangle → square (91%)" in c for c in captions)
    assert any("file missing" in c for c in captions)
    assert len(at.get("image")) == 1
    assert at.dataframe[0].value["file"].tolist() == [str(present), str(gone)]


def test_mistakes_all_moved_shows_the_picture_saved_at_training(
    vision_artifact: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = [mistake(tmp_path / "moved" / f"x_{i}.png") for i in range(3)]
    at = show_artifact(with_mistakes(vision_artifact, tmp_path / "a", rows), monkeypatch)
    assert at.warning[0].value.startswith("None of the 3 images can be read")
    images = at.get("image")
    assert len(images) == 1  # plots/mistakes.png, not a gallery of blanks
    assert not any("file missing" in c.value for c in at.caption)


def test_mistakes_none_and_no_file(
    vision_artifact: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    at = show_artifact(with_mistakes(vision_artifact, tmp_path / "none", []), monkeypatch)
    assert at.success[0].value.startswith("No mistakes on the")
    at = show_artifact(with_mistakes(vision_artifact, tmp_path / "old", None), monkeypatch)
    assert "no `mistakes.json`" in at.info[0].value and "make train-vision" in at.info[0].value
    assert mistakes_page.read_mistakes(tmp_path / "old") is None
    assert mistakes_page.thumbnail(tmp_path / "nowhere.png") is None


def test_a_thumbnail_of_a_file_that_is_no_image_is_none(tmp_path: Path) -> None:
    (tmp_path / "text.png").write_text("not an image")
    assert mistakes_page.thumbnail(tmp_path / "text.png") is None


# -- monitoring --------------------------------------------------------------------------------


def test_monitoring_says_how_to_start_when_nothing_was_monitored(
    settings: Settings, model_dir: Path
) -> None:
    at = open_page("monitoring.py")
    assert at.title[0].value == "Monitoring"
    assert "make monitor-vision" in at.info[0].value
    assert str(settings.monitoring_root / "vision") in at.caption[0].value


# -- no model ----------------------------------------------------------------------------------


@pytest.mark.parametrize("page", MODEL_PAGES)
def test_without_a_model_every_page_says_how_to_train_one(
    page: str, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MODEL_DIR", raising=False)
    monkeypatch.delenv("API_URL", raising=False)
    at = open_page(None if page == "predict.py" else page)
    assert_says_how_to_train(at, "vision", settings)


def test_monitoring_shows_runs_of_the_vision_monitor(
    settings: Settings, model_dir: Path, shapes_dir: Path
) -> None:
    """The common page reads what `vision.monitor` writes (image statistics, not columns)."""
    from vision.monitor import monitor

    for _ in range(2):
        monitor(shapes_dir, with_labels=True, settings=settings, model=model_dir, sinks=[])
    at = open_page("monitoring.py")
    labels = {m.label: m.value for m in at.metric}
    assert labels["Runs"] == "2"
    features = set(at.multiselect[0].options)
    assert {"brightness", "predicted_class"} <= features
    assert at.get("vega_lite_chart"), "no drift chart"
