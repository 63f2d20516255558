"""deploy/kubernetes rendered by kubectl's kustomize, every object checked against Kubernetes's
own JSON schemas (kubernetes-validate), and what the deployment promises: non-root pods on a
read-only root, probes, one durable Redis only onnxq reaches, shared volumes, disruption
budgets. No cluster and no network: the kubectl and the schemas come in wheels."""

from __future__ import annotations

import copy
import json
import re

import kubernetes_validate
import pytest

from tests.deploy.kustomize import (
    OVERLAYS,
    ROOT,
    container,
    environment,
    find,
    one,
    pod_spec,
    render,
    workloads,
)

# The newest Kubernetes whose schemas kubernetes-validate 1.37.0 bundles.
KUBERNETES_VERSION = "1.37.0"
KEDA_KINDS = {"ScaledObject", "TriggerAuthentication"}  # checked in test_kubernetes_scaling.py
ONNXQ = ("gateway", "worker", "beat")


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_object_is_valid_for_kubernetes_strictly(overlay: str) -> None:
    for found in render(overlay):
        if found["kind"] in KEDA_KINDS:
            continue
        # strict: a field Kubernetes does not know (a typo) is an error, not ignored.
        kubernetes_validate.validate(found, KUBERNETES_VERSION, strict=True)


