"""Fixtures shared by every test package: isolated settings, one small trained churn model, and
the harness of the real-browser tests (a project's API and dashboard as subprocesses, Chromium).

Training takes seconds, so one model is trained per test session on generated data and shared
by the tests that only read it; tests that write artifacts get their own store under tmp_path.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest

from common.settings import Settings, get_settings


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Settings pointing at an empty artifact store in tmp_path, tracking off; also what
    `get_settings()` returns (for the CLI) during the test."""
    monkeypatch.setenv("MLP_ARTIFACTS_ROOT", str(tmp_path / "artifacts"))
    monkeypatch.setenv("MLP_DATA_ROOT", str(tmp_path / "data"))
    monkeypatch.setenv("MLP_MONITORING_ROOT", str(tmp_path / "monitoring"))
    monkeypatch.setenv("MLP_TRACKING", "false")
    # A developer's own webhook must never receive test alerts.
    monkeypatch.delenv("MLP_ALERT_WEBHOOK_URL", raising=False)
    get_settings.cache_clear()
    yield get_settings()
    get_settings.cache_clear()


@pytest.fixture(scope="session")
def telco_frame() -> pd.DataFrame:
    """7,043 generated customers (the size of IBM's file), laid out as on disk."""
    from churn.data import generate_customers

    return generate_customers(7043, seed=7)


@pytest.fixture(scope="session")
def telco_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from churn.data import write_customers

    return write_customers(
        tmp_path_factory.mktemp("data") / "telco.csv", 7043, seed=7, progress=False
    )


@pytest.fixture(scope="session")
def fast_config():
    from churn.config import ChurnConfig

    return ChurnConfig(n_trials=2, max_rounds=300, seed=7)


@pytest.fixture(scope="session")
def trained_artifact(
    tmp_path_factory: pytest.TempPathFactory, telco_csv: Path, fast_config
) -> Path:
    """One published churn artifact, trained once per session with a small search."""
    from churn.train import run

    root = tmp_path_factory.mktemp("store")
    return run(telco_csv, fast_config, Settings(artifacts_root=root, tracking=False))


# -- real browsers: a project's API and dashboard as subprocesses, and Chromium ----------------

CHROMIUM = Path("/usr/bin/chromium")
# Chromium in a container: no sandbox (no user namespaces), no GPU, nothing phoned home.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip
START_TIMEOUT_S = 60
ROOT = Path(__file__).parents[1]


@dataclass(frozen=True)
class Services:
    """A project's API and the dashboard using it: base URLs, and the API's process and log."""

    api: str
    dashboard: str
    api_process: subprocess.Popen[bytes]
    api_log: Path

    def wait_for_api(self) -> None:
        wait_until_up(f"{self.api}/ready", self.api_process, self.api_log)


