"""Tests of the alert sinks (common.monitoring.sinks) against a real webhook server on
127.0.0.1, and of a monitoring run end to end (common.monitoring.run.monitor_batch): alerts
fire, are deduplicated and resolve across windows, reports are written, and a failed delivery
leaves the state as it was so that the next run sends the same alerts again."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from common.monitoring.alerts import Alert, AlertConfig, SinksConfig, WebhookConfig
from common.monitoring.profile import ReferenceProfile, build_profile
from common.monitoring.run import (
    EXIT_CRITICAL,
    EXIT_DELIVERY_FAILED,
    EXIT_OK,
    MonitorResult,
    load_runs,
    monitor_batch,
)
from common.monitoring.sinks import (
    MAX_WAIT_S,
    DeliveryError,
    JsonlSink,
    LogSink,
    WebhookSink,
    build_sinks,
    deliver,
    slack_payload,
)

# -- a webhook server on 127.0.0.1 ---------------------------------------------------------------


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Hook:
    """A local webhook: records each POST and answers from `script` (status, headers), then
    `default` (a negative status: a line that is not HTTP); `delay_s` makes it sleep before
    answering (until the test ends, at most)."""

    url: str = ""
    requests: list[Received] = field(default_factory=list)
    script: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    default: int = 200
    delay_s: float = 0.0
    release: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self, request: Received) -> tuple[int, dict[str, str]]:
        with self.lock:
            self.requests.append(request)
            return self.script.pop(0) if self.script else (self.default, {})

    @property
    def payloads(self) -> list[Any]:
        with self.lock:
            return [r.json() for r in self.requests]


def _handler(hook: Hook) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            status, headers = hook.answer(Received(self.path, dict(self.headers.items()), body))
            if hook.delay_s:
                hook.release.wait(hook.delay_s)
            if status < 0:  # not HTTP at all (a broken proxy, say)
                self.wfile.write(b"NONSENSE\r\n\r\n")
                return
            try:
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "text/plain")
                self.end_headers()
                self.wfile.write(b"ok" if status < 400 else b"no")
            except OSError:  # the client gave up waiting (the timeout test)
                pass

        def log_message(self, format: str, *args: Any) -> None:  # keep the test output clean
            pass

    return Handler


@pytest.fixture
def hook() -> Iterator[Hook]:
    state = Hook()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/alerts"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    yield state
    state.release.set()
    server.shutdown()
    server.server_close()
    thread.join(5)


@pytest.fixture
def closed_port_url() -> str:
    """A URL on 127.0.0.1 where nothing listens: connections are refused."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/hook"


def make_alert(
    rule: str = "prediction-drift",
    status: str = "firing",
    severity: str = "critical",
    context: dict[str, str] | None = None,
) -> Alert:
    return Alert(
        rule=rule,
        status=status,  # type: ignore[arg-type]
        severity=severity,  # type: ignore[arg-type]
        metric="drift.prediction_psi",
        value=0.31,
        threshold=0.25,
        comparison="above",
        windows=1,
        since="2024-03-01T12:00:00+00:00",
        at="2024-03-01T13:00:00+00:00",
        context={"project": "toy", "run": "r1"} if context is None else context,
    )


