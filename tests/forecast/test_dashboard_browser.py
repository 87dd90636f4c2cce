"""The forecast dashboard in a real browser, talking to the real API, as a user would reach it.

Starts the forecast API (`python -m forecast serve`) and `streamlit run
forecast/dashboard/app.py` as subprocesses on free local ports, opens the Forecast page in
headless Chromium (Debian's `/usr/bin/chromium`, driven by Playwright), checks that the API's
forecast for the first series is drawn, then pastes newer points and checks that the forecast
drawn starts after them, as the API conditions it. The screenshot is kept as a test artifact:
under `$TEST_ARTIFACTS_DIR` if set, else the test's tmp_path; its path is printed (`pytest -rP`).

Skipped when Chromium or the playwright package is missing. Never run `playwright install`:
it downloads its own browser, which this project does not use.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest

from forecast.serve import ForecastPredictor

# The harness (subprocesses on free ports, Chromium, skips) is in tests/conftest.py.
pytestmark = pytest.mark.browser


def metric_value(page: Any, label: str) -> Any:
    """The locator of the value of the metric labelled `label`."""
    return page.get_by_test_id("stMetric").filter(has_text=label).get_by_test_id("stMetricValue")


@pytest.mark.timeout(300)
def test_forecast_page_draws_the_apis_forecast_and_conditions_it_on_pasted_points(
    chromium,
    start_services,
    screenshots: Path,
    forecast_artifact: Path,
    forecast_predictor: ForecastPredictor,
    forecast_files,
) -> None:
    from playwright.sync_api import expect

    # The page asks the API for a forecast on its first run: the API must be up before it.
    services = start_services("forecast", forecast_artifact)
    series_id = forecast_predictor.ids[0]
    answer = httpx.post(f"{services.api}/predict", json={"series_id": series_id},
                        timeout=30).json()  # fmt: skip
    actuals = pd.read_csv(forecast_files.healthy, dtype={"series_id": str})
    recent = actuals[actuals["series_id"] == series_id][["ds", "y"]].iloc[:10]
    history = [{"ds": ds, "y": y} for ds, y in recent.itertuples(index=False)]
    conditioned = httpx.post(f"{services.api}/predict", timeout=30,
                             json={"series_id": series_id, "history": history}).json()  # fmt: skip

    page = chromium.new_page(viewport={"width": 1400, "height": 1100})
    # Forecast is the default page; its first run loads the model (seconds).
    page.goto(services.dashboard, timeout=60_000)
    chart = page.get_by_test_id("stVegaLiteChart")
    chart.first.wait_for(timeout=60_000)
    expect(metric_value(page, "Model")).to_have_text(answer["model"], timeout=30_000)
    expect(metric_value(page, "Forecast from")).to_have_text(answer["points"][0]["ds"][:10])

    page.get_by_text("Condition on recent points (optional)").click()
    points = page.locator("textarea")
    points.fill(recent.to_csv(index=False))
    points.press("Control+Enter")  # how a Streamlit text area submits
    starts = conditioned["points"][0]["ds"][:10]
    assert starts > answer["points"][0]["ds"][:10]
    expect(metric_value(page, "Forecast from")).to_have_text(starts, timeout=30_000)
    expect(page.get_by_test_id("stAlert")).to_have_count(0)
    chart.first.wait_for(timeout=10_000)
    page.wait_for_timeout(1000)  # the chart's transition, before the picture
    screenshot = screenshots / "forecast-dashboard-forecast.png"
    page.screenshot(path=str(screenshot), full_page=True)

    print(f"screenshot: {screenshot}")
    assert screenshot.stat().st_size > 10_000
