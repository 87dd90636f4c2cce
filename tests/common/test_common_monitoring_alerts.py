"""Unit tests of common.monitoring.alerts: rule validation, loading rules files, evaluating a
window (fire after consecutive breaches, dedupe, resolve), the saved state, and the churn rules
file shipped with the project naming only metrics a monitoring run produces."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

import churn
from common.errors import UserError
from common.monitoring import performance
from common.monitoring.alerts import (
    Alert,
    AlertConfig,
    AlertState,
    Rule,
    RuleState,
    WebhookConfig,
    evaluate,
    open_alerts,
)
from common.monitoring.drift import detect_drift
from common.monitoring.profile import build_profile
from common.monitoring.run import batch_metrics

T0 = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
CONTEXT = {"project": "toy", "model": "v1"}


def window(i: int) -> datetime:
    """The time of the i-th window (hourly)."""
    return T0 + timedelta(hours=i)


def run_windows(
    rules: list[Rule], values: list[dict[str, float]], state: AlertState | None = None
) -> tuple[list[list[Alert]], AlertState]:
    """Evaluate one window per mapping of metrics; each window's alerts, and the final state."""
    state = state or AlertState()
    sent = []
    for i, metrics in enumerate(values):
        alerts, state = evaluate(rules, metrics, state, now=window(i), context=CONTEXT)
        sent.append(alerts)
    return sent, state


GOOD_YAML = """\
rules:
  - name: prediction-drift
    metric: drift.prediction_psi
    above: 0.25
    severity: critical
    windows: 2
    description: The scores moved.
  - name: auc-low
    metric: performance.roc_auc
    below: 0.7
sinks:
  log: false
  jsonl: history/alerts.jsonl
  webhook: {url: "http://127.0.0.1:9/hook", timeout_s: 2, retries: 1, backoff_s: 0.5}
"""


# -- rules ---------------------------------------------------------------------------------------


def test_a_rule_takes_exactly_one_bound() -> None:
    assert Rule(name="r", metric="m", above=1.0).threshold == 1.0
    assert Rule(name="r", metric="m", below=0.5).threshold == 0.5
    with pytest.raises(ValidationError, match="exactly one of `above` or `below`"):
        Rule(name="r", metric="m")
    with pytest.raises(ValidationError, match="exactly one of `above` or `below`"):
        Rule(name="r", metric="m", above=1.0, below=0.0)


def test_a_rule_needs_at_least_one_window_and_refuses_unknown_keys() -> None:
    with pytest.raises(ValidationError, match="windows"):
        Rule(name="r", metric="m", above=1.0, windows=0)
    with pytest.raises(ValidationError, match="threshold"):
        Rule.model_validate({"name": "r", "metric": "m", "above": 1.0, "threshold": 2})
    with pytest.raises(ValidationError, match="severity"):
        Rule(name="r", metric="m", above=1.0, severity="fatal")  # type: ignore[arg-type]


def test_a_rule_breaches_strictly_beyond_its_threshold() -> None:
    above = Rule(name="r", metric="m", above=0.25)
    below = Rule(name="r", metric="m", below=0.7)
    assert above.breached(0.3) and not above.breached(0.25) and not above.breached(0.1)
    assert below.breached(0.6) and not below.breached(0.7) and not below.breached(0.9)


def test_load_a_good_rules_file(tmp_path: Path) -> None:
    path = tmp_path / "alerts.yaml"
    path.write_text(GOOD_YAML)

    config = AlertConfig.load(path)

    drift, auc = config.rules
    assert (drift.name, drift.metric, drift.above, drift.below) == (
        "prediction-drift",
        "drift.prediction_psi",
        0.25,
        None,
    )
    assert (drift.severity, drift.windows, drift.description) == (
        "critical",
        2,
        "The scores moved.",
    )
    assert (auc.below, auc.severity, auc.windows) == (0.7, "warning", 1)  # the defaults
    assert config.sinks.log is False and config.sinks.jsonl == "history/alerts.jsonl"
    assert config.sinks.webhook == WebhookConfig(
        url="http://127.0.0.1:9/hook", timeout_s=2, retries=1, backoff_s=0.5
    )