class Sleeps(list[float]):
    """An injected `sleep` that records its waits instead of waiting."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


# -- the webhook ---------------------------------------------------------------------------------


def test_webhook_posts_a_slack_compatible_json_payload(hook: Hook) -> None:
    alert = make_alert()

    WebhookSink(hook.url).send([alert])

    (request,) = hook.requests
    assert request.path == "/hooks/alerts"
    assert request.headers["Content-Type"] == "application/json"
    payload = request.json()
    assert payload == slack_payload(alert)
    assert payload["text"] == alert.text
    first, details = payload["blocks"]
    assert first["type"] == "section" and first["text"]["type"] == "mrkdwn"
    assert first["text"]["text"] == f":red_circle: {alert.text}"
    assert details["text"]["text"] == "*project*: toy\n*run*: r1"


def test_slack_payload_icons_and_no_empty_details_block() -> None:
    resolved = slack_payload(make_alert(status="resolved", context={}))
    assert [b["text"]["text"][:19] for b in resolved["blocks"]] == [":white_check_mark: "]
    assert resolved["text"].startswith("RESOLVED prediction-drift")
    warning = slack_payload(make_alert(severity="warning"))
    assert warning["blocks"][0]["text"]["text"].startswith(":warning: WARNING")


def test_webhook_sends_one_post_per_alert(hook: Hook) -> None:
    alerts = [make_alert("a"), make_alert("b", status="resolved")]
    WebhookSink(hook.url).send(alerts)
    assert [p["text"] for p in hook.payloads] == [a.text for a in alerts]


def test_webhook_retries_server_errors_with_exponential_back_off(hook: Hook) -> None:
    hook.script = [(500, {}), (503, {})]
    sleeps = Sleeps()

    WebhookSink(hook.url, retries=3, backoff_s=0.01, sleep=sleeps).send([make_alert()])

    assert len(hook.requests) == 3
    assert hook.requests[0].body == hook.requests[2].body  # the same alert each time
    assert sleeps == pytest.approx([0.01, 0.02])


def test_webhook_retries_429_honouring_retry_after(hook: Hook) -> None:
    hook.script = [(429, {"Retry-After": "0"})]
    sleeps = Sleeps()

    WebhookSink(hook.url, backoff_s=0.01, sleep=sleeps).send([make_alert()])

    assert len(hook.requests) == 2
    assert sleeps == [0.0]  # Retry-After, not the back-off


def test_webhook_does_not_retry_a_client_error(hook: Hook) -> None:
    hook.default = 400
    sleeps = Sleeps()

    with pytest.raises(DeliveryError, match="HTTP 400"):
        WebhookSink(hook.url, retries=3, backoff_s=0.01, sleep=sleeps).send([make_alert()])

    assert len(hook.requests) == 1 and sleeps == []


def test_webhook_gives_up_after_its_attempts(hook: Hook) -> None:
    hook.default = 500
    sleeps = Sleeps()

    with pytest.raises(DeliveryError, match="failed after 4 attempts: HTTP 500"):
        WebhookSink(hook.url, retries=3, backoff_s=0.5, sleep=sleeps).send([make_alert()])

    assert len(hook.requests) == 4
    assert sleeps == [0.5, 1.0, 2.0]  # doubling each time; no wait after the last attempt


def test_webhook_retries_a_timeout_then_gives_up(hook: Hook) -> None:
    hook.delay_s = 5.0  # far longer than the client waits
    sleeps = Sleeps()
    sink = WebhookSink(hook.url, timeout_s=0.2, retries=1, backoff_s=0.01, sleep=sleeps)

    started = time.monotonic()
    with pytest.raises(DeliveryError, match=r"failed after 2 attempts: .*timed out"):
        sink.send([make_alert()])

    assert time.monotonic() - started < 2.0
    assert len(hook.requests) == 2 and sleeps == [0.01]


def test_a_non_numeric_retry_after_falls_back_to_the_back_off(hook: Hook) -> None:
    hook.script = [(503, {"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"})]
    sleeps = Sleeps()
    WebhookSink(hook.url, backoff_s=0.01, sleep=sleeps).send([make_alert()])
    assert len(hook.requests) == 2 and sleeps == [0.01]


def test_webhook_connection_refused_is_a_delivery_error(closed_port_url: str) -> None:
    sleeps = Sleeps()
    with pytest.raises(DeliveryError, match=r"failed after 2 attempts: .*refused"):
        WebhookSink(closed_port_url, retries=1, backoff_s=0, sleep=sleeps).send([make_alert()])
    assert sleeps == [0]


# Bad URLs and garbled answers: a failed sink, never a traceback that ends the run.


@pytest.mark.parametrize(
    "url", ["hooks.slack.com/services/T0/B0/x", "http://127.0.0.1:notaport/hook"]
)
def test_a_malformed_webhook_url_is_a_delivery_error(url: str, tmp_path: Path) -> None:
    # A user error (MLP_ALERT_WEBHOOK_URL without its scheme, say) should be reported as a
    # failed sink, not end the monitoring run with a traceback before its report is written.
    history = tmp_path / "alerts.jsonl"
    failures = deliver([make_alert()], [WebhookSink(url, retries=0), JsonlSink(history)])
    assert len(failures) == 1 and failures[0].startswith("webhook: ")
    assert history.exists()


def test_a_malformed_http_answer_is_retried_then_a_delivery_error(hook: Hook) -> None:
    hook.default = -1  # the handler answers a line that is not HTTP
    sleeps = Sleeps()
    with pytest.raises(DeliveryError, match="failed after 2 attempts"):
        WebhookSink(hook.url, retries=1, backoff_s=0, sleep=sleeps).send([make_alert()])


# -- the other sinks, building and delivering ----------------------------------------------------


def test_jsonl_sink_appends_one_object_per_alert(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "alerts.jsonl"
    sink = JsonlSink(path)

    sink.send([make_alert("a")])
    sink.send([make_alert("b"), make_alert("a", status="resolved")])

    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [(line["rule"], line["status"]) for line in lines] == [
        ("a", "firing"),
        ("b", "firing"),
        ("a", "resolved"),
    ]
    assert lines[0] == make_alert("a").to_dict()


def test_jsonl_sink_that_cannot_write_is_a_delivery_error(tmp_path: Path) -> None:
    (tmp_path / "blocker").write_text("a file, not a folder")
    with pytest.raises(DeliveryError, match="cannot append alerts"):
        JsonlSink(tmp_path / "blocker" / "alerts.jsonl").send([make_alert()])


def test_log_sink_logs_at_the_alert_severity_and_resolved_at_info(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="common.monitoring.alerts")
    alerts = [
        make_alert("crit"),
        make_alert("warn", severity="warning"),
        make_alert("crit", status="resolved"),
    ]

    LogSink().send(alerts)

    records = [r for r in caplog.records if r.name == "common.monitoring.alerts"]
    assert [(r.levelno, r.getMessage()) for r in records] == [
        (logging.CRITICAL, alerts[0].text),
        (logging.WARNING, alerts[1].text),
        (logging.INFO, alerts[2].text),
    ]
    assert records[0].alert == alerts[0].to_dict()  # type: ignore[attr-defined]


def test_build_sinks_adds_the_webhook_only_when_a_url_is_configured(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MLP_ALERT_WEBHOOK_URL", raising=False)
    monkeypatch.delenv("TEST_HOOK_URL", raising=False)

    default = build_sinks(SinksConfig(), tmp_path)
    assert [s.name for s in default] == ["log", "jsonl"]
    assert isinstance(default[1], JsonlSink) and default[1].path == tmp_path / "alerts.jsonl"

    from_env = SinksConfig(
        log=False,
        jsonl="sub/history.jsonl",
        webhook=WebhookConfig(url_env="TEST_HOOK_URL", timeout_s=2, retries=1, backoff_s=0.5),
    )
    assert [s.name for s in build_sinks(from_env, tmp_path)] == ["jsonl"]
    monkeypatch.setenv("TEST_HOOK_URL", "")  # set but empty: still no webhook
    assert [s.name for s in build_sinks(from_env, tmp_path)] == ["jsonl"]
    monkeypatch.setenv("TEST_HOOK_URL", "http://127.0.0.1:9/from-env")
    jsonl, webhook = build_sinks(from_env, tmp_path)
    assert isinstance(jsonl, JsonlSink) and jsonl.path == tmp_path / "sub" / "history.jsonl"
    assert isinstance(webhook, WebhookSink)
    assert (webhook.url, webhook.timeout_s, webhook.retries, webhook.backoff_s) == (
        "http://127.0.0.1:9/from-env",
        2,
        1,
        0.5,
    )

    monkeypatch.setenv("MLP_ALERT_WEBHOOK_URL", "http://127.0.0.1:9/default-env")
    (webhook,) = build_sinks(SinksConfig(log=False, jsonl=None), tmp_path)
    assert isinstance(webhook, WebhookSink) and webhook.url.endswith("/default-env")

    explicit = SinksConfig(log=False, jsonl=None, webhook=WebhookConfig(url="http://h/x"))
    (webhook,) = build_sinks(explicit, tmp_path)
    assert isinstance(webhook, WebhookSink) and webhook.url == "http://h/x"  # the URL wins

    assert build_sinks(SinksConfig(log=False, jsonl=None, webhook=None), tmp_path) == []


def test_deliver_goes_on_past_a_failing_sink(hook: Hook, tmp_path: Path) -> None:
    hook.default = 404
    history = tmp_path / "alerts.jsonl"
    sinks = [WebhookSink(hook.url, backoff_s=0), JsonlSink(history)]

    failures = deliver([make_alert()], sinks)

    assert len(failures) == 1 and failures[0].startswith("webhook: ") and "404" in failures[0]
    assert len(history.read_text().splitlines()) == 1  # the JSONL sink still got it
    assert deliver([], sinks) == [] and len(hook.requests) == 1  # nothing to send: no calls


# -- a monitoring run end to end -----------------------------------------------------------------

KINDS = {"age": "numeric", "income": "numeric", "plan": "category"}
N = 2000
T0 = datetime(2024, 3, 1, 6, 0, tzinfo=UTC)
CONTEXT = {"project": "toy", "model": "v7"}
RULES_YAML = """\
rules:
  - name: prediction-drift-major
    metric: drift.prediction_psi
    above: 0.25
    severity: critical
  - name: feature-drift-major
    metric: drift.max_psi
    above: 0.25
    severity: warning
  - name: auc-drop                      # needs labels: never measured in these runs
    metric: performance.roc_auc_drop
    above: 0.03
    severity: critical
