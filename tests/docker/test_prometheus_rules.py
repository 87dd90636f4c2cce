"""Checks of docker/prometheus: the alert rules, their promtool unit tests and the scrape config.

The YAML checks run everywhere (PyYAML only). The promtool checks need the `promtool` binary
(Debian's `prometheus` package carries it) and skip without it; promtool only reads files here,
nothing touches the network.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS_DIR = ROOT / "docker" / "prometheus"
ALERTS = PROMETHEUS_DIR / "alerts.yml"
ALERTS_TEST = PROMETHEUS_DIR / "alerts_test.yml"
CONFIG = PROMETHEUS_DIR / "prometheus.yml"

SEVERITIES = {"warning", "critical"}
EXPECTED_ALERTS = {
    "ModelApiDown",
    "HighErrorRate",
    "ClientErrorSpike",
    "HighLatencyP99",
    "ModelNotReady",
    "FeatureDriftMajor",
    "FeatureDriftWidespread",
    "PredictionDrift",
}


def _histogram(name: str) -> set[str]:
    return {f"{name}_bucket", f"{name}_sum", f"{name}_count"}


# What the services built on common/serving expose on /metrics, plus `up` from Prometheus.
KNOWN_METRICS = {
    "up",
    "http_requests_total",
    *_histogram("http_request_duration_seconds"),
    "model_predictions_total",
    *_histogram("model_prediction_score"),
    "model_info",
    "model_drift_window_rows",
    "model_feature_psi",
    "model_drifted_features_share",
    "model_prediction_psi",
}

# PromQL words that look like metric names: operators, modifiers, aggregation clauses.
_KEYWORDS = {
    "and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right",
    "bool", "offset", "atan2", "inf", "nan",
}  # fmt: skip
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_LABEL_LIST = re.compile(
    r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", re.IGNORECASE
)
_IDENT = re.compile(r"(?<![\w:.])([a-zA-Z_:][a-zA-Z0-9_:]*)(\s*\()?")


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects: identifiers left once strings, label
    matchers, range/offset durations and label lists are taken out, less function calls and
    keywords."""
    expr = _STRING.sub('""', expr)
    expr = re.sub(r"\{[^}]*\}", " ", expr)  # label matchers
    expr = re.sub(r"\[[^\]]*\]", " ", expr)  # range selectors ([5m], [5m:1m])
    expr = _LABEL_LIST.sub(" ", expr)
    expr = re.sub(r"\b\d+(?:\.\d+)?(?:e[+-]?\d+|[smhdwy]+)?\b", " ", expr)  # numbers, durations
    return {
        name for name, call in _IDENT.findall(expr) if not call and name.lower() not in _KEYWORDS
    }


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def alert_rules() -> list[dict[str, Any]]:
    groups = load_yaml(ALERTS)["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


@pytest.fixture(scope="module")
def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.skip(
            "promtool not found: apt-get install prometheus (Debian's package carries promtool)"
        )
    return path


def run_promtool(promtool: str, *args: str) -> None:
    result = subprocess.run(
        [promtool, *args], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, (
        f"promtool {' '.join(args)} exited {result.returncode}\n"
        f"--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
    )


def test_metric_names_parser() -> None:
    expr = (
        "histogram_quantile(0.99, sum by (job, le) (rate(http_request_duration_seconds_bucket"
        '{route="/predict", status=~"5.."}[5m]))) > 0.25 and on (job, instance) up offset 1h'
    )
    assert metric_names(expr) == {"http_request_duration_seconds_bucket", "up"}


def test_all_alerts_present() -> None:
    names = [rule["alert"] for rule in alert_rules()]
    assert len(names) == len(set(names)), f"duplicate alert names: {names}"
    assert set(names) == EXPECTED_ALERTS


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda rule: rule["alert"])
def test_alert_rule_is_complete(rule: dict[str, Any]) -> None:
    assert rule.get("labels", {}).get("severity") in SEVERITIES
    annotations = rule.get("annotations", {})
    assert annotations.get("summary"), "no summary annotation"
    assert annotations.get("description"), "no description annotation"
    assert rule.get("for"), "no `for:` duration: one bad evaluation would alert"


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda rule: rule["alert"])
def test_alert_uses_known_metrics(rule: dict[str, Any]) -> None:
    used = metric_names(rule["expr"])
    assert used, f"no metric found in {rule['expr']!r}"
    assert used <= KNOWN_METRICS, f"unknown metrics: {sorted(used - KNOWN_METRICS)}"


def test_every_alert_has_a_firing_unit_test() -> None:
    fired = {
        case["alertname"]
        for test in load_yaml(ALERTS_TEST)["tests"]
        for case in test.get("alert_rule_test", [])
        if case.get("exp_alerts")
    }
    assert EXPECTED_ALERTS - fired == set()


def test_promtool_check_rules(promtool: str) -> None:
    run_promtool(promtool, "check", "rules", str(ALERTS.relative_to(ROOT)))


def test_promtool_unit_tests(promtool: str) -> None:
    run_promtool(promtool, "test", "rules", str(ALERTS_TEST.relative_to(ROOT)))


def test_promtool_check_config(promtool: str) -> None:
    run_promtool(promtool, "check", "config", str(CONFIG.relative_to(ROOT)))
