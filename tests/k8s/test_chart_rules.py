"""The chart's PrometheusRule under promtool: `check rules` (lint included) passes, and the unit tests of
chart_rules.test.yaml show each alert (the seed's QoE and delivery alerts, the RPC error-budget burn rates)
firing when it should and not otherwise; a threshold moved by values moves what fires."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from tests.k8s.chart import find, render
from tests.k8s.promtool import check_rules, rules_file, run_rule_tests
from tests.k8s.tools import K8sTools

TESTS = Path(__file__).parent / "chart_rules.test.yaml"
ALERTS = {
    "MarqueeVideoStartSlow",
    "MarqueeRebufferingHigh",
    "MarqueeCdnHitRatioLow",
    "MarqueeOriginEgressHigh",
    "MarqueeRpcErrorBudgetBurn",
}


def prometheus_rule(tools: K8sTools, values: dict[str, Any] | None = None, tmp: Path | None = None) -> dict[str, Any]:
    return find(render(tools, values=values, tmp=tmp), "PrometheusRule", "marquee")


def _rules_and_tests(tmp_path: Path, rule: dict[str, Any]) -> Path:
    rules_file(rule, tmp_path / "marquee.rules.yaml")
    return Path(shutil.copy(TESTS, tmp_path))


def test_the_rules_pass_promtool_check_with_lint(tools: K8sTools, tmp_path: Path) -> None:
    rule = prometheus_rule(tools)
    alerts = {r["alert"] for g in rule["spec"]["groups"] for r in g["rules"] if "alert" in r}
    assert alerts == ALERTS
    result = check_rules(tools.promtool, rules_file(rule, tmp_path / "marquee.rules.yaml"))
    assert result.ok, result.output
    assert "SUCCESS: 15 rules found" in result.output  # 4 seed alerts, 7 recorded ratios, 4 burn-rate alerts


def test_each_alert_fires_when_it_should_and_not_otherwise(tools: K8sTools, tmp_path: Path) -> None:
    result = run_rule_tests(tools.promtool, _rules_and_tests(tmp_path, prometheus_rule(tools)))
    assert result.ok, result.output
    assert "SUCCESS" in result.output
    names = TESTS.read_text()
    assert all(f"alertname: {alert}" in names for alert in ALERTS)


def test_thresholds_come_from_values(tools: K8sTools, tmp_path: Path) -> None:
    """A rebuffer threshold of 5% no longer fires at 3.3%: the unit test expecting it fails."""
    rule = prometheus_rule(tools, {"metrics": {"prometheusRule": {"rebufferRatio": 0.05}}}, tmp_path)
    result = run_rule_tests(tools.promtool, _rules_and_tests(tmp_path, rule))
    assert not result.ok
    assert "MarqueeRebufferingHigh" in result.output and "FAILED" in result.output