sinks:
  log: true
  jsonl: alerts.jsonl
  webhook: {{url: "{url}", timeout_s: 2, retries: {retries}, backoff_s: 0}}
"""


def batch(seed: int, *, shifted: bool = False) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Columns and scores like the reference's, or moved (older, richer customers scored
    higher)."""
    rng = np.random.default_rng(seed)
    columns = {
        "age": rng.normal(55 if shifted else 40, 10, N),
        "income": rng.lognormal(8.5 if shifted else 8, 0.5, N),
        "plan": rng.choice(["basic", "pro"], N, p=[0.3, 0.7] if shifted else [0.7, 0.3]),
    }
    scores = rng.beta(5, 2, N) if shifted else rng.beta(2, 5, N)
    return columns, scores


@pytest.fixture(scope="module")
def profile() -> ReferenceProfile:
    columns, scores = batch(0)
    return build_profile(
        columns,
        KINDS,
        scores=scores,
        score_name="p",
        performance={"roc_auc": 0.8},
        estimated={"roc_auc": 0.79},
        threshold=0.5,
    )


def rules_file(tmp_path: Path, url: str, retries: int = 0) -> AlertConfig:
    path = tmp_path / "alerts.yaml"
    path.write_text(RULES_YAML.format(url=url, retries=retries))
    return AlertConfig.load(path)


