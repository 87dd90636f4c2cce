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

import importlib.util
import io
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest

from vision.shapes import render

ROOT = Path(__file__).parents[2]
CHROMIUM = Path("/usr/bin/chromium")
# Chromium in a container: no sandbox (no user namespaces), no GPU, nothing phoned home.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
START_TIMEOUT_S = 60
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"no Chromium at {CHROMIUM}"),
    pytest.mark.skipif(
        importlib.util.find_spec("playwright") is None,
        reason="the playwright package is not installed (pip install playwright)",
    ),
]


def free_port() -> int:
    """A port nothing listens on now (bind to 0 and read it back)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start(args: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """A subprocess in the repository root, its output in `log` (a pipe nobody reads could
    fill up and block it)."""
    with open(log, "wb") as out:
        return subprocess.Popen(args, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)


def wait_until_up(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    """Poll `url` until it answers 200; fail with the process's log if it dies or never does."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"{url}: the process exited with {process.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass  # not listening yet
        time.sleep(0.25)
    pytest.fail(f"{url} did not answer 200 within {START_TIMEOUT_S} s:\n{log.read_text()}")


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL if it has not exited within 10 s."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


@dataclass(frozen=True)
class Services:
    """The vision API and the dashboard using it: their base URLs, and the API's process."""

    api: str
    dashboard: str
    api_process: subprocess.Popen[bytes]
    api_log: Path

    def wait_for_api(self) -> None:
        wait_until_up(f"{self.api}/ready", self.api_process, self.api_log)


@pytest.fixture
def services(vision_artifact: Path, tmp_path: Path) -> Iterator[Services]:
    """The vision API and the dashboard using it, both serving the session's model, started
    together; yielded once the dashboard answers (the API may still be loading: see
    `Services.wait_for_api`). Both processes are stopped however the test ends."""
    api_port, dashboard_port = free_port(), free_port()
    api, dashboard = f"http://127.0.0.1:{api_port}", f"http://127.0.0.1:{dashboard_port}"
    env = {**os.environ, "MODEL_DIR": str(vision_artifact), "API_URL": api}
    processes: list[subprocess.Popen[bytes]] = []
    try:
        api_log, dashboard_log = tmp_path / "api.log", tmp_path / "dashboard.log"
        serve = [sys.executable, "-m", "vision", "serve", "--model", str(vision_artifact),
                 "--host", "127.0.0.1", "--port", str(api_port)]  # fmt: skip
        processes.append(start(serve, api_log, env))
        streamlit = [
            sys.executable, "-m", "streamlit", "run", "vision/dashboard/app.py",
            "--server.headless", "true", "--server.address", "127.0.0.1",
            "--server.port", str(dashboard_port), "--server.fileWatcherType", "none",
            "--browser.gatherUsageStats", "false",
        ]  # fmt: skip
        processes.append(start(streamlit, dashboard_log, env))
        wait_until_up(f"{dashboard}/_stcore/health", processes[1], dashboard_log)
        yield Services(api, dashboard, processes[0], api_log)
    finally:
        for process in reversed(processes):
            stop(process)


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
    services: Services, square_png: Path, tmp_path: Path
) -> None:
    from playwright.sync_api import expect, sync_playwright

    shots = Path(os.environ.get("TEST_ARTIFACTS_DIR") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    screenshot = shots / "vision-dashboard-predict.png"

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1100})
            # Predict is the default page. Its first run imports torch (seconds) while the API
            # loads the model: the two overlap rather than add up.
            page.goto(services.dashboard, timeout=START_TIMEOUT_S * 1000)
            uploader = page.locator("input[type=file]")
            uploader.wait_for(state="attached", timeout=START_TIMEOUT_S * 1000)
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
        finally:
            browser.close()

    print(f"screenshot: {screenshot}")
    assert label == answer["label"]
    assert re.fullmatch(r"\d{1,3}\.\d%", confidence), confidence
    assert confidence == f"{answer['confidence']:.1%}"
    assert screenshot.stat().st_size > 10_000
