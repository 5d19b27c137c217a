"""Every overlay of deploy/ renders (without the kustomize binary), every object is valid against
the Kubernetes schemas (offline, strict: unknown fields fail), and the deployment's promises hold:
probes, resources, non-root, one NetworkPolicy per service that allows exactly the calls the
platform makes, migrations as Jobs, autoscalers and disruption budgets, Secrets defined in dev and
documented for prod, and settings that the services actually read."""

from __future__ import annotations

import functools
import json
import re

import kubernetes_validate
import pytest
from ops_kustomize import pod_specs, render

from kit.paths import REPO_ROOT, SCHEMAS
from kit.platform import DEFAULT_PORTS

DEPLOY = REPO_ROOT / "deploy"
OVERLAYS = ["dev", "prod"]
KUBERNETES_VERSION = "1.30"
SERVICES = ["availability", "booking", "payments", "notifications", "gateway"]
# Who calls whom over gRPC: the NetworkPolicies must allow exactly this.
CALLS = {
    "availability": set(),
    "booking": {"availability", "payments"},
    "payments": set(),
    "notifications": set(),
    "gateway": {"availability", "booking", "payments", "notifications"},
}


def _settings_class(service: str):
    module = __import__(f"{service}.config", fromlist=["x"])
    return next(v for k, v in vars(module).items() if k.endswith("Settings") and k != "ServiceSettings")


@functools.cache
def _rendered(name: str) -> str:
    return json.dumps(render(DEPLOY / "overlays" / name))


def rendered(name: str) -> list[dict]:
    """The overlay's objects (rendered once per process; each caller gets its own copy)."""
    return json.loads(_rendered(name))


@pytest.fixture(params=OVERLAYS)
def overlay(request) -> tuple[str, list[dict]]:
    return request.param, rendered(request.param)


def _of_kind(objects, kind) -> dict[str, dict]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


def _selects(selector: dict, labels: dict) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def _pod_labels(obj: dict) -> dict:
    return obj["spec"]["template"]["metadata"]["labels"]


def test_every_object_is_valid_against_the_kubernetes_schemas(overlay):
    name, objects = overlay
    assert objects, f"{name} rendered nothing"
    for obj in objects:
        try:
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as error:
            pytest.fail(f"{name}: {obj['kind']}/{obj['metadata']['name']}: {error.message} at {list(error.path)}")


def test_objects_are_unique_and_namespaced_in_reserva(overlay):
    _, objects = overlay
    keys = [(o["kind"], o["metadata"]["name"]) for o in objects]
    assert len(keys) == len(set(keys))
    assert all(o["metadata"].get("namespace") == "reserva" for o in objects if o["kind"] != "Namespace")


def test_each_service_is_one_deployment_and_service_named_after_it(overlay):
    _, objects = overlay
    assert set(_of_kind(objects, "Deployment")) == set(SERVICES)
    services = _of_kind(objects, "Service")
    for service in SERVICES:
        assert services[service]["spec"]["selector"] == {"app": service}
        assert [p["port"] for p in services[service]["spec"]["ports"]] == [DEFAULT_PORTS[service]]


def test_every_deployment_has_probes_resources_and_a_grace_longer_than_the_service_drain(overlay):
    _, objects = overlay
    config_maps = _of_kind(objects, "ConfigMap")
    for name, deployment in _of_kind(objects, "Deployment").items():
        spec = pod_specs(deployment)[0]
        (container,) = spec["containers"]
        for probe in ("readinessProbe", "livenessProbe"):
            if name == "gateway":
                assert container[probe]["httpGet"]["path"] == "/healthz"
            else:
                assert container[probe]["grpc"]["port"] == DEFAULT_PORTS[name], (name, probe)
        for bound in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(container["resources"][bound]), (name, bound)
        drain_s = float(config_maps[name]["data"][f"{name.upper()}_SHUTDOWN_GRACE_S"])
        assert spec["terminationGracePeriodSeconds"] > drain_s
        assert container["args"] == [name]


def test_every_container_runs_as_a_non_root_user_without_privilege_escalation(overlay):
    _, objects = overlay
    workloads = [o for o in objects if pod_specs(o)]
    assert {o["kind"] for o in workloads} >= {"Deployment", "Job"}
    for obj in workloads:
        for spec in pod_specs(obj):
            pod = spec.get("securityContext", {})
            for container in spec["containers"]:
                context = {**pod, **container.get("securityContext", {})}
                where = f"{obj['kind']}/{obj['metadata']['name']}/{container['name']}"
                assert context.get("runAsNonRoot") is True, where
                assert context.get("runAsUser", 0) != 0, where
                assert context.get("allowPrivilegeEscalation") is False, where
                assert "ALL" in context.get("capabilities", {}).get("drop", []), where