def test_the_validator_refuses_a_misspelt_field() -> None:
    gateway = copy.deepcopy(one(render("production"), "Deployment", "gateway"))
    gateway["spec"]["replica"] = 2
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(gateway, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_container_runs_unprivileged_on_a_read_only_root(overlay: str) -> None:
    for workload in workloads(render(overlay)):
        spec = pod_spec(workload)
        pod = spec.get("securityContext", {})
        assert spec.get("automountServiceAccountToken") is False
        for found in spec["containers"] + spec.get("initContainers", []):
            context = found["securityContext"]
            name = f"{workload['metadata']['name']}/{found['name']}"
            assert context.get("runAsNonRoot", pod.get("runAsNonRoot")) is True, name
            assert context.get("runAsUser", pod.get("runAsUser")) not in (None, 0), name
            assert context["readOnlyRootFilesystem"] is True, name
            assert context["allowPrivilegeEscalation"] is False, name
            assert context["capabilities"]["drop"] == ["ALL"], name
        for found in spec["containers"]:  # each gets a writable /tmp of its own
            tmp = [m for m in found["volumeMounts"] if m["mountPath"] == "/tmp"]
            volumes = {v["name"]: v for v in spec["volumes"]}
            assert tmp and "emptyDir" in volumes[tmp[0]["name"]], found["name"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_container_has_cpu_and_memory_requests_and_limits(overlay: str) -> None:
    for workload in workloads(render(overlay)):
        spec = pod_spec(workload)
        for found in spec["containers"] + spec.get("initContainers", []):
            for bound in ("requests", "limits"):
                assert set(found["resources"][bound]) >= {"cpu", "memory"}, found["name"]


def test_a_worker_pod_is_one_process_whose_limit_holds_a_million_row_job() -> None:
    objects = render("production")
    worker = container(objects, "worker")
    # Celery's default concurrency is the node's CPU count, not the pod's limit.
    assert environment(objects, worker)["ONNXQ_WORKER_CONCURRENCY"] == "1"
    assert worker["resources"]["limits"] == {"cpu": "2", "memory": "1536Mi"}  # peak < 1 GB
    assert container(objects, "gateway")["resources"]["limits"] == {"cpu": "1", "memory": "1Gi"}


def _image_healthcheck(dockerfile: str) -> list[str]:
    """The exec form of the last HEALTHCHECK of a Dockerfile (the default target's)."""
    text = (ROOT / dockerfile).read_text(encoding="utf-8")
    *_, command = re.findall(r"HEALTHCHECK[^\n]*\\\n\s*CMD (\[.*\])", text)
    return list(json.loads(command))


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_probes_are_the_gateways_routes_and_the_worker_images_healthcheck(overlay: str) -> None:
    objects = render(overlay)
    gateway = container(objects, "gateway")
    ports = {p["name"]: p["containerPort"] for p in gateway["ports"]}
    assert gateway["livenessProbe"]["httpGet"]["path"] == "/health"
    assert gateway["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert ports[gateway["readinessProbe"]["httpGet"]["port"]] == 8000
    assert environment(objects, gateway)["ONNXQ_GATEWAY_PORT"] == "8000"

    healthcheck = _image_healthcheck("Dockerfile.worker")
    assert healthcheck == ["python", "-m", "worker.healthcheck"]
    worker = container(objects, "worker")
    assert worker["livenessProbe"]["exec"]["command"] == healthcheck
    assert worker["startupProbe"]["exec"]["command"] == healthcheck
    beat = container(objects, "beat")
    assert beat["livenessProbe"]["exec"]["command"] == [*healthcheck, "--beat"]


@pytest.mark.parametrize("overlay", ["dev", "production", "keda", "model-image"])
def test_redis_keeps_an_aof_on_its_own_claim_and_only_onnxq_reaches_it(overlay: str) -> None:
    objects = render(overlay)
    redis = one(objects, "StatefulSet", "redis")
    assert redis["spec"]["replicas"] == 1
    args = " ".join(pod_spec(redis)["containers"][0]["args"])
    assert "--appendonly yes" in args and "--maxmemory-policy noeviction" in args
    [claim] = redis["spec"]["volumeClaimTemplates"]
    mounts = {m["name"]: m["mountPath"] for m in pod_spec(redis)["containers"][0]["volumeMounts"]}
    assert f"--dir {mounts[claim['metadata']['name']]}" in args

    policy = one(objects, "NetworkPolicy", "redis")
    labels = redis["spec"]["template"]["metadata"]["labels"]
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= labels.items()
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    [rule] = policy["spec"]["ingress"]
    [peer] = rule["from"]
    expressions = {e["key"]: e["values"] for e in peer["podSelector"]["matchExpressions"]}
    assert sorted(expressions["app.kubernetes.io/component"]) == sorted(ONNXQ)
    for name in ONNXQ:  # their pods carry the labels the policy lets in
        pod_labels = one(objects, "Deployment", name)["spec"]["template"]["metadata"]["labels"]
        assert all(pod_labels[key] in values for key, values in expressions.items())
    assert environment(objects, container(objects, "worker"))["ONNXQ_REDIS_URL"] == (
        "redis://redis:6379/0"
    )


def test_the_external_redis_overlay_has_no_redis_and_takes_the_url_from_a_secret() -> None:
    objects = render("external-redis")
    assert not find(objects, "StatefulSet")
    assert not [o for o in objects if o["metadata"]["name"] == "redis"]
    assert "ONNXQ_REDIS_URL" not in one(objects, "ConfigMap", "onnxq-config")["data"]
    for name in ONNXQ:
        env = environment(objects, container(objects, name))
        assert env["ONNXQ_REDIS_URL"] == "secret:onnxq-redis/url", name


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_gateways_and_workers_share_the_state_volume_that_holds_the_blob_store(
    overlay: str,
) -> None:
    objects = render(overlay)
    claims = {}
    for name in ONNXQ:
        spec = pod_spec(one(objects, "Deployment", name))
        env = environment(objects, container(objects, name))
        assert "ONNXQ_BLOB_DIR" not in env  # so the blob store is <state_dir>/blobs
        [mount] = [
            m
            for m in container(objects, name)["volumeMounts"]
            if m["mountPath"] == env["ONNXQ_STATE_DIR"]
        ]
        [volume] = [v for v in spec["volumes"] if v["name"] == mount["name"]]
        claims[name] = volume["persistentVolumeClaim"]["claimName"]
    assert len(set(claims.values())) == 1
    state = one(objects, "PersistentVolumeClaim", claims["gateway"])
    expected = ["ReadWriteOnce"] if overlay == "dev" else ["ReadWriteMany"]
    assert state["spec"]["accessModes"] == expected


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_gateway_reads_its_api_keys_from_a_mounted_secret(overlay: str) -> None:
    objects = render(overlay)
    gateway = container(objects, "gateway")
    keys_file = environment(objects, gateway)["ONNXQ_API_KEYS_FILE"]
    volumes = {v["name"]: v for v in pod_spec(one(objects, "Deployment", "gateway"))["volumes"]}
    [mount] = [m for m in gateway["volumeMounts"] if keys_file.startswith(m["mountPath"] + "/")]
    secret = volumes[mount["name"]]["secret"]
    assert secret["secretName"] == "onnxq-api-keys"
    file_name = keys_file.removeprefix(mount["mountPath"] + "/")
    assert [item["path"] for item in secret["items"]] == [file_name]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_disruption_budgets_cover_the_gateway_and_worker_pods(overlay: str) -> None:
    objects = render(overlay)
    for name in ("gateway", "worker"):
        budget = one(objects, "PodDisruptionBudget", name)
        labels = one(objects, "Deployment", name)["spec"]["template"]["metadata"]["labels"]
        assert budget["spec"]["selector"]["matchLabels"].items() <= labels.items()
        assert budget["spec"]["maxUnavailable"] == 1


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_prometheus_scrapes_the_gateway_and_the_workers_metrics_port(overlay: str) -> None:
    objects = render(overlay)
    for name, port in (("gateway", "ONNXQ_GATEWAY_PORT"), ("worker", "ONNXQ_WORKER_METRICS_PORT")):
        deployment = one(objects, "Deployment", name)
        env = environment(objects, container(objects, name))
        annotations = deployment["spec"]["template"]["metadata"]["annotations"]
        assert annotations["prometheus.io/scrape"] == "true"
        assert annotations["prometheus.io/path"] == "/metrics"
        assert annotations["prometheus.io/port"] == env[port]
    worker_env = environment(objects, container(objects, "worker"))
    assert worker_env["ONNXQ_WORKER_METRICS_HOST"] == "0.0.0.0"


def test_models_from_an_image_are_copied_into_an_empty_dir_before_the_pods_start() -> None:
    objects = render("model-image")
    assert not find(objects, "PersistentVolumeClaim", "onnxq-models")
    for name in ("gateway", "worker"):
        spec = pod_spec(one(objects, "Deployment", name))
        [init] = spec["initContainers"]
        assert init["image"] == "ghcr.io/OWNER/onnxq-demo-model:set-to-the-git-sha"
        models = {v["name"]: v for v in spec["volumes"]}["models"]
        assert set(models) == {"name", "emptyDir"}
        assert {m["name"]: m["mountPath"] for m in init["volumeMounts"]} == {"models": "/models"}
        [mount] = [m for m in container(objects, name)["volumeMounts"] if m["name"] == "models"]
        assert mount["readOnly"] is True
        assert environment(objects, container(objects, name))["ONNXQ_MODEL_DIR"] == "/models"
