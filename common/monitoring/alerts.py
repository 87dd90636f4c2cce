"""Alert rules from YAML, evaluated window after window with dedupe and resolve.

    rules:
      - name: prediction-drift
        metric: drift.prediction_psi     # any number a monitoring run reports
        above: 0.25                      # or `below:`
        severity: critical               # info, warning or critical
        windows: 2                       # consecutive windows in breach before it fires
    sinks:
      log: true
      jsonl: alerts.jsonl                # relative to the monitoring folder
      webhook: {url_env: MLP_ALERT_WEBHOOK_URL, timeout_s: 5, retries: 3, backoff_s: 1}

`evaluate` is pure: rules, this window's metrics and the state left by the last window in; the
alerts to send and the next state out. An alert fires once when its rule has been in breach for
`windows` windows in a row, is not sent again while it stays open, and sends "resolved" the
first window it is no longer in breach. A metric a window did not measure (no labels, say)
leaves its rule's state untouched.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, Self

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from common.errors import UserError
from common.etl import atomic_write

Severity = Literal["info", "warning", "critical"]


class Rule(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    metric: str
    above: float | None = None
    below: float | None = None
    severity: Severity = "warning"
    windows: int = Field(1, ge=1, description="Consecutive windows in breach before it fires.")
    description: str = ""

    @model_validator(mode="after")
    def _one_bound(self) -> Self:
        if (self.above is None) == (self.below is None):
            raise ValueError("give exactly one of `above` or `below`")
        return self

    def breached(self, value: float) -> bool:
        return value > self.above if self.above is not None else value < self.below  # type: ignore[operator]

    @property
    def threshold(self) -> float:
        return self.above if self.above is not None else self.below  # type: ignore[return-value]


class WebhookConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str | None = None
    #: The variable holding the URL: a Slack webhook URL is a secret, so it stays out of files.
    url_env: str | None = "MLP_ALERT_WEBHOOK_URL"
    timeout_s: float = Field(5.0, gt=0)
    retries: int = Field(3, ge=0)
    backoff_s: float = Field(1.0, ge=0)

    def resolved_url(self) -> str | None:
        return self.url or (os.environ.get(self.url_env) if self.url_env else None) or None


class SinksConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    log: bool = True
    jsonl: str | None = "alerts.jsonl"
    webhook: WebhookConfig | None = Field(default_factory=WebhookConfig)


class AlertConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rules: list[Rule]
    sinks: SinksConfig = Field(default_factory=SinksConfig)

    @model_validator(mode="after")
    def _unique_names(self) -> Self:
        names = [r.name for r in self.rules]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"rule names must be unique; repeated: {', '.join(repeated)}")
        return self

    @classmethod
    def load(cls, path: Path) -> AlertConfig:
        """Read a rules file; any problem is a `UserError` naming the file and the field."""
        try:
            data = yaml.safe_load(Path(path).read_text())
            return cls.model_validate(data)
        except (OSError, UnicodeDecodeError) as exc:
            raise UserError(f"{path}: cannot read the alert rules: {exc}") from exc
        except yaml.YAMLError as exc:
            raise UserError(f"{path}: not valid YAML: {exc}") from exc
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'file'}: {e['msg']}" for e in exc.errors()
            )
            raise UserError(f"{path}: invalid alert rules: {problems}") from exc


class RuleState(BaseModel):
    streak: int = 0  # consecutive windows in breach
    open: bool = False
    since: str | None = None  # when the open alert fired
    value: float | None = None  # the last value seen


class AlertState(BaseModel):
    rules: dict[str, RuleState] = Field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> AlertState:
        if not path.exists():
            return cls()
        try:
            return cls.model_validate(json.loads(path.read_text()))
        except (ValueError, OSError) as exc:
            raise UserError(
                f"{path}: unreadable alert state ({exc}); delete it to start over"
            ) from exc

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(path) as tmp:
            tmp.write_text(self.model_dump_json(indent=1))


@dataclass(frozen=True)
class Alert:
    """One message: a rule started firing, or stopped."""

    rule: str
    status: Literal["firing", "resolved"]
    severity: Severity
    metric: str
    value: float
    threshold: float
    comparison: Literal["above", "below"]
    windows: int
    since: str
    at: str
    context: dict[str, str]  # project, model version, run id, report path

    @property
    def text(self) -> str:
        where = " ".join(f"{k}={v}" for k, v in self.context.items())
        if self.status == "resolved":
            return f"RESOLVED {self.rule}: {self.metric} = {self.value:.4g} ({where})"
        return (
            f"{self.severity.upper()} {self.rule}: {self.metric} = {self.value:.4g}, "
            f"{self.comparison} {self.threshold:g} for {self.windows} window(s) ({where})"
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def evaluate(
    rules: list[Rule],
    metrics: Mapping[str, float],
    state: AlertState,
    *,
    now: datetime,
    context: Mapping[str, str] | None = None,
) -> tuple[list[Alert], AlertState]:
    """This window's alerts to send (new and resolved) and the state for the next window."""
    at = now.isoformat(timespec="seconds")
    alerts: list[Alert] = []
    next_state = AlertState(rules={k: v.model_copy() for k, v in state.rules.items()})
    for rule in rules:
        value = metrics.get(rule.metric)
        if value is None or math.isnan(value):  # not measured: neither breach nor recovery
            continue
        current = next_state.rules.setdefault(rule.name, RuleState())
        current.value = float(value)

        if rule.breached(float(value)):
            current.streak += 1
            if current.streak >= rule.windows and not current.open:
                current.open, current.since = True, at
                alerts.append(_alert(rule, "firing", float(value), at, at, context))
        else:
            current.streak = 0
            if current.open:
                since = current.since or at
                alerts.append(_alert(rule, "resolved", float(value), since, at, context))
                current.open, current.since = False, None
    return alerts, next_state


def _alert(
    rule: Rule,
    status: Literal["firing", "resolved"],
    value: float,
    since: str,
    at: str,
    context: Mapping[str, str] | None,
) -> Alert:
    comparison: Literal["above", "below"] = "above" if rule.above is not None else "below"
    return Alert(rule.name, status, rule.severity, rule.metric, value, rule.threshold,
                 comparison, rule.windows, since, at, dict(context or {}))  # fmt: skip


def open_alerts(rules: list[Rule], state: AlertState) -> list[Rule]:
    """The rules whose alert is open (fired and not resolved)."""
    return [r for r in rules if state.rules.get(r.name, RuleState()).open]
