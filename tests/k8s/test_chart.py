"""charts/marquee checked as a cluster would: `helm lint --strict` and `helm template` of its three CI values sets,
its values schema, every rendered object against the Kubernetes 1.37 schemas and the real API server's dry run
(restricted Pod Security enforced on the namespace), and what the chart promises: the config checksum rolls pods,
network policies admit only callers, every pod is restricted, secrets never reach a ConfigMap, the rendered TOML
is what every service validates, generated keys survive an upgrade."""

from __future__ import annotations

import base64
import json
import re
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from services.common.config import load_config
from tests.k8s.apiserver import Cluster
from tests.k8s.chart import (
    CHART,
    CI_VALUES,
    NAMESPACE,
    RenderError,
    config_toml,
    dump,
    find,
    of_kind,
    pod_specs,
    render,
)
from tests.k8s.helm import _helm, lint
from tests.k8s.tools import KUBE_VERSION, K8sTools
from tests.k8s.validate import validate_objects

SERVICES = ("accounts", "catalog", "playback", "recommendations", "steering", "encoder")
RESTRICTED = {
    "pod-security.kubernetes.io/enforce": "restricted",
    "pod-security.kubernetes.io/warn": "restricted",
}


@pytest.fixture(scope="module")
def rendered(tools: K8sTools) -> dict[str, list[dict[str, Any]]]:
    return {name: render(tools, [path]) for name, path in CI_VALUES.items()}


@pytest.fixture(scope="module")
def namespace(cluster: Cluster) -> str:
    """The release's namespace in the session's API server, enforcing the restricted Pod Security Standard."""
    if cluster.kubectl("get", "namespace", NAMESPACE, check=False).returncode != 0:
        cluster.kubectl("create", "namespace", NAMESPACE)
    cluster.kubectl("label", "--overwrite", "namespace", NAMESPACE, *(f"{k}={v}" for k, v in RESTRICTED.items()))
    return NAMESPACE


def test_the_ci_values_sets_are_the_three_promised() -> None:
    assert sorted(CI_VALUES) == ["default", "external", "minimal"]


@pytest.mark.parametrize("values", sorted(CI_VALUES))
def test_lint_strict(tools: K8sTools, values: str) -> None:
    linted = lint(tools.helm, CHART, [CI_VALUES[values]])
    assert linted.ok, linted.stdout + linted.stderr
    assert "0 chart(s) failed" in linted.stdout


@pytest.mark.parametrize("values", sorted(CI_VALUES))
def test_every_object_passes_the_1_37_schemas_strictly(rendered: dict[str, list[dict[str, Any]]], values: str) -> None:
    report = validate_objects(rendered[values])
    assert report.ok, "\n".join(report.problems)
    assert len(report.checked) > 25
    kinds = {name.split("/")[0] for name in report.checked}
    assert {"Deployment", "StatefulSet", "Service", "ConfigMap", "Job"} <= kinds


@pytest.mark.parametrize("values", sorted(CI_VALUES))
def test_the_api_server_accepts_every_object(
    cluster: Cluster, namespace: str, rendered: dict[str, list[dict[str, Any]]], values: str
) -> None:
    applied = cluster.dry_run(dump(rendered[values]), namespace)
    assert applied.accepted, applied.stderr
    assert "would violate PodSecurity" not in applied.stderr, applied.stderr
    created = applied.stdout.splitlines()
    assert len(created) == len(rendered[values])
    assert all(line.endswith("(server dry run)") for line in created), applied.stdout


def test_the_operators_resources_are_rendered_by_default(rendered: dict[str, list[dict[str, Any]]]) -> None:
    kinds = {o["kind"] for o in rendered["default"]}
    assert {"ScyllaCluster", "ServiceMonitor", "PrometheusRule", "NetworkPolicy", "Ingress"} <= kinds
    external = {o["kind"] for o in rendered["external"]}
    assert "ScyllaCluster" not in external
    assert not [o for o in rendered["external"] if o["metadata"]["name"].endswith("-redis")]


