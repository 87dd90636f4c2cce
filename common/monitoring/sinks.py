"""Where alerts go: the log, a JSON-lines file, and a webhook with a Slack-compatible payload.

Delivery is at least once: a sink that fails raises `DeliveryError`, and the monitoring run
then keeps the previous alert state, so the next run sends the same alerts again rather than
losing them. The webhook retries connection errors, timeouts, 429 and 5xx answers with
exponential back-off (honouring `Retry-After`); any other 4xx is a configuration problem that
retrying cannot fix.
"""

from __future__ import annotations

import http.client
import json
import logging
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

from common.errors import UserError
from common.monitoring.alerts import Alert, SinksConfig

logger = logging.getLogger("common.monitoring.alerts")
_EMOJI = {"critical": ":red_circle:", "warning": ":warning:", "info": ":information_source:"}
MAX_WAIT_S = 60.0
_LEVEL = {"critical": logging.CRITICAL, "warning": logging.WARNING, "info": logging.INFO}


class DeliveryError(UserError):
    """A sink could not deliver its alerts."""


class Sink(Protocol):
    name: str

    def send(self, alerts: Sequence[Alert]) -> None: ...


class LogSink:
    name = "log"

    def send(self, alerts: Sequence[Alert]) -> None:
        for alert in alerts:
            level = logging.INFO if alert.status == "resolved" else _LEVEL[alert.severity]
            logger.log(level, alert.text, extra={"alert": alert.to_dict()})


class JsonlSink:
    """Appends one JSON object per alert: a history the dashboard reads."""

    name = "jsonl"

    def __init__(self, path: Path) -> None:
        self.path = path

    def send(self, alerts: Sequence[Alert]) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as fh:
                fh.writelines(json.dumps(a.to_dict()) + "\n" for a in alerts)
        except OSError as exc:
            raise DeliveryError(f"{self.path}: cannot append alerts: {exc}") from exc


def slack_payload(alert: Alert) -> dict[str, Any]:
    """Slack's incoming-webhook shape (`text` as the fallback, one mrkdwn block); Mattermost
    and Discord's `/slack` endpoints take it too."""
    icon = ":white_check_mark:" if alert.status == "resolved" else _EMOJI[alert.severity]
    details = "\n".join(f"*{k}*: {v}" for k, v in alert.context.items())
    return {
        "text": alert.text,
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": f"{icon} {alert.text}"}},
            *(
                [{"type": "section", "text": {"type": "mrkdwn", "text": details}}]
                if details
                else []
            ),
        ],
    }


class WebhookSink:
    name = "webhook"

    def __init__(
        self,
        url: str,
        *,
        timeout_s: float = 5.0,
        retries: int = 3,
        backoff_s: float = 1.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.url, self.timeout_s, self.retries, self.backoff_s = url, timeout_s, retries, backoff_s
        self.sleep = sleep

    def send(self, alerts: Sequence[Alert]) -> None:
        for alert in alerts:
            self._post(json.dumps(slack_payload(alert)).encode())

    def _post(self, body: bytes) -> None:
        try:
            request = urllib.request.Request(
                self.url, data=body, method="POST", headers={"Content-Type": "application/json"}
            )
        except ValueError as exc:  # no scheme, e.g. a URL pasted without https://
            raise DeliveryError(f"webhook URL is not valid: {exc}") from exc
        for attempt in range(self.retries + 1):
            wait = self.backoff_s * 2**attempt
            try:
                with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                    response.read()
                return
            except urllib.error.HTTPError as exc:
                if exc.code != 429 and exc.code < 500:
                    raise DeliveryError(f"webhook refused the alert: HTTP {exc.code}") from exc
                retry_after = exc.headers.get("Retry-After", "")
                # Capped: a cron run must not sleep for as long as a server cares to ask.
                wait = min(float(retry_after), MAX_WAIT_S) if retry_after.isdigit() else wait
                problem = f"HTTP {exc.code}"
            except http.client.InvalidURL as exc:  # e.g. a port that is not a number
                raise DeliveryError(f"webhook URL is not valid: {exc}") from exc
            except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
                # Refused, timed out, reset, or a garbled answer (a broken proxy): all transient.
                problem = str(getattr(exc, "reason", exc)) or type(exc).__name__
            if attempt < self.retries:
                logger.warning("webhook: %s; retry %d in %.1f s", problem, attempt + 1, wait)
                self.sleep(wait)
        raise DeliveryError(f"webhook failed after {self.retries + 1} attempts: {problem}")


def build_sinks(config: SinksConfig, folder: Path) -> list[Sink]:
    """The sinks a rules file asks for; the webhook only where a URL is configured."""
    sinks: list[Sink] = []
    if config.log:
        sinks.append(LogSink())
    if config.jsonl:
        sinks.append(JsonlSink(folder / config.jsonl))
    url = config.webhook.resolved_url() if config.webhook else None
    if config.webhook and url:
        w = config.webhook
        sinks.append(
            WebhookSink(url, timeout_s=w.timeout_s, retries=w.retries, backoff_s=w.backoff_s)
        )
    return sinks


def deliver(alerts: Sequence[Alert], sinks: Sequence[Sink]) -> list[str]:
    """Send to every sink (one failing does not stop the others); the failures, as text."""
    failures = []
    if not alerts:
        return failures
    for sink in sinks:
        try:
            sink.send(alerts)
        except DeliveryError as exc:
            logger.error("alert sink %s failed: %s", sink.name, exc)
            failures.append(f"{sink.name}: {exc}")
    return failures