def test_each_service_has_a_migration_job_and_no_deployment_migrates(overlay):
    _, objects = overlay
    jobs = _of_kind(objects, "Job")
    for service in SERVICES:
        job = jobs[f"{service}-migrate"]
        (container,) = pod_specs(job)[0]["containers"]
        assert container["args"] == ["migrate", service]
        assert pod_specs(job)[0]["restartPolicy"] in ("Never", "OnFailure")
        env = {e["name"] for e in container["env"]}
        assert f"RESERVA_{SCHEMAS[service][1].upper()}_PASSWORD" in env  # the role it migrates as
    for deployment in _of_kind(objects, "Deployment").values():
        assert "migrate" not in pod_specs(deployment)[0]["containers"][0]["args"]


def test_every_deployment_has_an_autoscaler_and_a_disruption_budget(overlay):
    _, objects = overlay
    autoscalers = {
        h["spec"]["scaleTargetRef"]["name"]: h for h in _of_kind(objects, "HorizontalPodAutoscaler").values()
    }
    budgets = list(_of_kind(objects, "PodDisruptionBudget").values())
    for name, deployment in _of_kind(objects, "Deployment").items():
        assert "replicas" not in deployment["spec"], "the autoscaler owns the replica count"
        assert autoscalers[name]["spec"]["scaleTargetRef"]["kind"] == "Deployment"
        spec = autoscalers[name]["spec"]
        assert spec["minReplicas"] >= 1 and spec["minReplicas"] <= spec["maxReplicas"]
        assert any(_selects(b["spec"]["selector"]["matchLabels"], _pod_labels(deployment)) for b in budgets), name


def _policies_for(objects, labels) -> list[dict]:
    policies = _of_kind(objects, "NetworkPolicy").values()
    return [p for p in policies if _selects(p["spec"]["podSelector"].get("matchLabels", {}), labels)]


def test_all_traffic_is_denied_unless_a_policy_allows_it(overlay):
    _, objects = overlay
    deny = _of_kind(objects, "NetworkPolicy")["default-deny-all"]["spec"]
    assert deny["podSelector"] == {} and set(deny["policyTypes"]) == {"Ingress", "Egress"}
    assert "ingress" not in deny and "egress" not in deny


def test_each_service_has_its_own_network_policy_allowing_exactly_its_calls(overlay):
    _, objects = overlay
    deployments = _of_kind(objects, "Deployment")
    callers = {s: {c for c, peers in CALLS.items() if s in peers} for s in CALLS}
    for name, deployment in deployments.items():
        own = [p for p in _policies_for(objects, _pod_labels(deployment)) if p["metadata"]["name"] == name]
        assert own, f"{name} has no NetworkPolicy of its own"
        spec = own[0]["spec"]
        allowed_in = {
            peer["podSelector"]["matchLabels"]["app"]
            for rule in spec.get("ingress", [])
            for peer in rule.get("from", [])
            if "podSelector" in peer
        }
        assert allowed_in == callers[name], name
        allowed_out = {
            peer["podSelector"]["matchLabels"]["app"]
            for rule in spec.get("egress", [])
            for peer in rule.get("to", [])
            if "podSelector" in peer
        }
        assert allowed_out == CALLS[name], name
        # No other policy opens a service to pods or namespaces.
        for policy in _policies_for(objects, _pod_labels(deployment)):
            if policy is not own[0]:
                assert not policy["spec"].get("ingress"), (name, policy["metadata"]["name"])
                for rule in policy["spec"].get("egress", []):
                    assert {p["port"] for p in rule["ports"]} <= {53, 5432, 6379}, policy["metadata"]["name"]


def test_only_the_gateway_is_reachable_from_outside(overlay):
    _, objects = overlay
    for service in _of_kind(objects, "Service").values():
        assert service["spec"].get("type", "ClusterIP") == "ClusterIP", service["metadata"]["name"]
    backends = {
        path["backend"]["service"]["name"]
        for ingress in _of_kind(objects, "Ingress").values()
        for rule in ingress["spec"]["rules"]
        for path in rule["http"]["paths"]
    }
    assert backends == {"gateway"}
    gateway_in = _of_kind(objects, "NetworkPolicy")["gateway"]["spec"]["ingress"]
    assert all("namespaceSelector" in peer for rule in gateway_in for peer in rule["from"])
    for name in SERVICES[:-1]:
        rules = _of_kind(objects, "NetworkPolicy")[name]["spec"].get("ingress", [])
        assert all("namespaceSelector" not in peer and "ipBlock" not in peer for r in rules for peer in r["from"])


def _env_sources(objects):
    for obj in objects:
        for spec in pod_specs(obj):
            for container in spec["containers"]:
                yield obj, container


