"""The churn dashboard in a real browser, talking to the real API, as a user would reach it.

Starts the churn API (`python -m churn serve`) and `streamlit run churn/dashboard/app.py` as
subprocesses on free local ports, opens the what-if page in headless Chromium (Debian's
`/usr/bin/chromium`, driven by Playwright), submits the form and checks that the API's
probability is on the page. The screenshot is kept as a test artifact: under
`$TEST_ARTIFACTS_DIR` if set, else the test's tmp_path; its path is printed (`pytest -rP`).

Skipped when Chromium or the playwright package is missing. Never run `playwright install`:
it downloads its own browser, which this project does not use.
"""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from churn.serve import EXAMPLES

# The harness (subprocesses on free ports, Chromium, skips) is in tests/conftest.py.
pytestmark = pytest.mark.browser


@pytest.mark.timeout(300)
def test_what_if_page_shows_the_apis_probability(
    chromium, start_services, screenshots: Path, trained_artifact: Path
) -> None:
    from playwright.sync_api import expect

    services = start_services("churn", trained_artifact)
    api, dashboard = services.api, services.dashboard
    record = {k: v for k, v in EXAMPLES[0].items() if k != "customerID"}  # the form's defaults
    answer = httpx.post(f"{api}/predict", json=record, timeout=10).json()
    screenshot = screenshots / "churn-dashboard-what-if.png"

    page = chromium.new_page(viewport={"width": 1400, "height": 1400})
    page.goto(f"{dashboard}/what_if", timeout=60_000)
    page.get_by_role("button", name="Predict").click(timeout=30_000)
    probability = page.get_by_test_id("stMetric").filter(
        has_text=re.compile("churn probability", re.IGNORECASE)
    )
    expect(probability).to_be_visible(timeout=30_000)
    value = probability.get_by_test_id("stMetricValue").inner_text()
    # Let the reason-code chart finish drawing before the picture is taken.
    page.get_by_text("Why").wait_for(timeout=10_000)
    page.wait_for_timeout(1000)
    page.screenshot(path=str(screenshot), full_page=True)

    print(f"screenshot: {screenshot}")
    assert re.fullmatch(r"\d{1,3}\.\d%", value), value
    assert value == f"{answer['churn_probability']:.1%}"
    assert screenshot.stat().st_size > 10_000
