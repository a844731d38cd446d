"""The offline schema check (kubernetes-validate, Kubernetes 1.37, strict) finds what the chart could get wrong
in an object's shape, and leaves custom resources to the API server by name."""

from __future__ import annotations

from tests.k8s.conftest import EXAMPLES
from tests.k8s.validate import load_documents, validate_objects


def examples() -> list[dict[str, object]]:
    return [
        obj
        for f in sorted(EXAMPLES.glob("*.yaml"))
        if not f.name.endswith(".test.yaml")
        for obj in load_documents(f.read_text())
    ]


def test_the_examples_pass_and_custom_resources_are_set_aside() -> None:
    report = validate_objects(examples())
    assert report.ok, report.problems
    assert report.checked == ["Deployment/marquee-catalog"]
    assert sorted(report.custom) == [
        "PrometheusRule/marquee-qoe",
        "ScaledObject/marquee-encoder",
        "ScyllaCluster/marquee-scylla",
        "ServiceMonitor/marquee-catalog",
    ]


def test_an_unknown_field_is_a_problem_in_strict_mode() -> None:
    [deployment] = load_documents((EXAMPLES / "deployment.yaml").read_text())
    deployment["spec"]["template"]["spec"]["containers"][0]["securityContext"]["readOnlyRootFs"] = True
    report = validate_objects([deployment])
    assert not report.ok
    [problem] = report.problems
    assert problem.startswith("Deployment/marquee-catalog: ")
    assert "readOnlyRootFs" in problem
    assert "spec/template/spec/containers/0/securityContext" in problem


def test_a_wrong_type_is_a_problem() -> None:
    [deployment] = load_documents((EXAMPLES / "deployment.yaml").read_text())
    deployment["spec"]["replicas"] = "two"
    [problem] = validate_objects([deployment]).problems
    assert "'two' is not of type 'integer'" in problem and "(at spec/replicas)" in problem


def test_a_kind_the_schemas_do_not_know_is_a_problem_not_a_pass() -> None:
    unknown = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}
    [problem] = validate_objects([unknown]).problems
    assert problem.startswith("Widget/w: ") and "Couldn't find schema" in problem