def test_every_referenced_config_map_key_exists(overlay):
    _, objects = overlay
    config_maps = _of_kind(objects, "ConfigMap")
    for obj, container in _env_sources(objects):
        for source in container.get("envFrom", []):
            assert source["configMapRef"]["name"] in config_maps, obj["metadata"]["name"]
        for var in container.get("env", []):
            ref = var.get("valueFrom", {}).get("configMapKeyRef")
            if ref:
                assert ref["key"] in config_maps[ref["name"]]["data"], (obj["metadata"]["name"], var["name"])


def _secret_refs(objects) -> set[tuple[str, str, bool]]:
    refs = set()
    for _, container in _env_sources(objects):
        for var in container.get("env", []):
            ref = var.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                refs.add((ref["name"], ref["key"], bool(ref.get("optional"))))
    return refs


def test_dev_defines_every_secret_it_uses_and_prod_defines_none_but_documents_them():
    dev = rendered("dev")
    secrets = {name: s.get("stringData", {}) for name, s in _of_kind(dev, "Secret").items()}
    for name, key, optional in _secret_refs(dev):
        assert optional or key in secrets.get(name, {}), (name, key)
    prod = rendered("prod")
    assert not _of_kind(prod, "Secret"), "prod must not carry credentials"
    runbook = (DEPLOY / "RUNBOOK.md").read_text()
    for name, _, _ in _secret_refs(prod):
        generic = re.sub(r"reserva-(\w+)-db", "reserva-<service>-db", name)
        assert generic in runbook or name in runbook, f"RUNBOOK.md does not say how to create Secret {name}"


def test_dev_service_credentials_match_the_roles_provisioning_creates():
    dev = rendered("dev")
    secrets = _of_kind(dev, "Secret")
    for service, (_, role, _) in SCHEMAS.items():
        data = secrets[f"reserva-{service}-db"]["stringData"]
        assert data["url"].startswith(f"postgresql+asyncpg://{role}:{data['password']}@")


def test_every_service_setting_in_the_manifests_is_one_the_service_reads(overlay):
    _, objects = overlay
    config_maps = _of_kind(objects, "ConfigMap")
    for name, deployment in _of_kind(objects, "Deployment").items():
        fields = set(_settings_class(name).model_fields)
        prefix = f"{name.upper()}_"
        (container,) = pod_specs(deployment)[0]["containers"]
        names = [v["name"] for v in container["env"]]
        for source in container["envFrom"]:
            names += list(config_maps[source["configMapRef"]["name"]]["data"])
        for variable in names:
            if variable.startswith(prefix):
                assert variable[len(prefix) :].lower() in fields, f"{name} does not read {variable}"


def test_dev_runs_postgres_with_the_default_lock_table_and_redis_in_cluster_while_prod_uses_managed_ones():
    dev = _of_kind(rendered("dev"), "StatefulSet")
    assert set(dev) == {"postgres", "redis"}
    assert "max_locks_per_transaction=64" in pod_specs(dev["postgres"])[0]["containers"][0]["args"]
    assert not _of_kind(rendered("prod"), "StatefulSet")


def test_the_image_runs_as_a_non_root_user_with_a_health_check_and_a_service_selecting_entry_point():
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    final_stage = dockerfile.rsplit("\nFROM ", 1)[1]
    user = re.search(r"^USER (\S+)", final_stage, re.M).group(1)
    assert user.split(":")[0].isdigit() and int(user.split(":")[0]) != 0
    assert re.search(r"^HEALTHCHECK .*\n?.*healthcheck\.py", final_stage, re.M)
    assert re.search(r'^ENTRYPOINT \["python", "/app/deploy/docker/entrypoint\.py"\]', final_stage, re.M)
    for copied in re.findall(r"^COPY (?!--from)(\S+)", dockerfile, re.M):
        assert (REPO_ROOT / copied).exists(), copied


def test_the_operators_lock_toolbox_pod_is_valid_and_non_root():
    from ops_kustomize import load_documents

    (pod,) = load_documents(DEPLOY / "ops" / "locks-toolbox.yaml")
    kubernetes_validate.validate(pod, KUBERNETES_VERSION, strict=True)
    (container,) = pod["spec"]["containers"]
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    # The datastores policy lets it reach PostgreSQL; nothing may reach it.
    assert pod["metadata"]["labels"]["app.kubernetes.io/part-of"] == "reserva"


def test_in_prod_the_links_the_gateway_hands_out_point_at_its_ingress():
    objects = rendered("prod")
    [ingress] = _of_kind(objects, "Ingress").values()
    hosts = {rule["host"] for rule in ingress["spec"]["rules"]}
    tls_hosts = {host for entry in ingress["spec"].get("tls", []) for host in entry["hosts"]}
    public = _of_kind(objects, "ConfigMap")["gateway"]["data"]["GATEWAY_PUBLIC_BASE_URL"]
    assert public.startswith("https://") and public.removeprefix("https://").rstrip("/") in hosts & tls_hosts