@pytest.mark.parametrize(
    ("setting", "complaint"),
    [
        ("accounts.replicaCount=two", "/accounts/replicaCount': got string, want integer"),
        ("catalog.replicas=3", "additional properties 'replicas' not allowed"),
        ("redis.appendfsync=sometimes", "/redis/appendfsync"),
        ("gateway.port=0", "/gateway/port"),
        ("store.consistency=local_quorum", "/store/consistency"),
    ],
)
def test_the_values_schema_rejects(tools: K8sTools, setting: str, complaint: str) -> None:
    key, _, value = setting.partition("=")
    with pytest.raises(RenderError) as refused:
        render(tools, set_values={key: value})
    assert complaint in str(refused.value)


def _leaves(values: Any, prefix: str = "") -> Iterator[str]:
    free = {"commonLabels", "annotations", "podAnnotations", "nodeSelector", "affinity", "resources", "labels"}
    if isinstance(values, dict) and values and prefix.rsplit(".", 1)[-1] not in free:
        for key, value in values.items():
            yield from _leaves(value, f"{prefix}.{key}" if prefix else key)
    else:
        yield prefix


def test_every_value_is_documented_and_in_the_schema() -> None:
    text = (CHART / "values.yaml").read_text()
    documented = set(re.findall(r"^\s*## @param (\S+) \S", text, flags=re.M))
    leaves = set(_leaves(yaml.safe_load(text)))
    undocumented = {
        leaf for leaf in leaves if leaf not in documented and not any(leaf.startswith(d + ".") for d in documented)
    }
    assert not undocumented
    assert not {d for d in documented if d not in leaves and not any(leaf.startswith(d + ".") for leaf in leaves)}
    schema = json.loads((CHART / "values.schema.json").read_text())
    assert schema["$schema"] == "http://json-schema.org/draft-07/schema#"
    for path in documented:
        node = schema
        for key in path.split("."):
            node = node["properties"][key]
        assert node.get("description"), path


def _checksums(objects: list[dict[str, Any]]) -> dict[str, str]:
    return {
        f"{o['kind']}/{o['metadata']['name']}": o["spec"]["template"]["metadata"]["annotations"]["checksum/config"]
        for o in objects
        if o["kind"] in ("Deployment", "StatefulSet") and not o["metadata"]["name"].endswith("-redis")
    }


def test_a_config_change_changes_every_checksum_and_nothing_else_does(tools: K8sTools) -> None:
    before = _checksums(render(tools))
    assert before == _checksums(render(tools))  # generated secrets differ between renders: not in the checksum
    after = _checksums(render(tools, set_values={"config.logLevel": "DEBUG"}))
    assert set(before) == set(after) and len(before) == 9  # 7 Deployments, edges and shields
    assert all(before[k] != after[k] for k in before)
    replicas = _checksums(render(tools, set_values={"catalog.replicaCount": "5"}))
    assert replicas == before


