"""helm from the tools cache renders for Kubernetes 1.37, enforces a chart's values schema, and what it renders
goes through the same checks the chart will: the 1.37 schemas offline and the real API server's dry run."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.k8s.apiserver import Cluster
from tests.k8s.conftest import EXAMPLES
from tests.k8s.helm import lint, template
from tests.k8s.tools import KUBE_VERSION, K8sTools
from tests.k8s.validate import load_documents, validate_objects

SCHEMA = {
    "$schema": "https://json-schema.org/draft-07/schema#",
    "type": "object",
    "properties": {"replicas": {"type": "integer", "minimum": 1}},
    "required": ["replicas"],
}


@pytest.fixture
def chart(tmp_path: Path) -> Path:
    """A small chart: the example Deployment with its replicas from values, and the Kubernetes version helm
    renders for in an annotation."""
    root = tmp_path / "demo"
    (root / "templates").mkdir(parents=True)
    (root / "Chart.yaml").write_text(
        "apiVersion: v2\nname: demo\ndescription: the harness's test chart\nversion: 0.1.0\nicon: https://example.com/icon.svg\n"
    )
    (root / "values.yaml").write_text("## @param replicas Number of catalog replicas\nreplicas: 2\n")
    (root / "values.schema.json").write_text(json.dumps(SCHEMA))
    deployment = (EXAMPLES / "deployment.yaml").read_text()
    deployment = deployment.replace("  replicas: 2\n", "  replicas: {{ .Values.replicas }}\n")
    deployment = deployment.replace(
        "  name: marquee-catalog\n",
        "  name: marquee-catalog\n  annotations:\n    rendered-for: {{ .Capabilities.KubeVersion.Version | quote }}\n",
        1,
    )
    (root / "templates" / "deployment.yaml").write_text(deployment)
    shutil.copy(EXAMPLES / "servicemonitor.yaml", root / "templates")
    return root


def test_helm_is_the_pinned_version(tools: K8sTools) -> None:
    out = subprocess.run([str(tools.helm), "version", "--short"], capture_output=True, text=True, check=True)
    assert out.stdout.startswith("v3.22.0")


def test_a_chart_renders_for_1_37_and_passes_the_schemas_and_the_api_server(
    tools: K8sTools, cluster: Cluster, chart: Path
) -> None:
    linted = lint(tools.helm, chart)
    assert linted.ok, linted.stdout + linted.stderr
    rendered = template(tools.helm, chart, set_values={"replicas": "3"})
    assert rendered.ok, rendered.stderr
    objects = load_documents(rendered.stdout)
    [deployment] = [o for o in objects if o["kind"] == "Deployment"]
    assert deployment["spec"]["replicas"] == 3
    assert deployment["metadata"]["annotations"]["rendered-for"] == f"v{KUBE_VERSION}"
    report = validate_objects(objects)
    assert report.ok and report.custom == ["ServiceMonitor/marquee-catalog"], report
    applied = cluster.dry_run(rendered.stdout)
    assert applied.accepted, applied.stderr


def test_the_values_schema_rejects_a_wrong_type(tools: K8sTools, chart: Path) -> None:
    rendered = template(tools.helm, chart, set_values={"replicas": "three"})
    assert not rendered.ok
    assert "replicas" in rendered.stderr and "integer" in rendered.stderr
    linted = lint(tools.helm, chart, set_values={"replicas": "0"})
    assert not linted.ok