def test_sinks_default_to_log_jsonl_and_a_webhook_from_the_environment(tmp_path: Path) -> None:
    path = tmp_path / "alerts.yaml"
    path.write_text("rules:\n  - {name: r, metric: m, above: 1}\n")

    sinks = AlertConfig.load(path).sinks

    assert sinks.log is True and sinks.jsonl == "alerts.jsonl"
    assert sinks.webhook is not None and sinks.webhook.url is None
    assert sinks.webhook.url_env == "MLP_ALERT_WEBHOOK_URL"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("rules: [name: r\n", "not valid YAML"),
        ("rules:\n  - {name: r, above: 1}\n", "rules.0.metric: Field required"),
        (
            "rules:\n  - {name: r, metric: a, above: 1}\n  - {name: r, metric: b, below: 1}\n",
            "rule names must be unique; repeated: r",
        ),
        ("rules:\n  - {name: r, metric: m, above: 1, windw: 2}\n", "rules.0.windw: Extra inputs"),
        ("rules:\n  - {name: r, metric: m}\n", "rules.0: Value error, give exactly one"),
        ("rules:\n  - {name: r, metric: m, above: 1, windows: 0}\n", "rules.0.windows"),
        ("rules: []\nsink: {}\n", "sink: Extra inputs"),
        ("rules: []\nsinks: {webhook: {retries: -1}}\n", "sinks.webhook.retries"),
        ("", "file: Input should be a valid dictionary"),
        ("sinks: {}\n", "rules: Field required"),
    ],
    ids=[
        "invalid-yaml",
        "missing-metric",
        "duplicate-names",
        "unknown-field",
        "no-bound",
        "zero-windows",
        "unknown-top-level",
        "negative-retries",
        "empty-file",
        "no-rules",
    ],
)
def test_a_bad_rules_file_is_a_user_error_naming_the_file_and_the_field(
    tmp_path: Path, text: str, expected: str
) -> None:
    path = tmp_path / "bad-alerts.yaml"
    path.write_text(text)

    with pytest.raises(UserError) as info:
        AlertConfig.load(path)

    message = str(info.value)
    assert message.startswith(f"{path}: ")
    assert expected in message