def _ingress_rules(objects: list[dict[str, Any]], component: str) -> list[dict[str, Any]]:
    policy = find(objects, "NetworkPolicy", f"marquee-{component}")
    assert policy["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == component
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    return list(policy["spec"]["ingress"])


def _admitted(rule: dict[str, Any]) -> set[str]:
    """Who a rule admits: components by pod selector, "namespaces" for a namespace selector, "world" for none."""
    if "from" not in rule:
        return {"world"}
    who = set()
    for peer in rule["from"]:
        if "podSelector" in peer:
            who.add(peer["podSelector"]["matchLabels"]["app.kubernetes.io/component"])
        else:
            who.add("namespaces")
    return who


def _ports(rule: dict[str, Any]) -> set[int]:
    return {p["port"] for p in rule["ports"]}


def test_network_policies_admit_only_callers(rendered: dict[str, list[dict[str, Any]]]) -> None:
    objects = rendered["default"]
    catalog = _ingress_rules(objects, "catalog")
    grpc = [r for r in catalog if 50052 in _ports(r)]
    assert len(grpc) == 1 and _admitted(grpc[0]) == {"gateway", "playback", "recommendations"}
    assert all("world" not in _admitted(r) for r in catalog)  # the world never reaches the catalog
    assert [_ports(r) for r in catalog if "namespaces" in _admitted(r)] == [{9464}]  # Prometheus: metrics only
    for service, callers in {
        "accounts": {"gateway", "playback"},  # playback: downloads check their devices
        "encoder": {"gateway", "playback"},  # playback: the licence service reads content keys
        "steering": {"gateway", "playback", "edge", "shield"},
    }.items():
        rules = _ingress_rules(objects, service)
        assert [_admitted(r) for r in rules if _ports(r) - {9464} and "world" not in _admitted(r)] == [callers]
    # from outside: the gateway, playback's and steering's manifests (HTTP), the edges; never their gRPC ports
    outside = {c: [_ports(r) for r in _ingress_rules(objects, c) if "world" in _admitted(r)] for c in SERVICES}
    outside["gateway"] = [_ports(r) for r in _ingress_rules(objects, "gateway") if "world" in _admitted(r)]
    outside["edge"] = [_ports(r) for r in _ingress_rules(objects, "edge") if "world" in _admitted(r)]
    assert outside == {
        "accounts": [],
        "catalog": [],
        "playback": [{8096}],
        "recommendations": [],
        "steering": [{8095}],
        "encoder": [],
        "gateway": [{8080}],
        "edge": [{8081}],
    }
    assert [_admitted(r) for r in _ingress_rules(objects, "shield") if 8090 in _ports(r)] == [{"edge"}]
    [redis] = find(objects, "NetworkPolicy", "marquee-redis")["spec"]["ingress"]
    assert "world" not in _admitted(redis) and "namespaces" not in _admitted(redis) and "edge" not in _admitted(redis)


def test_the_ingress_controller_selector_narrows_outside_traffic(tools: K8sTools, tmp_path: Path) -> None:
    selector = {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}
    objects = render(tools, values={"networkPolicy": {"ingressControllerSelector": selector}}, tmp=tmp_path)
    [rule] = [r for r in _ingress_rules(objects, "gateway") if 8080 in _ports(r)]
    assert rule["from"] == [{"namespaceSelector": selector}]


@pytest.mark.parametrize("values", sorted(CI_VALUES))
def test_every_pod_is_restricted(rendered: dict[str, list[dict[str, Any]]], values: str) -> None:
    specs = dict(pod_specs(rendered[values]))
    assert len(specs) >= 9
    for name, spec in specs.items():
        pod = spec["securityContext"]
        assert pod["runAsNonRoot"] is True and pod["runAsUser"] == 10001 and pod["fsGroup"] == 10001, name
        assert pod["seccompProfile"] == {"type": "RuntimeDefault"}, name
        assert spec["automountServiceAccountToken"] is False, name
        for container in spec["containers"]:
            ctx = container["securityContext"]
            assert ctx["allowPrivilegeEscalation"] is False, name
            assert ctx["readOnlyRootFilesystem"] is True, name
            assert ctx["capabilities"] == {"drop": ["ALL"]}, name
            if container["image"].startswith("marquee"):
                mounts = {m["mountPath"] for m in container["volumeMounts"]}
                assert {"/tmp", "/var/cache/marquee", "/var/lib/marquee", "/etc/marquee"} <= mounts, name


@pytest.mark.parametrize("values", ["default", "minimal"])
def test_pods_spread_over_zones_unless_turned_off(rendered: dict[str, list[dict[str, Any]]], values: str) -> None:
    """Every service's pods spread over zones (each constraint selecting that service's own pods); the minimal
    values set turns it off."""
    deployments = of_kind(rendered[values], "Deployment")
    assert len(deployments) >= 7
    for deployment in deployments:
        name, spec = deployment["metadata"]["name"], deployment["spec"]
        constraints = spec["template"]["spec"].get("topologySpreadConstraints", [])
        if values == "minimal":
            assert constraints == [], name
            continue
        [zone] = constraints
        assert (zone["topologyKey"], zone["maxSkew"]) == ("topology.kubernetes.io/zone", 1), name
        assert zone["labelSelector"]["matchLabels"] == spec["selector"]["matchLabels"], name


def test_an_existing_secret_replaces_the_generated_keys(tools: K8sTools, tmp_path: Path) -> None:
    """``secrets.existingSecret``: no keys Secret is rendered, and every key reaches the pods from the named one."""

    def key_refs(objects: list[dict[str, Any]]) -> set[str]:
        env = [e for _, spec in pod_specs(objects) for c in spec["containers"] for e in c.get("env", [])]
        return {e["valueFrom"]["secretKeyRef"]["name"] for e in env if "secretKeyRef" in e.get("valueFrom", {})}

    generated = render(tools)
    assert "marquee-keys" in {s["metadata"]["name"] for s in of_kind(generated, "Secret")}
    assert "marquee-keys" in key_refs(generated)
    mine = render(tools, values={"secrets": {"existingSecret": "my-keys"}}, tmp=tmp_path)
    assert "marquee-keys" not in {s["metadata"]["name"] for s in of_kind(mine, "Secret")}
    refs = key_refs(mine)
    assert "my-keys" in refs and "marquee-keys" not in refs


def _secret_values(objects: list[dict[str, Any]]) -> list[str]:
    return [base64.b64decode(v).decode() for s in of_kind(objects, "Secret") for v in s.get("data", {}).values()]


def test_secrets_never_reach_a_config_map(tools: K8sTools, tmp_path: Path) -> None:
    values = yaml.safe_load(CI_VALUES["external"].read_text())
    values["externalScylla"].update(existingSecret="", password="cql-password-that-must-stay-secret")
    values["externalRedis"].update(existingSecret="", password="redis-password-that-must-stay-secret")
    values["secrets"]["existingSecret"] = ""
    for objects in (render(tools, values=values, tmp=tmp_path), render(tools)):
        secrets = _secret_values(objects)
        assert len(secrets) >= 4 and all(len(s) >= 32 for s in secrets)
        config_maps = json.dumps([c["data"] for c in of_kind(objects, "ConfigMap")])
        assert not [s for s in secrets if s in config_maps]
        assert "password" not in config_toml(objects).replace("existingSecretPasswordKey", "")
        # ... and they reach the pods only as secretKeyRef environment variables
        env = [e for _, spec in pod_specs(objects) for c in spec["containers"] for e in c.get("env", [])]
        assert not [e for e in env if "value" in e and e["value"] in secrets]


def test_each_component_holds_only_the_keys_it_uses(rendered: dict[str, list[dict[str, Any]]]) -> None:
    held = {}
    for name, spec in pod_specs(rendered["default"]):
        [container] = spec["containers"]
        refs = [
            e["valueFrom"]["secretKeyRef"]["key"]
            for e in container.get("env", [])
            if "secretKeyRef" in e.get("valueFrom", {})
        ]
        held[name.split("/")[1].removeprefix("marquee-")] = sorted(refs)
    assert held["edge"] == ["auth-signing-key", "edge-fill-key", "url-signing-key"]
    assert held["shield"] == ["auth-signing-key", "edge-fill-key"]
    assert held["playback"] == ["auth-signing-key", "redis-password", "url-signing-key"]
    assert held["catalog"] == ["auth-signing-key", "redis-password"]
    assert held["gateway"] == ["redis-password"]
    assert "edge-fill-key" not in held["steering"] + held["playback"] + held["encoder"]
    assert held["encoder"] == ["auth-signing-key", "content-master-key", "redis-password"]
    assert [n for n, keys in held.items() if "content-master-key" in keys] == ["encoder"], "only encoders wrap keys"
    assert held["redis"] == ["redis-password"]


def test_the_rendered_toml_is_what_every_service_reads(
    rendered: dict[str, list[dict[str, Any]]], tmp_path: Path
) -> None:
    from services.accounts.config import AccountsConfig
    from services.catalog.config import CatalogConfig
    from services.encoder.config import EncoderConfig
    from services.gateway.config import GatewayConfig
    from services.playback.config import PlaybackConfig
    from services.recommendations.config import RecommendationsConfig
    from services.steering.config import SteeringConfig

    models: dict[str, Any] = {
        "accounts": AccountsConfig,
        "catalog": CatalogConfig,
        "playback": PlaybackConfig,
        "recommendations": RecommendationsConfig,
        "steering": SteeringConfig,
        "encoder": EncoderConfig,
        "gateway": GatewayConfig,
    }
    for values, objects in rendered.items():
        path = tmp_path / f"{values}.toml"
        path.write_text(config_toml(objects))
        config = load_config(path)
        assert (config.store.kind, config.bus.kind, config.limits.kind, config.state.kind) == ("cql", *["redis"] * 3)
        assert config.metrics.host == "0.0.0.0" and config.metrics.port == 9464
        assert config.service("encoder", EncoderConfig).lease_seconds == 30
        for name, model in models.items():
            section = config.service(name, model)
            port = section.http.port if name == "gateway" else section.server.port
            deployment = find(objects, "Deployment", f"marquee-{name}")
            ports = {
                p["name"]: p["containerPort"] for p in deployment["spec"]["template"]["spec"]["containers"][0]["ports"]
            }
            assert ports["grpc" if name != "gateway" else "http"] == port
        assert set(config.addresses) == set(SERVICES)
        for name, address in config.addresses.items():
            service = find(objects, "Service", f"marquee-{name}")
            assert service["spec"]["clusterIP"] == "None"  # headless: dns:/// resolves every ready pod
            assert (
                address == f"dns:///marquee-{name}.{NAMESPACE}.svc.cluster.local:{service['spec']['ports'][0]['port']}"
            )
        gateway = config.service("gateway", GatewayConfig)
        assert set(gateway.routes.values()) == set(config.addresses.values())
        assert config.service("playback", PlaybackConfig).positions == "redis"


def test_the_toml_follows_the_values(rendered: dict[str, list[dict[str, Any]]]) -> None:
    default = tomllib.loads(config_toml(rendered["default"]))
    assert default["store"]["cql"]["contact_points"] == [f"marquee-scylla-client.{NAMESPACE}.svc.cluster.local:9042"]
    assert default["redis"]["url"] == f"redis://marquee-redis.{NAMESPACE}.svc.cluster.local:6379/0"
    assert default["services"]["playback"]["http"]["public_url"] == "http://marquee.example.com"
    external = tomllib.loads(config_toml(rendered["external"]))
    cql = external["store"]["cql"]
    assert cql["contact_points"][0] == "scylla-0.db.example.internal:9042" and cql["local_dc"] == "eu-west"
    assert cql["datacenters"] == {"eu-west": 3} and cql["username"] == "marquee"
    assert external["redis"]["url"] == "rediss://redis.cache.example.internal:6380/0"
    for service in ("playback", "steering", "gateway"):
        assert external["services"][service]["http"]["public_url"] == "https://watch.example.com"
    minimal = tomllib.loads(config_toml(rendered["minimal"]))
    assert minimal["services"]["accounts"]["demo"]["enabled"] is True
    assert minimal["services"]["gateway"]["http"]["public_url"] == "http://localhost:8080"


def test_protection_reaches_the_encoders_with_the_master_key_of_the_secret(
    tools: K8sTools, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from services.encoder.config import EncoderConfig
    from services.encoder.keys import MasterKeys

    objects = render(tools, set_values={"encoder.protection": "cenc"})
    path = tmp_path / "marquee.toml"
    path.write_text(config_toml(objects))
    assert load_config(path).service("encoder", EncoderConfig).protection == "cenc"
    [encoder] = find(objects, "Deployment", "marquee-encoder")["spec"]["template"]["spec"]["containers"]
    [ref] = [e for e in encoder["env"] if e["name"] == "MARQUEE_CONTENT_KEYS__KEYS__K1"]
    assert ref["valueFrom"]["secretKeyRef"] == {"name": "marquee-keys", "key": "content-master-key"}
    secret = base64.b64decode(find(objects, "Secret", "marquee-keys")["data"]["content-master-key"]).decode()
    # what the encoder pod loads: the TOML's wrapping key id and the key from its environment
    monkeypatch.setenv("MARQUEE_CONTENT_KEYS__KEYS__K1", secret)
    config = load_config(path)
    assert config.content_keys.wrapping_kid == "k1"
    MasterKeys(config.content_keys)  # refuses (ConfigError) a wrapping key id without its key


def test_the_ingress_routes_the_players_paths(rendered: dict[str, list[dict[str, Any]]]) -> None:
    ingress = find(rendered["external"], "Ingress", "marquee")
    [rule] = ingress["spec"]["rules"]
    assert rule["host"] == "watch.example.com" and ingress["spec"]["ingressClassName"] == "nginx"
    paths = {p["path"]: p["backend"]["service"]["name"] for p in rule["http"]["paths"]}
    assert paths == {
        "/sessions/": "marquee-playback-http",
        "/downloads/": "marquee-playback-http",
        "/steering/": "marquee-steering-http",
        "/": "marquee-gateway",
    }
    assert ingress["spec"]["tls"] == [{"hosts": ["watch.example.com"], "secretName": "watch-example-com-tls"}]
    assert not of_kind(rendered["minimal"], "Ingress")


def test_edges_are_a_statefulset_with_a_disk_and_a_name_each(rendered: dict[str, list[dict[str, Any]]]) -> None:
    objects = rendered["external"]
    edges = find(objects, "StatefulSet", "marquee-edge")
    headless = find(objects, "Service", edges["spec"]["serviceName"])
    assert headless["spec"]["clusterIP"] == "None"
    assert edges["spec"]["replicas"] == 4
    [claim] = edges["spec"]["volumeClaimTemplates"]
    [container] = edges["spec"]["template"]["spec"]["containers"]
    assert {"name": "disk-tier", "mountPath": "/var/lib/marquee-edge"} in container["volumeMounts"]
    assert claim["metadata"]["name"] == "disk-tier"
    anti = edges["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"]
    assert anti["requiredDuringSchedulingIgnoredDuringExecution"][0]["topologyKey"] == "kubernetes.io/hostname"
    args = dict(a.removeprefix("--").split("=", 1) for a in container["args"] if "=" in a)
    assert args["name"] == "$(POD_NAME)" and args["public-url"] == "https://$(POD_NAME).cdn.example.com/v/"
    assert args["upstream"] == f"http://marquee-shield.{NAMESPACE}.svc.cluster.local:8090/v/"
    assert args["steering"] == tomllib.loads(config_toml(objects))["addresses"]["steering"]
    shield = find(objects, "StatefulSet", "marquee-shield")
    [shield_container] = shield["spec"]["template"]["spec"]["containers"]
    assert "--upstream=/srv/origin" in shield_container["args"]
    assert {"name": "origin", "mountPath": "/srv/origin", "readOnly": True} in shield_container["volumeMounts"]
    default = find(rendered["default"], "StatefulSet", "marquee-edge")
    [default_container] = default["spec"]["template"]["spec"]["containers"]
    assert (
        f"--public-url=http://$(POD_NAME).marquee-edges.{NAMESPACE}.svc.cluster.local:8081/v/"
        in default_container["args"]
    )


def test_a_long_release_name_cannot_make_edge_names_steering_refuses(tools: K8sTools) -> None:
    with pytest.raises(RenderError, match="pathway id of at most 32 characters"):
        render(tools, release="a-release-name-long-enough-to-matter")


def test_the_origin_is_shared_read_write_many_or_an_existing_claim(
    rendered: dict[str, list[dict[str, Any]]], tools: K8sTools
) -> None:
    claim = find(rendered["default"], "PersistentVolumeClaim", "marquee-origin")
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    mounts = {}
    for name, spec in pod_specs(rendered["default"]):
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        if "origin" in volumes:
            assert volumes["origin"]["persistentVolumeClaim"]["claimName"] == "marquee-origin"
            mounts[name] = volumes["origin"]["persistentVolumeClaim"].get("readOnly", False)
    assert mounts == {
        "Deployment/marquee-playback": True,
        "Deployment/marquee-encoder": False,
        "StatefulSet/marquee-shield": True,
    }
    existing = render(tools, set_values={"origin.persistence.existingClaim": "media"})
    assert not of_kind(existing, "PersistentVolumeClaim")
    encoder = find(existing, "Deployment", "marquee-encoder")["spec"]["template"]["spec"]
    assert {"name": "origin", "persistentVolumeClaim": {"claimName": "media"}} in encoder["volumes"]


def test_probes_are_grpc_health_on_the_service_port_and_toggle(tools: K8sTools) -> None:
    objects = render(tools, set_values={"catalog.probes.liveness.enabled": "false"})
    [catalog] = find(objects, "Deployment", "marquee-catalog")["spec"]["template"]["spec"]["containers"]
    assert "livenessProbe" not in catalog
    assert catalog["readinessProbe"]["grpc"] == {"port": 50052} and catalog["startupProbe"]["grpc"] == {"port": 50052}
    [accounts] = find(objects, "Deployment", "marquee-accounts")["spec"]["template"]["spec"]["containers"]
    assert accounts["livenessProbe"]["grpc"] == {"port": 50051}


def test_autoscaling_and_disruption_budgets_toggle(tools: K8sTools) -> None:
    objects = render(tools, set_values={"catalog.autoscaling.enabled": "true", "catalog.pdb.enabled": "false"})
    hpa = find(objects, "HorizontalPodAutoscaler", "marquee-catalog")
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "marquee-catalog"}
    assert "replicas" not in find(objects, "Deployment", "marquee-catalog")["spec"]  # the HPA owns it
    assert not [p for p in of_kind(objects, "PodDisruptionBudget") if p["metadata"]["name"] == "marquee-catalog"]
    assert find(objects, "Deployment", "marquee-accounts")["spec"]["replicas"] == 2


def test_encoders_scale_on_their_queue_with_keda(tools: K8sTools, cluster: Cluster, namespace: str) -> None:
    keda = {
        "encoder.autoscaling.enabled": "true",
        "encoder.autoscaling.keda.enabled": "true",
        "encoder.autoscaling.maxReplicas": "6",
        "externalScylla.existingSecret": "marquee-cql",
    }
    objects = render(tools, [CI_VALUES["external"]], keda)
    scaled = find(objects, "ScaledObject", "marquee-encoder")
    assert (scaled["spec"]["minReplicaCount"], scaled["spec"]["maxReplicaCount"]) == (1, 6)  # jobs are leased
    assert "strategy" not in find(objects, "Deployment", "marquee-encoder")["spec"]  # rolling: stops hand jobs back
    assert not of_kind(objects, "HorizontalPodAutoscaler")  # KEDA makes its own
    [trigger] = scaled["spec"]["triggers"]
    assert trigger["type"] == "cassandra"
    assert trigger["metadata"]["query"] == "SELECT COUNT(*) FROM marquee_encoding.queue WHERE shard = 'default'"
    assert trigger["metadata"]["clusterIPAddress"] == "scylla-0.db.example.internal"
    auth = find(objects, "TriggerAuthentication", "marquee-encoder-cql")
    assert auth["spec"]["secretTargetRef"] == [{"parameter": "password", "name": "marquee-cql", "key": "password"}]
    # the harness installs KEDA's ScaledObject CRD only: the API server checks the ScaledObject
    applied = cluster.dry_run(dump([scaled]), namespace)
    assert applied.accepted, applied.stderr
    with pytest.raises(RenderError, match="needs CQL credentials"):
        render(tools, set_values={"encoder.autoscaling.enabled": "true", "encoder.autoscaling.keda.enabled": "true"})


def test_migration_runs_before_upgrades_as_a_hook(rendered: dict[str, list[dict[str, Any]]]) -> None:
    for values, hooks in {"external": "pre-install,pre-upgrade", "default": "post-install,pre-upgrade"}.items():
        job = find(rendered[values], "Job", "marquee-migration")
        assert job["metadata"]["annotations"]["helm.sh/hook"] == hooks
        [container] = job["spec"]["template"]["spec"]["containers"]
        assert container["args"] == ["migrate"]
        config = find(rendered[values], "ConfigMap", "marquee-migration")
        assert config["metadata"]["annotations"]["helm.sh/hook"] == hooks
        assert config["data"]["marquee.toml"] == config_toml(rendered[values])


def test_redis_keeps_an_append_only_file(rendered: dict[str, list[dict[str, Any]]], tools: K8sTools) -> None:
    redis = find(rendered["default"], "StatefulSet", "marquee-redis")
    [container] = redis["spec"]["template"]["spec"]["containers"]
    args = container["args"]
    assert args[args.index("--appendonly") + 1] == "yes" and args[args.index("--appendfsync") + 1] == "everysec"
    assert "--requirepass" in args
    always = find(render(tools, set_values={"redis.appendfsync": "always"}), "StatefulSet", "marquee-redis")
    assert "always" in always["spec"]["template"]["spec"]["containers"][0]["args"]


def test_the_scylla_cluster_follows_the_values(rendered: dict[str, list[dict[str, Any]]]) -> None:
    scylla = find(rendered["minimal"], "ScyllaCluster", "marquee-scylla")
    assert scylla["spec"]["developerMode"] is True
    [rack] = scylla["spec"]["datacenter"]["racks"]
    assert rack["members"] == 1 and rack["storage"] == {"capacity": "10Gi"}


def test_generated_keys_are_kept_across_upgrades(tools: K8sTools, cluster: Cluster, namespace: str) -> None:
    existing = {
        "auth-signing-key": "a" * 48,
        "url-signing-key": "u" * 48,
        "edge-fill-key": "f" * 48,
        "content-master-key": "c" * 48,  # losing it would strand every protected title's keys
    }
    cluster.kubectl("delete", "secret", "marquee-keys", "-n", namespace, "--ignore-not-found")
    literals = [f"--from-literal={k}={v}" for k, v in existing.items()]
    cluster.kubectl("create", "secret", "generic", "marquee-keys", "-n", namespace, *literals)
    try:
        # what `helm upgrade` renders: lookup sees the release's Secret in the cluster
        out = _helm(
            tools.helm, "template", "marquee", str(CHART), "--namespace", namespace, "--kube-version", KUBE_VERSION,
            "--dry-run=server", "--kubeconfig", str(cluster.kubeconfig),
        )  # fmt: skip
        assert out.ok, out.stderr
        kept = find(yaml_documents(out.stdout), "Secret", "marquee-keys")["data"]
        assert {k: base64.b64decode(v).decode() for k, v in kept.items()} == existing
    finally:
        cluster.kubectl("delete", "secret", "marquee-keys", "-n", namespace)
    fresh = find(render(tools), "Secret", "marquee-keys")["data"]  # no release yet: new random keys
    assert len({base64.b64decode(v) for v in fresh.values()}) == 4


def yaml_documents(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if d]


def test_dashboards_are_config_maps_for_the_grafana_sidecar(rendered: dict[str, list[dict[str, Any]]]) -> None:
    dashboards = [c for c in of_kind(rendered["default"], "ConfigMap") if c["metadata"]["name"].endswith("-dashboard")]
    assert len(dashboards) == 4
    exprs = []
    for config_map in dashboards:
        assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
        [(name, text)] = config_map["data"].items()
        board = json.loads(text)
        assert name.endswith(".json") and board["panels"]
        exprs += [t["expr"] for p in board["panels"] for t in p["targets"]]
    text = "\n".join(exprs)
    for metric in (
        "marquee_playback_video_start_seconds_bucket",
        "marquee_playback_session_rebuffer_ratio_bucket",
        "marquee_playback_bitrate_bps_bucket",
        "marquee_playback_session_switches_bucket",
        "marquee_edge_cache_hit_bytes_total",
        "marquee_edge_sent_bytes_total",
        'grpc_method="SearchTitles"',
        "marquee_recommendations_clicks_total",
        "marquee_recommendations_impressions_total",
        "marquee_playback_completions_total",
        "marquee_playback_starts_total",
        "marquee_playback_profile_watch_seconds_bucket",
    ):
        assert metric in text, metric


def test_the_readme_lists_every_parameter() -> None:
    from scripts.chart_readme import render as readme

    text = (CHART / "README.md").read_text()
    assert readme(text, (CHART / "values.yaml").read_text()) == text, "run python scripts/chart_readme.py"


@pytest.mark.parametrize(
    ("settings", "says"),
    [
        ({}, "The player: http://marquee.example.com/"),
        (
            {"ingress.enabled": "false"},
            "kubectl --namespace marquee port-forward service/marquee-gateway 8080:8080",
        ),
    ],
)
def test_the_notes_say_where_the_player_is(
    tools: K8sTools, cluster: Cluster, namespace: str, settings: dict[str, str], says: str
) -> None:
    """`helm install --dry-run=server` against the API server: what a user reads after installing."""
    sets = [a for key, value in settings.items() for a in ("--set", f"{key}={value}")]
    out = _helm(
        tools.helm, "install", "marquee", str(CHART), "--namespace", namespace, "--dry-run=server",
        "--kubeconfig", str(cluster.kubeconfig), *sets,
    )  # fmt: skip
    assert out.ok, out.stderr
    notes = out.stdout[out.stdout.index("NOTES:") :]
    assert says in notes
    assert "set edge.publicUrlTemplate" in notes  # the default edge URLs are in-cluster names
    assert "http://$(POD_NAME).marquee-edges.marquee.svc.cluster.local:8081/v/" in notes  # what the edges register
