"""promtool's checks of alerting rules, on the PrometheusRule example: `check rules` lints the rules and finds a
broken expression; `test rules` runs unit tests (an alert that fires, one that does not) and fails a wrong one."""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.k8s.conftest import EXAMPLES
from tests.k8s.promtool import check_rules, rules_file, run_rule_tests
from tests.k8s.tools import K8sTools
from tests.k8s.validate import load_documents


def prometheus_rule() -> dict[str, object]:
    [rule] = load_documents((EXAMPLES / "prometheusrule.yaml").read_text())
    return rule


def test_check_rules_accepts_the_example(tools: K8sTools, tmp_path: Path) -> None:
    rules = rules_file(prometheus_rule(), tmp_path / "rules.yaml")
    result = check_rules(tools.promtool, rules)
    assert result.ok, result.output
    assert "SUCCESS: 1 rules found" in result.output


def test_check_rules_rejects_a_broken_expression(tools: K8sTools, tmp_path: Path) -> None:
    rule = prometheus_rule()
    rule["spec"]["groups"][0]["rules"][0]["expr"] = "sum(rate(marquee_playback_stall_seconds_total[5m])"  # type: ignore[index]
    result = check_rules(tools.promtool, rules_file(rule, tmp_path / "rules.yaml"))
    assert not result.ok
    assert "unclosed left parenthesis" in result.output


def _tests_beside_rules(tmp_path: Path, rule: dict[str, object]) -> Path:
    rules_file(rule, tmp_path / "prometheusrule.rules.yaml")
    return Path(shutil.copy(EXAMPLES / "prometheusrule.test.yaml", tmp_path))


def test_the_alert_fires_when_it_should_and_not_otherwise(tools: K8sTools, tmp_path: Path) -> None:
    result = run_rule_tests(tools.promtool, _tests_beside_rules(tmp_path, prometheus_rule()))
    assert result.ok, result.output
    assert "SUCCESS" in result.output


def test_a_rule_that_misses_its_threshold_fails_its_tests(tools: K8sTools, tmp_path: Path) -> None:
    rule = prometheus_rule()
    groups = rule["spec"]["groups"]  # type: ignore[index]
    groups[0]["rules"][0]["expr"] = groups[0]["rules"][0]["expr"].replace("> 0.01", "> 0.05")
    result = run_rule_tests(tools.promtool, _tests_beside_rules(tmp_path, rule))
    assert not result.ok
    assert "MarqueeBufferingRatioHigh" in result.output and "FAILED" in result.output