def run_window(
    profile: ReferenceProfile,
    config: AlertConfig,
    folder: Path,
    i: int,
    *,
    shifted: bool,
    sinks: list[Any] | None = None,
) -> MonitorResult:
    columns, scores = batch(100 + i, shifted=shifted)
    return monitor_batch(
        profile=profile,
        columns=columns,
        scores=scores,
        labels=None,
        config=config,
        folder=folder,
        context=CONTEXT,
        now=T0 + timedelta(hours=i),
        sinks=sinks,
    )


def jsonl_lines(folder: Path) -> list[dict[str, Any]]:
    path = folder / "alerts.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def check_report(result: MonitorResult, folder: Path) -> dict[str, Any]:
    assert result.report_dir == folder / "runs" / result.run_id
    assert (result.report_dir / "report.html").read_text().startswith("<!doctype html>")
    report = json.loads((result.report_dir / "report.json").read_text())
    assert report["run_id"] == result.run_id
    assert report["context"] == CONTEXT
    assert report["rows"] == N == result.rows
    assert report["metrics"] == result.metrics
    assert report["alerts"] == [a.to_dict() for a in result.alerts]
    assert report["open_alerts"] == [r.name for r in result.open]
    assert report["delivery_failures"] == result.failures
    return report


def test_monitoring_fires_dedupes_and_resolves_across_windows(
    profile: ReferenceProfile, hook: Hook, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="common.monitoring.alerts")
    config = rules_file(tmp_path, hook.url)
    folder = tmp_path / "monitoring" / "toy"

    # 1: the reference distribution: nothing fires, nothing is posted.
    first = run_window(profile, config, folder, 1, shifted=False)
    assert first.alerts == [] and first.open == [] and first.failures == []
    assert first.exit_code == EXIT_OK
    assert first.metrics["drift.prediction_psi"] < 0.1
    assert "performance.roc_auc_drop" not in first.metrics  # no labels
    assert hook.requests == [] and jsonl_lines(folder) == []
    assert check_report(first, folder)["alerts"] == []

    # 2: shifted: both drift rules fire, one POST and one JSONL line each; critical -> exit 2.
    second = run_window(profile, config, folder, 2, shifted=True)
    fired = {a.rule: a for a in second.alerts}
    assert set(fired) == {"prediction-drift-major", "feature-drift-major"}
    assert {a.status for a in second.alerts} == {"firing"}
    assert second.metrics["drift.prediction_psi"] > 0.25 and second.metrics["drift.max_psi"] > 0.25
    assert second.exit_code == EXIT_CRITICAL
    assert [r.name for r in second.open] == ["prediction-drift-major", "feature-drift-major"]
    assert [p["text"] for p in hook.payloads] == [a.text for a in second.alerts]
    assert f"run={second.run_id}" in hook.payloads[0]["text"]
    assert str(second.report_dir / "report.html") in hook.payloads[0]["blocks"][1]["text"]["text"]
    assert jsonl_lines(folder) == [a.to_dict() for a in second.alerts]
    report = check_report(second, folder)
    assert report["critical_open"] == ["prediction-drift-major"]
    assert {r.levelno for r in caplog.records if r.name == "common.monitoring.alerts"} == {
        logging.CRITICAL,
        logging.WARNING,
    }

    # 3: still shifted: no new alert, no new POST, still open and still exit 2.
    third = run_window(profile, config, folder, 3, shifted=True)
    assert third.alerts == [] and third.failures == []
    assert third.exit_code == EXIT_CRITICAL
    assert {r.name for r in third.open} == set(fired)
    assert len(hook.requests) == 2 and len(jsonl_lines(folder)) == 2
    check_report(third, folder)

    # 4: back to normal: one "resolved" per open alert, dated from when it fired; exit 0.
    fourth = run_window(profile, config, folder, 4, shifted=False)
    assert {a.rule for a in fourth.alerts} == set(fired)
    assert {a.status for a in fourth.alerts} == {"resolved"}
    assert all(a.since == fired[a.rule].at for a in fourth.alerts)
    assert fourth.open == [] and fourth.exit_code == EXIT_OK
    assert len(hook.requests) == 4
    assert all(p["text"].startswith("RESOLVED ") for p in hook.payloads[2:])
    assert [line["status"] for line in jsonl_lines(folder)] == ["firing"] * 2 + ["resolved"] * 2
    check_report(fourth, folder)

    runs = load_runs(folder)
    assert [r["run_id"] for r in runs] == [x.run_id for x in (first, second, third, fourth)]
    state = json.loads((folder / "state.json").read_text())
    assert not any(s["open"] for s in state["rules"].values())
    assert "auc-drop" not in state["rules"]  # never measured