def free_port() -> int:
    """A port nothing listens on now (bind to 0 and read it back)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


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


@pytest.fixture
def start_services(tmp_path: Path) -> Iterator[Callable[..., Services]]:
    """`start_services(project, model_dir)`: `python -m <project> serve` and `streamlit run
    <project>/dashboard/app.py` on free 127.0.0.1 ports, the dashboard using the API, both on
    `model_dir`; returns once the dashboard answers (with `wait_for_api=False` the API may still
    be loading: the two start together). Their output goes to logs in tmp_path (a pipe nobody
    reads could fill up and block them); both are stopped however the test ends."""
    processes: list[subprocess.Popen[bytes]] = []

    def start(args: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
        with open(log, "wb") as out:
            processes.append(
                subprocess.Popen(args, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
            )
        return processes[-1]

    def start_both(project: str, model_dir: Path, *, wait_for_api: bool = True) -> Services:
        api_port, dashboard_port = free_port(), free_port()
        api, dashboard = f"http://127.0.0.1:{api_port}", f"http://127.0.0.1:{dashboard_port}"
        env = {**os.environ, "MODEL_DIR": str(model_dir), "API_URL": api}
        api_log, dashboard_log = tmp_path / "api.log", tmp_path / "dashboard.log"
        serve = [sys.executable, "-m", project, "serve", "--model", str(model_dir),
                 "--host", "127.0.0.1", "--port", str(api_port)]  # fmt: skip
        api_process = start(serve, api_log, env)
        services = Services(api, dashboard, api_process, api_log)
        if wait_for_api:
            services.wait_for_api()
        streamlit = [
            sys.executable, "-m", "streamlit", "run", f"{project}/dashboard/app.py",
            "--server.headless", "true", "--server.address", "127.0.0.1",
            "--server.port", str(dashboard_port), "--server.fileWatcherType", "none",
            "--browser.gatherUsageStats", "false",
        ]  # fmt: skip
        wait_until_up(f"{dashboard}/_stcore/health", start(streamlit, dashboard_log, env),
                      dashboard_log)  # fmt: skip
        return services

    try:
        yield start_both
    finally:
        for process in reversed(processes):  # SIGTERM, then SIGKILL after 10 s
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(timeout=5)


@pytest.fixture
def chromium() -> Iterator[Any]:
    """Debian's headless Chromium driven by Playwright (a `Browser`); the test is skipped, saying
    why, where either is missing. Never `playwright install`: it downloads its own browser."""
    if not CHROMIUM.exists():
        pytest.skip(f"no Chromium at {CHROMIUM}")
    if importlib.util.find_spec("playwright") is None:
        pytest.skip("the playwright package is not installed (pip install playwright)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def screenshots(tmp_path: Path) -> Path:
    """Where browser tests keep their screenshots: `$TEST_ARTIFACTS_DIR` if set, else tmp_path."""
    folder = Path(os.environ.get("TEST_ARTIFACTS_DIR") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@contextmanager
def api_in_thread(predictor_cls: type, model_dir: Path) -> Iterator[str]:
    """A project's API serving `model_dir` from a thread of this process, on a free 127.0.0.1
    port, until the block ends; yields its base URL once it is ready. (For the dashboards'
    AppTests; the browser tests run the real command in a subprocess instead.)"""
    import uvicorn

    from common.serving.app import create_app
    from common.settings import ServeSettings

    app = create_app(predictor_cls, ServeSettings(model_dir=model_dir))
    # log_config=None leaves the test process's logging alone; no websockets are needed.
    config = uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_config=None,
                            log_level="warning", ws="none")  # fmt: skip
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{config.port}"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass  # not listening yet
            time.sleep(0.1)
        else:
            pytest.fail(f"the {predictor_cls.project} API did not become ready within 30 s")
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def assert_says_how_to_train(at: Any, project: str, settings: Settings) -> None:
    """A dashboard page with no model to show: one error that names the store and the command
    that trains one, and no figures."""
    assert len(at.error) == 1
    message = at.error[0].value
    assert message.startswith(f"No {project} model to show")
    assert f"make train-{project}" in message and str(settings.artifacts_root) in message
    assert not at.metric


@pytest.fixture(scope="session")
def serve_in_thread() -> Callable[[type, Path], AbstractContextManager[str]]:
    """`with serve_in_thread(PredictorClass, model_dir) as url:` (see `api_in_thread`)."""
    return api_in_thread


# -- dashboards' AppTests: the model a page shows, in-process or through the API ---------------
# Each project's dashboard tests define `dashboard_model`, the predictor class and the session's
# artifact; these fixtures point the dashboard at it.


@pytest.fixture
def model_dir(dashboard_model: tuple[type, Path], monkeypatch: pytest.MonkeyPatch) -> Path:
    """The dashboard shows the session's model and predicts in-process."""
    _, artifact = dashboard_model
    monkeypatch.setenv("MODEL_DIR", str(artifact))
    monkeypatch.delenv("API_URL", raising=False)
    return artifact


@pytest.fixture(scope="module")
def dashboard_api(dashboard_model: tuple[type, Path], serve_in_thread) -> Iterator[str]:
    """The project's API serving the session's model from a thread; its base URL."""
    predictor_cls, artifact = dashboard_model
    with serve_in_thread(predictor_cls, artifact) as url:
        yield url


@pytest.fixture
def via_api(model_dir: Path, dashboard_api: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """The dashboard asks the project's API for its predictions."""
    monkeypatch.setenv("API_URL", dashboard_api)
    return dashboard_api
