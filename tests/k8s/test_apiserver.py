"""The real API server accepts what a cluster would accept and rejects what it would reject, for core objects and
for the custom resources of the chart's operators (their CRDs installed from the operators' Go modules)."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml

from tests.k8s.apiserver import Cluster
from tests.k8s.conftest import EXAMPLES
from tests.k8s.validate import load_documents


def example(name: str) -> dict[str, Any]:
    [obj] = load_documents((EXAMPLES / name).read_text())
    return obj


def manifest(*objects: dict[str, Any]) -> str:
    return yaml.safe_dump_all(objects, sort_keys=False)


def test_a_valid_deployment_is_accepted_and_nothing_is_stored(cluster: Cluster) -> None:
    result = cluster.dry_run(manifest(example("deployment.yaml")))
    assert result.accepted, result.stderr
    assert "deployment.apps/marquee-catalog created (server dry run)" in result.stdout
    # a dry run leaves nothing behind
    found = cluster.kubectl("get", "deployment", "marquee-catalog", check=False)
    assert found.returncode != 0 and "NotFound" in found.stderr


def test_a_selector_that_does_not_match_the_pod_labels_is_rejected(cluster: Cluster) -> None:
    deployment = example("deployment.yaml")
    deployment["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"] = "search"
    result = cluster.dry_run(manifest(deployment))
    assert not result.accepted
    assert "`selector` does not match template `labels`" in result.stderr


def test_an_invalid_name_is_rejected(cluster: Cluster) -> None:
    deployment = example("deployment.yaml")
    deployment["metadata"]["name"] = "Marquee_Catalog"
    result = cluster.dry_run(manifest(deployment))
    assert not result.accepted
    assert "a lowercase RFC 1123 subdomain" in result.stderr


def test_an_unknown_field_is_rejected(cluster: Cluster) -> None:
    deployment = example("deployment.yaml")
    deployment["spec"]["replica"] = 3  # a typo of replicas
    result = cluster.dry_run(manifest(deployment))
    assert not result.accepted
    assert 'unknown field "spec.replica"' in result.stderr


def test_restricted_pod_security_holds_for_the_chart_style_pod_and_not_without_it(cluster: Cluster) -> None:
    """In a namespace enforcing the restricted Pod Security Standard, the API server warns about a workload
    whose pods would be refused; the chart-style securityContext passes without a warning."""
    cluster.create_namespace("restricted")
    cluster.kubectl("label", "--overwrite", "namespace", "restricted", "pod-security.kubernetes.io/enforce=restricted")
    compliant = cluster.dry_run(manifest(example("deployment.yaml")), namespace="restricted")
    assert compliant.accepted, compliant.stderr
    assert "would violate PodSecurity" not in compliant.stderr

    loose = example("deployment.yaml")
    del loose["spec"]["template"]["spec"]["containers"][0]["securityContext"]
    result = cluster.dry_run(manifest(loose), namespace="restricted")
    assert 'would violate PodSecurity "restricted:latest"' in result.stderr
    assert "allowPrivilegeEscalation != false" in result.stderr


CUSTOM_RESOURCES = {
    "scyllacluster.yaml": "scyllacluster.scylla.scylladb.com/marquee-scylla",
    "servicemonitor.yaml": "servicemonitor.monitoring.coreos.com/marquee-catalog",
    "prometheusrule.yaml": "prometheusrule.monitoring.coreos.com/marquee-qoe",
    "scaledobject.yaml": "scaledobject.keda.sh/marquee-encoder",
}


@pytest.mark.parametrize(("name", "created"), CUSTOM_RESOURCES.items())
def test_the_operators_custom_resources_are_accepted(cluster: Cluster, name: str, created: str) -> None:
    result = cluster.dry_run(manifest(example(name)))
    assert result.accepted, result.stderr
    assert f"{created} created (server dry run)" in result.stdout


def _break(obj: dict[str, Any], path: tuple[str | int, ...], value: object) -> dict[str, Any]:
    broken = copy.deepcopy(obj)
    node: Any = broken
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return broken


@pytest.mark.parametrize(
    ("name", "path", "value", "reported"),
    [
        (
            "scyllacluster.yaml",
            ("spec", "datacenter", "racks", 0, "members"),
            "three",
            "spec.datacenter.racks[0].members",
        ),
        ("servicemonitor.yaml", ("spec", "endpoints"), "metrics", "spec.endpoints"),
        ("prometheusrule.yaml", ("spec", "groups", 0, "rules", 0, "for"), "ten minutes", "spec.groups[0].rules[0].for"),
        ("scaledobject.yaml", ("spec", "scaleTargetRef"), None, "spec.scaleTargetRef"),
    ],
)
def test_the_crd_schemas_are_enforced(
    cluster: Cluster, name: str, path: tuple[str | int, ...], value: object, reported: str
) -> None:
    result = cluster.dry_run(manifest(_break(example(name), path, value)))
    assert not result.accepted, result.stdout
    assert reported in result.stderr