def test_explicit_sinks_replace_the_configured_ones(
    profile: ReferenceProfile, hook: Hook, tmp_path: Path
) -> None:
    config = rules_file(tmp_path, "http://127.0.0.1:9/never-used")
    folder = tmp_path / "monitoring"
    history = tmp_path / "elsewhere.jsonl"
    sinks = [JsonlSink(history), WebhookSink(hook.url, backoff_s=0)]

    result = run_window(profile, config, folder, 1, shifted=True, sinks=sinks)

    assert result.exit_code == EXIT_CRITICAL and len(result.alerts) == 2
    assert len(hook.requests) == 2 and len(history.read_text().splitlines()) == 2
    assert not (folder / "alerts.jsonl").exists()


def test_a_failed_delivery_keeps_the_state_so_the_next_run_sends_again(
    profile: ReferenceProfile, hook: Hook, tmp_path: Path
) -> None:
    config = rules_file(tmp_path, hook.url, retries=1)
    folder = tmp_path / "monitoring"
    state_path = folder / "state.json"

    normal = run_window(profile, config, folder, 1, shifted=False)
    assert normal.exit_code == EXIT_OK
    saved = state_path.read_bytes()

    # The webhook is down: the alerts fire but cannot be delivered.
    hook.default = 500
    failed = run_window(profile, config, folder, 2, shifted=True)
    assert failed.failures and failed.failures[0].startswith("webhook: ")
    assert "failed after 2 attempts: HTTP 500" in failed.failures[0]
    assert failed.exit_code == EXIT_DELIVERY_FAILED
    assert state_path.read_bytes() == saved  # not advanced
    assert len(hook.requests) == 2  # the first alert, tried twice; the second never reached
    report = check_report(failed, folder)
    assert report["delivery_failures"] == failed.failures
    assert {a["rule"] for a in report["alerts"]} == {a.rule for a in failed.alerts}

    # The webhook is back: the same alerts are sent again (at least once).
    hook.default = 200
    retried = run_window(profile, config, folder, 3, shifted=True)
    assert retried.failures == [] and retried.exit_code == EXIT_CRITICAL
    assert [(a.rule, a.status) for a in retried.alerts] == [
        (a.rule, a.status) for a in failed.alerts
    ]
    assert [p["text"] for p in hook.payloads[2:]] == [a.text for a in retried.alerts]
    assert state_path.read_bytes() != saved
    # The JSONL sink did work the first time, so its history holds them twice: at least once.
    assert [line["rule"] for line in jsonl_lines(folder)] == [a.rule for a in failed.alerts] * 2

    # Delivered now: the next window, still shifted, sends nothing more.
    after = run_window(profile, config, folder, 4, shifted=True)
    assert after.alerts == [] and after.exit_code == EXIT_CRITICAL
    assert len(hook.requests) == 2 + len(retried.alerts)


def test_a_long_retry_after_is_capped(hook: Hook) -> None:
    hook.script = [(429, {"Retry-After": "86400"}), (200, {})]
    sleeps = Sleeps()
    WebhookSink(hook.url, retries=1, backoff_s=0, sleep=sleeps).send([make_alert()])
    assert sleeps == [MAX_WAIT_S]  # a cron run does not sleep for a day