def test_a_missing_rules_file_is_a_user_error(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.yaml"
    with pytest.raises(UserError, match="cannot read the alert rules") as info:
        AlertConfig.load(path)
    assert str(path) in str(info.value)


def test_a_rules_file_that_is_not_utf8_is_a_user_error(tmp_path: Path) -> None:
    path = tmp_path / "alerts.yaml"
    path.write_bytes("rules:\n  - {name: dérive, metric: m, above: 1}\n".encode("latin-1"))
    with pytest.raises(UserError, match=str(path)):
        AlertConfig.load(path)


# -- evaluate ------------------------------------------------------------------------------------


def test_fires_once_after_the_required_consecutive_breaches() -> None:
    rule = Rule(name="drift", metric="psi", above=0.25, severity="critical", windows=3)

    sent, state = run_windows([rule], [{"psi": 0.3}, {"psi": 0.4}, {"psi": 0.5}, {"psi": 0.6}])

    assert [len(a) for a in sent] == [0, 0, 1, 0]  # fires on the third, not again on the fourth
    (alert,) = sent[2]
    assert (alert.rule, alert.status, alert.metric, alert.value) == ("drift", "firing", "psi", 0.5)
    assert (alert.threshold, alert.comparison, alert.windows) == (0.25, "above", 3)
    assert alert.since == alert.at == window(2).isoformat(timespec="seconds")
    assert alert.context == CONTEXT
    assert state.rules["drift"] == RuleState(
        streak=4, open=True, since=window(2).isoformat(timespec="seconds"), value=0.6
    )


def test_a_good_window_resets_the_streak() -> None:
    rule = Rule(name="drift", metric="psi", above=0.25, windows=2)

    sent, state = run_windows(
        [rule], [{"psi": 0.3}, {"psi": 0.1}, {"psi": 0.3}, {"psi": 0.1}, {"psi": 0.3}]
    )

    assert sent == [[], [], [], [], []]  # never two in a row
    assert state.rules["drift"].streak == 1 and not state.rules["drift"].open

    sent, state = run_windows([rule], [{"psi": 0.3}], state)
    assert [a.status for a in sent[0]] == ["firing"]  # the second in a row now


def test_an_open_alert_is_not_sent_again_while_still_breached() -> None:
    rule = Rule(name="drift", metric="psi", above=0.25)

    sent, state = run_windows([rule], [{"psi": 0.3}, {"psi": 0.9}, {"psi": 0.4}])

    assert [[a.status for a in alerts] for alerts in sent] == [["firing"], [], []]
    assert state.rules["drift"].open
    assert state.rules["drift"].value == 0.4  # the last value is still tracked
    assert open_alerts([rule], state) == [rule]


def test_the_first_good_window_resolves_once_with_when_it_fired() -> None:
    rule = Rule(name="drift", metric="psi", above=0.25, severity="critical", windows=2)

    sent, state = run_windows(
        [rule], [{"psi": 0.3}, {"psi": 0.3}, {"psi": 0.3}, {"psi": 0.05}, {"psi": 0.02}]
    )

    assert [[a.status for a in alerts] for alerts in sent] == [[], ["firing"], [], ["resolved"], []]
    (resolved,) = sent[3]
    assert resolved.since == window(1).isoformat(timespec="seconds")  # when it fired
    assert resolved.at == window(3).isoformat(timespec="seconds")
    assert resolved.value == 0.05 and resolved.severity == "critical"
    assert state.rules["drift"] == RuleState(streak=0, open=False, since=None, value=0.02)
    assert open_alerts([rule], state) == []


def test_a_below_rule_fires_under_its_threshold_and_resolves_above() -> None:
    rule = Rule(name="auc-low", metric="auc", below=0.7, severity="info")

    sent, _ = run_windows([rule], [{"auc": 0.8}, {"auc": 0.65}, {"auc": 0.6}, {"auc": 0.75}])

    assert [[a.status for a in alerts] for alerts in sent] == [[], ["firing"], [], ["resolved"]]
    firing = sent[1][0]
    assert (firing.comparison, firing.threshold, firing.severity) == ("below", 0.7, "info")


def test_a_metric_missing_from_a_window_leaves_the_rule_state_untouched() -> None:
    rule = Rule(name="auc-drop", metric="performance.roc_auc_drop", above=0.03, windows=2)
    other = {"drift.max_psi": 0.01}  # a window without labels: no performance metrics

    # A streak is neither advanced nor broken by a window without the metric.
    sent, state = run_windows([rule], [{"performance.roc_auc_drop": 0.05}, other])
    assert sent == [[], []] and state.rules["auc-drop"].streak == 1
    sent, state = run_windows([rule], [{"performance.roc_auc_drop": 0.05}], state)
    assert [a.status for a in sent[0]] == ["firing"]

    # An open alert is neither resolved nor sent again.
    before = state.model_copy(deep=True)
    sent, state = run_windows([rule], [other, other], state)
    assert sent == [[], []] and state == before

    # A rule never measured gets no state at all.
    sent, state = run_windows([rule], [other], AlertState())
    assert sent == [[]] and state.rules == {}


def test_rules_are_evaluated_independently_and_carry_their_severity() -> None:
    rules = [
        Rule(name="warn", metric="psi", above=0.1, severity="warning"),
        Rule(name="crit", metric="psi", above=0.25, severity="critical"),
        Rule(name="info", metric="rows", below=100, severity="info"),
    ]

    (alerts,), state = run_windows(rules, [{"psi": 0.3, "rows": 50.0}])
    assert {a.rule: a.severity for a in alerts} == {
        "warn": "warning",
        "crit": "critical",
        "info": "info",
    }

    (alerts,), state = run_windows(rules, [{"psi": 0.2, "rows": 50.0}], state)
    assert [(a.rule, a.status) for a in alerts] == [("crit", "resolved")]
    assert open_alerts(rules, state) == [rules[0], rules[2]]


def test_evaluate_returns_a_new_state_and_leaves_its_input_alone() -> None:
    rule = Rule(name="drift", metric="psi", above=0.25)
    state = AlertState(rules={"drift": RuleState(streak=0, open=False, value=0.1)})
    snapshot = state.model_copy(deep=True)

    alerts, next_state = evaluate([rule], {"psi": 0.5}, state, now=T0)

    assert [a.status for a in alerts] == ["firing"]
    assert next_state is not state
    assert next_state.rules["drift"] is not state.rules["drift"]
    assert state == snapshot  # the caller's state is unchanged
    assert next_state.rules["drift"].open and next_state.rules["drift"].streak == 1


def test_alert_text_names_the_rule_the_metric_and_the_value() -> None:
    rule = Rule(
        name="prediction-drift", metric="drift.prediction_psi", above=0.25, severity="critical"
    )
    ((firing,), (resolved,)), _ = run_windows(
        [rule], [{"drift.prediction_psi": 0.31234}, {"drift.prediction_psi": 0.0512}]
    )

    assert firing.text == (
        "CRITICAL prediction-drift: drift.prediction_psi = 0.3123, above 0.25 for 1 window(s) "
        "(project=toy model=v1)"
    )
    assert resolved.text.startswith("RESOLVED prediction-drift: drift.prediction_psi = 0.0512")
    assert "project=toy" in resolved.text
    assert json.loads(json.dumps(firing.to_dict()))["rule"] == "prediction-drift"


def test_open_alerts_lists_only_rules_with_an_open_alert() -> None:
    rules = [Rule(name=n, metric=n, above=0) for n in ("a", "b", "c")]
    state = AlertState(rules={"a": RuleState(open=True), "b": RuleState(streak=3)})
    assert open_alerts(rules, state) == [rules[0]]
    assert open_alerts(rules, AlertState()) == []


# -- state on disk -------------------------------------------------------------------------------


def test_state_round_trips_through_a_file(tmp_path: Path) -> None:
    rule = Rule(name="drift", metric="psi", above=0.25, windows=2)
    _, state = run_windows([rule], [{"psi": 0.3}, {"psi": 0.4}])
    path = tmp_path / "nested" / "state.json"

    state.save(path)

    assert AlertState.load(path) == state
    assert AlertState.load(path).rules["drift"].open
    assert [p.name for p in path.parent.iterdir()] == ["state.json"]  # no temporary left over


def test_a_missing_state_file_is_an_empty_state(tmp_path: Path) -> None:
    assert AlertState.load(tmp_path / "state.json") == AlertState()


@pytest.mark.parametrize("text", ["{not json", '{"rules": {"drift": {"streak": "many"}}}', "[]"])
def test_a_corrupt_state_file_is_a_user_error_naming_it(tmp_path: Path, text: str) -> None:
    path = tmp_path / "state.json"
    path.write_text(text)
    with pytest.raises(UserError, match="unreadable alert state") as info:
        AlertState.load(path)
    assert str(info.value).startswith(str(path))


# -- the churn rules -----------------------------------------------------------------------------


def test_the_churn_rules_load_and_name_only_metrics_a_run_produces() -> None:
    config = AlertConfig.load(Path(churn.__file__).with_name("alerts.yaml"))

    rng = np.random.default_rng(0)
    n = 1500

    def columns(seed: int) -> dict[str, np.ndarray]:
        r = np.random.default_rng(seed)
        return {
            "tenure": r.integers(0, 72, n).astype(float),
            "charges": r.normal(70, 20, n),
            "contract": r.choice(["monthly", "one-year", "two-year"], n, p=[0.5, 0.3, 0.2]),
        }

    scores = rng.beta(2, 5, n)
    labels = (rng.random(n) < scores).astype(int)
    threshold = 0.3
    profile = build_profile(
        columns(1),
        {"tenure": "numeric", "charges": "numeric", "contract": "category"},
        scores=scores,
        score_name="churn_probability",
        performance=performance.realised(labels, scores, threshold),
        estimated=performance.estimated(scores, threshold),
        threshold=threshold,
    )
    new_scores = rng.beta(2, 5, n)
    new_labels = (rng.random(n) < new_scores).astype(int)
    batch = columns(2)

    metrics = batch_metrics(
        profile, detect_drift(profile, batch, new_scores), new_scores, new_labels
    )

    assert config.rules, "the churn rules file has no rules"
    unknown = sorted({r.metric for r in config.rules} - set(metrics))
    assert not unknown, f"rules name metrics no run produces: {unknown}; known: {sorted(metrics)}"
    assert all(np.isfinite(metrics[r.metric]) for r in config.rules)
    # On data from the reference distribution, none of the shipped rules is in breach.
    assert [r.name for r in config.rules if r.breached(metrics[r.metric])] == []
