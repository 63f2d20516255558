"""How the rendered deployment scales: exactly one beat, workers that drain before they go, the
gateway's HPA, and KEDA's ScaledObject (checked against the JSON schema of its documented
fields this directory keeps) wired to GET /v1/queue."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from urllib.parse import urlsplit

import jsonschema
import pytest

from gateway.queue_status import QueueStatus
from tests.deploy.kustomize import (
    OVERLAYS,
    container,
    environment,
    find,
    one,
    pod_spec,
    render,
    workloads,
)

SCHEMA = json.loads(
    (Path(__file__).parent / "keda-scaledobject-v1alpha1.schema.json").read_text(encoding="utf-8")
)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_beat_is_exactly_one_pod_that_is_never_two_during_a_rollout(overlay: str) -> None:
    objects = render(overlay)
    beat = one(objects, "Deployment", "beat")
    assert beat["spec"]["replicas"] == 1
    assert beat["spec"]["strategy"] == {"type": "Recreate"}
    scalers = find(objects, "ScaledObject") + find(objects, "HorizontalPodAutoscaler")
    targets = [o["spec"]["scaleTargetRef"]["name"] for o in scalers]
    assert "beat" not in targets


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_a_stopping_worker_has_longer_than_the_longest_job(overlay: str) -> None:
    objects = render(overlay)
    worker = one(objects, "Deployment", "worker")
    env = environment(objects, container(objects, "worker"))
    limit = int(env["ONNXQ_TASK_TIME_LIMIT_SECONDS"])
    assert pod_spec(worker)["terminationGracePeriodSeconds"] > limit
    assert int(env["ONNXQ_TASK_SOFT_TIME_LIMIT_SECONDS"]) < limit
    # The reconciler judges lost jobs by the same limit: one value for every process.
    for name in ("gateway", "beat"):
        other = environment(objects, container(objects, name))
        assert other["ONNXQ_TASK_TIME_LIMIT_SECONDS"] == str(limit)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_image_is_named_by_a_tag_and_never_latest(overlay: str) -> None:
    for workload in workloads(render(overlay)):
        spec = pod_spec(workload)
        for found in spec["containers"] + spec.get("initContainers", []):
            name, _, tag = found["image"].rpartition(":")
            assert name and tag and tag != "latest", found["image"]


def test_dev_runs_one_pod_of_each_and_production_more() -> None:
    dev = render("dev")
    assert [one(dev, "Deployment", n)["spec"]["replicas"] for n in ("gateway", "worker")] == [1, 1]
    assert not find(dev, "HorizontalPodAutoscaler") and not find(dev, "ScaledObject")
    production = render("production")
    assert one(production, "Deployment", "worker")["spec"]["replicas"] == 3
    # The HPA owns the gateway's count: a `replicas` would reset it at every apply.
    assert "replicas" not in one(production, "Deployment", "gateway")["spec"]
    autoscaler = one(production, "HorizontalPodAutoscaler", "gateway")
    assert autoscaler["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "gateway",
    }
    assert autoscaler["spec"]["minReplicas"] >= 2
    [metric] = autoscaler["spec"]["metrics"]
    assert metric["resource"]["name"] == "cpu"


def test_the_scaled_object_is_valid_for_kedas_documented_fields() -> None:
    scaled = one(render("keda"), "ScaledObject", "worker")
    jsonschema.validate(scaled, SCHEMA)


def test_the_schema_refuses_a_misspelt_field() -> None:
    scaled = copy.deepcopy(one(render("keda"), "ScaledObject", "worker"))
    scaled["spec"]["minReplicas"] = 0  # HPA's name for it, not KEDA's
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(scaled, SCHEMA)


def test_keda_scales_the_workers_from_zero_on_the_first_outstanding_job() -> None:
    objects = render("keda")
    scaled = one(objects, "ScaledObject", "worker")["spec"]
    assert scaled["scaleTargetRef"]["name"] == "worker"
    assert scaled["minReplicaCount"] == 0 and scaled["maxReplicaCount"] > 1
    assert scaled["cooldownPeriod"] > 0 and scaled["pollingInterval"] > 0
    # KEDA's HPA owns the worker's count.
    assert "replicas" not in one(objects, "Deployment", "worker")["spec"]
    assert not find(objects, "HorizontalPodAutoscaler", "worker")

    [trigger] = scaled["triggers"]
    assert trigger["type"] == "metrics-api"
    metadata = trigger["metadata"]
    assert float(metadata["activationTargetValue"]) == 0  # active once one job is outstanding
    assert float(metadata["targetValue"]) >= 1
    assert metadata["valueLocation"] in QueueStatus.model_fields


def test_the_scaler_asks_the_gateway_service_with_a_key_the_gateway_accepts() -> None:
    objects = render("keda")
    [trigger] = one(objects, "ScaledObject", "worker")["spec"]["triggers"]
    url = urlsplit(trigger["metadata"]["url"])
    service = one(objects, "Service", "gateway")
    namespace = service["metadata"]["namespace"]
    assert url.hostname == f"gateway.{namespace}.svc.cluster.local"
    assert url.port == service["spec"]["ports"][0]["port"]
    assert url.path == "/v1/queue"

    # The route needs a key: sent as a header the gateway reads (gateway/auth.py) ...
    assert trigger["metadata"]["authMode"] == "apiKey"
    assert trigger["metadata"]["method"] == "header"
    assert trigger["metadata"]["keyParamName"] == "X-API-Key"
    # ... taken from the Secret key the gateway adds to its keys.
    auth = one(objects, "TriggerAuthentication", trigger["authenticationRef"]["name"])
    [ref] = auth["spec"]["secretTargetRef"]
    assert ref["parameter"] == "apiKey"
    gateway_env = environment(objects, container(objects, "gateway"))
    assert gateway_env["ONNXQ_API_KEYS"] == f"secret:{ref['name']}/{ref['key']}"
