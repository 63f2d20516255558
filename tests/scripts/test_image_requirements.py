"""Each image installs pyproject's pins minus what its processes never import, and they never do."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "image_requirements", ROOT / "scripts" / "image_requirements.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


image_requirements = _load_script()

GATEWAY_PROCESS = """
import json, runpy, sys
runpy.run_path("gateway/gunicorn_conf.py")
import gunicorn.app.wsgiapp, gunicorn.workers.ggevent
from gateway import create_app
client = create_app({"TESTING": True}).test_client()
row = [0.5] * 30
answers = [
    client.post("/v1/models/breast-cancer/predict", json={"instances": [row]}).status_code,
    client.post("/v2/models/breast-cancer/infer", json={"inputs": [
        {"name": "input", "shape": [1, 30], "datatype": "FP32", "data": row}]}).status_code,
    client.post("/v1/models/breast-cancer/jobs", json={"instances": [row]}).status_code,
    client.get("/ready").status_code,
    client.get("/openapi.json").status_code,
    client.get("/docs").status_code,
    client.get("/docs/static/swagger-ui.css").status_code,
]
print(json.dumps({"answers": answers, "modules": sorted(sys.modules)}))
"""

WORKER_PROCESS = """
import json, sys
import celery.apps.worker, celery.concurrency.prefork, celery.apps.beat
import worker.__main__, worker.beat, worker.healthcheck, worker.schedule
from onnxq.settings import Settings
from worker.app import create_worker_app
app = create_worker_app(Settings())
print(json.dumps({"tasks": sorted(app.tasks), "modules": sorted(sys.modules)}))
"""


def _run(code: str, tmp_path: Path, model_dir: Path) -> dict:
    env = {
        **os.environ,
        "ONNXQ_MODEL_DIR": str(model_dir),
        "ONNXQ_PREDICTION_LOG_DIR": str(tmp_path / "predictions"),
        "ONNXQ_STATE_DIR": str(tmp_path / "state"),
        "ONNXQ_REDIS_URL": "redis://127.0.0.1:1/0",  # nothing listens: no real Redis is touched
        "ONNXQ_ALLOW_UNAUTHENTICATED": "true",
    }
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


# Namespace packages that several distributions share: a module under one is its second level's
# (`backports.zstd` is backports.zstd's, `backports.tarfile` another distribution's).
NAMESPACES = {"backports"}


def _distributions(modules: list[str]) -> set[str]:
    owners = importlib.metadata.packages_distributions()
    top_levels = {module.partition(".")[0] for module in modules}
    found = {
        image_requirements.canonical_name(distribution)
        for top_level in top_levels - NAMESPACES
        for distribution in owners.get(top_level, [])
    }
    shared = {".".join(m.split(".")[:2]) for m in modules if m.partition(".")[0] in NAMESPACES}
    return found | {image_requirements.canonical_name(name) for name in shared if "." in name}


def test_the_gateway_image_leaves_out_pandas_and_keeps_every_other_pin() -> None:
    requirements = image_requirements.image_requirements("gateway", ROOT / "pyproject.toml")
    assert not any(r.startswith("pandas") for r in requirements)
    assert "onnxruntime==1.31.1" in requirements
    assert "celery[redis]==5.7.0" in requirements


def test_the_worker_image_leaves_out_the_http_stack() -> None:
    names = {
        image_requirements.canonical_name(r)
        for r in image_requirements.image_requirements("worker", ROOT / "pyproject.toml")
    }
    assert names.isdisjoint({"flask", "flask-swagger-ui", "gunicorn", "gevent", "werkzeug"})
    assert {"pandas", "onnxruntime", "celery"} <= names


def test_the_flower_image_takes_celery_and_the_monitoring_extra_only() -> None:
    requirements = image_requirements.image_requirements("flower", ROOT / "pyproject.toml")
    assert [image_requirements.canonical_name(r) for r in requirements] == [
        "celery",
        "kombu",
        "redis",
        "flower",
    ]


def test_the_demo_model_is_trained_with_the_worker_set_and_the_export_extra() -> None:
    pyproject = ROOT / "pyproject.toml"
    requirements = image_requirements.image_requirements("demo-model", pyproject)
    worker = image_requirements.image_requirements("worker", pyproject)
    assert requirements[: len(worker)] == worker
    assert "skl2onnx==1.20.0" in requirements
    assert "protobuf==6.33.6" in requirements


def test_a_left_out_package_missing_from_pyproject_fails_the_build(tmp_path: Path) -> None:
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text('[project]\ndependencies = ["numpy==2.4.6"]\n')
    with pytest.raises(ValueError, match="pandas"):
        image_requirements.image_requirements("gateway", pyproject)


def test_an_unknown_image_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown image"):
        image_requirements.image_requirements("scheduler", ROOT / "pyproject.toml")


def test_the_gateway_serves_every_route_kind_without_loading_what_its_image_leaves_out(
    tmp_path: Path, model_dir: Path
) -> None:
    seen = _run(GATEWAY_PROCESS, tmp_path, model_dir)
    # predict and infer 200; the job and /ready 503 (no Redis); OpenAPI, its page and files 200.
    assert seen["answers"] == [200, 200, 503, 503, 200, 200, 200]
    loaded = _distributions(seen["modules"])
    assert {"numpy", "onnxruntime", "flask"} <= loaded  # the check sees distributions at all
    assert loaded.isdisjoint(image_requirements.LEFT_OUT["gateway"])


def test_the_worker_and_beat_load_without_what_their_image_leaves_out(
    tmp_path: Path, model_dir: Path
) -> None:
    seen = _run(WORKER_PROCESS, tmp_path, model_dir)
    assert "onnxq.predict" in seen["tasks"]
    loaded = _distributions(seen["modules"])
    assert {"celery", "redis"} <= loaded
    assert loaded.isdisjoint(image_requirements.LEFT_OUT["worker"])


def test_a_worker_process_loads_pandas_only_when_it_runs_a_drift_check(
    tmp_path: Path, model_dir: Path
) -> None:
    """Every pool process starts without pandas (215 ms and ~40 MB each): only the drift check's
    log reader needs it, so the worker image can carry no bytecode for it."""
    seen = _run(WORKER_PROCESS, tmp_path, model_dir)
    assert "pandas" not in _distributions(seen["modules"])
