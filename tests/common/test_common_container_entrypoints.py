"""The small programs the images run: the HEALTHCHECK probe (common/serving/probe.py) and the
dashboard launcher (common/launch_dashboard.py)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from common import launch_dashboard
from common.serving import probe


class Answers(BaseHTTPRequestHandler):
    """200 on /ping, 503 elsewhere (a service still loading its model)."""

    def do_GET(self) -> None:  # http.server calls it by this name
        self.send_response(200 if self.path == "/ping" else 503)
        self.end_headers()

    def log_message(self, *args: object) -> None:  # keep the test output clean
        pass


@pytest.fixture
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Answers)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def test_probe_passes_on_200_and_fails_saying_why(server: str, capsys) -> None:
    assert probe.main([f"{server}/ping"]) == 0
    assert probe.main([f"{server}/ready"]) == 1
    assert "HTTP 503" in capsys.readouterr().err


def test_probe_defaults_to_ping_on_the_service_port(server: str, monkeypatch, capsys) -> None:
    monkeypatch.setenv("SAGEMAKER_BIND_TO_PORT", server.rsplit(":", 1)[1])
    assert probe.main([]) == 0
    monkeypatch.setenv("SAGEMAKER_BIND_TO_PORT", "1")  # nothing listens there
    assert probe.main([]) == 1
    assert "unhealthy: GET http://127.0.0.1:1/ping" in capsys.readouterr().err


def test_launcher_finds_each_installed_dashboard() -> None:
    path = launch_dashboard.dashboard_file("churn")
    assert path.replace("\\\\", "/").endswith("churn/dashboard/app.py")


def test_launcher_refuses_an_unknown_project(monkeypatch, capsys) -> None:
    monkeypatch.delenv("DASHBOARD_PROJECT", raising=False)
    assert launch_dashboard.main(["nope", "--server.port=1"]) == 2
    assert "unknown project 'nope'" in capsys.readouterr().err
    assert launch_dashboard.main([]) == 2  # no project given at all
