"""The vision dashboard in a real browser, talking to the real API, as a user would reach it.

Starts the vision API (`python -m vision serve`) and `streamlit run vision/dashboard/app.py` as
subprocesses on free local ports, opens the Predict page in headless Chromium (Debian's
`/usr/bin/chromium`, driven by Playwright), uploads a PNG through the page's file input and
checks that the API's answer is on the page. The screenshot is kept as a test artifact: under
`$TEST_ARTIFACTS_DIR` if set, else the test's tmp_path; its path is printed (`pytest -rP`).

Skipped when Chromium or the playwright package is missing. Never run `playwright install`:
it downloads its own browser, which this project does not use.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

import httpx
import numpy as np
import pytest

from vision.shapes import render

# The harness (subprocesses on free ports, Chromium, skips) is in tests/conftest.py.
pytestmark = pytest.mark.browser


@pytest.fixture
def square_png(tmp_path: Path) -> Path:
    """A rendered square, 96 px, as the built-in data draws it."""
    path = tmp_path / "square.png"
    buffer = io.BytesIO()
    render("square", 96, np.random.default_rng(5)).save(buffer, format="PNG")
    path.write_bytes(buffer.getvalue())
    return path


@pytest.mark.timeout(300)
def test_predict_page_shows_the_apis_answer_for_an_upload(
    chromium, start_services, screenshots: Path, square_png: Path, vision_artifact: Path
) -> None:
    from playwright.sync_api import expect

    services = start_services("vision", vision_artifact, wait_for_api=False)
    screenshot = screenshots / "vision-dashboard-predict.png"
    page = chromium.new_page(viewport={"width": 1400, "height": 1100})
    # Predict is the default page. Its first run imports torch (seconds) while the API
    # loads the model: the two overlap rather than add up.
    page.goto(services.dashboard, timeout=60_000)
    uploader = page.locator("input[type=file]")
    uploader.wait_for(state="attached", timeout=60_000)
    services.wait_for_api()
    files = {"file": (square_png.name, square_png.read_bytes(), "image/png")}
    answer = httpx.post(f"{services.api}/predict", files=files, timeout=30).json()

    uploader.set_input_files(square_png, timeout=30_000)
    prediction = page.get_by_test_id("stMetric").filter(has_text="Prediction")
    expect(prediction).to_be_visible(timeout=30_000)
    label = prediction.get_by_test_id("stMetricValue").inner_text()
    confidence = (
        page.get_by_test_id("stMetric")
        .filter(has_text="Confidence")
        .get_by_test_id("stMetricValue")
        .inner_text()
    )
    # The picture, its Grad-CAM overlay and the bars drawn before the picture is taken.
    expect(page.get_by_test_id("stImage")).to_have_count(2, timeout=10_000)
    page.get_by_test_id("stVegaLiteChart").wait_for(timeout=10_000)
    page.wait_for_timeout(1000)
    page.screenshot(path=str(screenshot), full_page=True)

    print(f"screenshot: {screenshot}")
    assert label == answer["label"]
    assert re.fullmatch(r"\d{1,3}\.\d%", confidence), confidence
    assert confidence == f"{answer['confidence']:.1%}"
    assert screenshot.stat().st_size > 10_000
