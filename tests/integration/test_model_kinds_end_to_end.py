"""Every kind of model, as a user takes it from training to traffic, on real processes.

For each kind: train it here, `onnxq export`, `onnxq register` (from another directory, finding
the repository through ONNXQ_MODEL_DIR), `onnxq promote`; then, on a real gunicorn gateway and
Celery worker over a real Redis, a synchronous predict, a job and a V2 infer, every answer
compared with the ORIGINAL model's own outputs (not ONNX Runtime's) within the parity tolerance
(labels exactly). Regressors, string labels, a classifier without probabilities, LightGBM with
missing values, XGBoost, PyTorch regression, a CNN on [N, 1, 28, 28] and a model of two inputs
and two outputs. The drift check then reads their traffic: output profiles, skipped inputs.
"""

from __future__ import annotations

import json
import pickle
import textwrap
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import requests
import torch
from lightgbm import LGBMClassifier
from sklearn.datasets import load_iris, make_regression
from sklearn.ensemble import GradientBoostingRegressor, RandomForestRegressor
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC
from xgboost import XGBRegressor

from onnxq.cli.main import main
from onnxq.settings import ENV_FILE_VARIABLE
from tests.integration.conftest import Stack, running_stack

pytestmark = pytest.mark.integration

TOLERANCE = 1e-5
MODULES = textwrap.dedent(
    """
    import torch


    def regressor():
        return torch.nn.Sequential(
            torch.nn.Linear(6, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1)
        )


    class Cnn(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(1, 4, 3)
            self.pool = torch.nn.AdaptiveAvgPool2d(2)
            self.head = torch.nn.Linear(16, 3)

        def forward(self, image):
            return self.head(torch.flatten(self.pool(torch.relu(self.conv(image))), 1))


    class TwoInTwoOut(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.cnn = Cnn()
            self.meta = torch.nn.Linear(4, 3)
            self.embed = torch.nn.Linear(4, 32)

        def forward(self, image, meta):
            return self.cnn(image) + self.meta(meta), self.embed(meta)


    def cnn():
        return Cnn()


    def two_in_two_out():
        return TwoInTwoOut()
    """
)


@dataclass
class Kind:
    """One model as its user built it: what to send, and what the source model answers."""

    name: str
    instances: list[Any]  # v1 rows
    v2_inputs: list[dict[str, Any]]
    expected: dict[str, Any]  # the v1 answer's fields, from the source model
    v2_expected: dict[str, np.ndarray]  # output tensors by name, from the source model
    export: list[str] = field(default_factory=list)
    register: list[str] = field(default_factory=list)


def close(actual: Any, expected: Any) -> None:
    """Labels exactly; numbers within the tolerance of their scale (parity's measure)."""
    expected = np.asarray(expected)
    if expected.dtype.kind in "OUSb" or expected.dtype.kind in "iu":
        assert np.asarray(actual).tolist() == expected.tolist()
        return
    actual = np.asarray(actual, dtype=np.float64).reshape(expected.shape)
    scale = max(1.0, float(np.nanmax(np.abs(expected))))
    assert np.nanmax(np.abs(actual - expected)) / scale <= TOLERANCE
    assert (np.isnan(actual) == np.isnan(expected)).all()


def v2_input(name: str, array: np.ndarray, datatype: str) -> dict[str, Any]:
    return {"name": name, "shape": list(array.shape), "datatype": datatype, "data": array.tolist()}


def test_lightgbm_is_sent_missing_values(kinds_stack) -> None:
    _, kinds, _ = kinds_stack
    sent = [value for row in kinds["lgbm"].instances for value in row]
    assert None in sent  # and its answers matched LightGBM's on them (the test above)


def tabular(X: np.ndarray) -> tuple[list[Any], list[dict[str, Any]]]:
    rows = [[None if np.isnan(v) else float(v) for v in row] for row in X.astype(np.float32)]
    return rows, [v2_input("input", np.asarray(rows, dtype=object), "FP32")]


def sklearn_kind(
    directory: Path,
    name: str,
    estimator: Any,
    X: np.ndarray,
    held_out: np.ndarray,
    *,
    export: list[str] = (),  # type: ignore[assignment]
) -> Kind:
    columns = [f"x{i}" for i in range(X.shape[1])]
    (directory / name).mkdir()
    with (directory / name / "model.pkl").open("wb") as handle:
        pickle.dump(estimator, handle)
    pd.DataFrame(X, columns=columns).to_csv(directory / name / "train.csv", index=False)
    pd.DataFrame(held_out, columns=columns).to_csv(directory / name / "held.csv", index=False)
    send = held_out[:5].astype(np.float32)
    instances, v2_inputs = tabular(send)
    if hasattr(estimator, "classes_"):
        expected: dict[str, Any] = {"labels": estimator.predict(send).tolist()}
        v2_expected = {"label": estimator.predict(send)}
        if hasattr(estimator, "predict_proba"):
            expected["probabilities"] = estimator.predict_proba(send)
            v2_expected["probabilities"] = estimator.predict_proba(send)
    else:
        predicted = estimator.predict(send)
        expected = {"predictions": predicted}
        v2_expected = {"predictions": predicted.reshape(len(send), -1)}
    return Kind(
        name=name,
        instances=instances,
        v2_inputs=v2_inputs,
        expected=expected,
        v2_expected=v2_expected,
        export=[
            "export",
            "sklearn",
            f"{name}/model.pkl",
            "--sample",
            f"{name}/train.csv",
            "--out",
            f"{name}/export",
            *export,
        ],
        register=[
            "register",
            name,
            f"{name}/export/model.onnx",
            "--reference",
            f"{name}/train.csv",
            "--held-out",
            f"{name}/held.csv",
        ],
    )


def torch_modules(directory: Path) -> dict[str, torch.nn.Module]:
    (directory / "modules.py").write_text(MODULES)
    namespace: dict[str, Any] = {}
    exec(MODULES, namespace)  # the same factories the export imports
    torch.manual_seed(0)
    modules = {name: namespace[name]() for name in ("regressor", "cnn", "two_in_two_out")}
    for name, module in modules.items():
        torch.save(module.state_dict(), directory / f"{name}.pt")
        module.eval()
    return modules


def torch_kinds(directory: Path) -> list[Kind]:
    modules = torch_modules(directory)
    rng = np.random.default_rng(0)
    kinds = []

    X = rng.normal(size=(200, 6)).astype(np.float32)
    pd.DataFrame(X, columns=[f"x{i}" for i in range(6)]).to_csv(directory / "mlp.csv", index=False)
    send = X[:5]
    with torch.no_grad():
        predicted = modules["regressor"](torch.from_numpy(send)).numpy()
    instances, v2_inputs = tabular(send)
    kinds.append(
        Kind(
            name="torch-regression",
            instances=instances,
            v2_inputs=v2_inputs,
            expected={"predictions": predicted[:, 0]},
            v2_expected={"predictions": predicted},
            export=[
                "export",
                "torch",
                "modules.py:regressor",
                "--weights",
                "regressor.pt",
                "--sample",
                "mlp.csv",
                "--task",
                "regression",
                "--out",
                "mlp/export",
            ],
            register=[
                "register",
                "torch-regression",
                "mlp/export/model.onnx",
                "--reference",
                "mlp.csv",
            ],
        )
    )

    images = rng.random((40, 1, 28, 28), dtype=np.float32)
    np.savez(directory / "images.npz", image=images)
    send_images = images[:4]
    with torch.no_grad():
        logits = modules["cnn"](torch.from_numpy(send_images))
    probabilities = torch.softmax(logits, dim=1).numpy()
    kinds.append(
        Kind(
            name="cnn",
            instances=[{"image": image.tolist()} for image in send_images],
            v2_inputs=[v2_input("image", send_images, "FP32")],
            expected={
                "labels": probabilities.argmax(axis=1).tolist(),
                "probabilities": probabilities,
            },
            v2_expected={"label": probabilities.argmax(axis=1), "probabilities": probabilities},
            export=[
                "export",
                "torch",
                "modules.py:cnn",
                "--weights",
                "cnn.pt",
                "--sample",
                "images.npz",
                "--task",
                "classification",
                "--class-names",
                "zero,one,two",
                "--out",
                "cnn/export",
            ],
            register=["register", "cnn", "cnn/export/model.onnx", "--held-out", "images.npz"],
        )
    )

    meta = rng.normal(size=(40, 4)).astype(np.float32)
    np.savez(directory / "two.npz", image=images, meta=meta)
    with torch.no_grad():
        out_logits, embedding = modules["two_in_two_out"](
            torch.from_numpy(send_images), torch.from_numpy(meta[:4])
        )
    outputs = {"logits": out_logits.numpy(), "embedding": embedding.numpy()}
    kinds.append(
        Kind(
            name="two-in-two-out",
            instances=[
                {"image": image.tolist(), "meta": row.tolist()}
                for image, row in zip(send_images, meta[:4], strict=True)
            ],
            v2_inputs=[v2_input("meta", meta[:4], "FP32"), v2_input("image", send_images, "FP32")],
            expected={"outputs": outputs},
            v2_expected=outputs,
            export=[
                "export",
                "torch",
                "modules.py:two_in_two_out",
                "--weights",
                "two_in_two_out.pt",
                "--sample",
                "two.npz",
                "--output-names",
                "logits,embedding",
                "--out",
                "two/export",
            ],
            register=[
                "register",
                "two-in-two-out",
                "two/export/model.onnx",
                "--held-out",
                "two.npz",
            ],
        )
    )
    return kinds


def sklearn_kinds(directory: Path) -> list[Kind]:
    X, y = make_regression(400, 5, noise=3.0, random_state=0)
    X2, Y2 = make_regression(400, 4, n_targets=2, random_state=1)
    iris = load_iris()
    Xi, labels = iris.data, iris.target_names[iris.target]
    order = np.random.default_rng(0).permutation(len(Xi))
    Xi, labels = Xi[order], labels[order]
    Xb = np.random.default_rng(1).normal(size=(400, 4))
    yb = (Xb[:, 0] + Xb[:, 2] > 0).astype(int)
    Xb[::5, 1] = np.nan  # LightGBM learns what a missing x1 means
    return [
        sklearn_kind(
            directory,
            "gbr",
            make_pipeline(StandardScaler(), GradientBoostingRegressor(random_state=0)).fit(
                X[:300], y[:300] * 100
            ),
            X[:300],
            X[300:],
        ),
        sklearn_kind(
            directory,
            "multi",
            RandomForestRegressor(n_estimators=20, random_state=0).fit(X2[:300], Y2[:300]),
            X2[:300],
            X2[300:],
            export=["--targets", "price,rent"],
        ),
        sklearn_kind(
            directory,
            "iris",
            LogisticRegression(max_iter=1000).fit(Xi[:100], labels[:100]),
            Xi[:100],
            Xi[100:],
            export=["--class-names", "Setosa,Versicolour,Virginica"],
        ),
        sklearn_kind(directory, "svc", LinearSVC().fit(Xi[:100], labels[:100]), Xi[:100], Xi[100:]),
        sklearn_kind(
            directory,
            "lgbm",
            LGBMClassifier(n_estimators=30, verbose=-1).fit(Xb[:300], yb[:300]),
            Xb[:300],
            Xb[300:],
        ),
        sklearn_kind(
            directory, "xgb", XGBRegressor(n_estimators=30).fit(X[:300], y[:300]), X[:300], X[300:]
        ),
    ]


def cli(*argv: str) -> None:
    assert main(list(argv)) == 0, argv


@pytest.fixture(scope="module")
def kinds_stack(
    tmp_path_factory: pytest.TempPathFactory, redis_binary: str
) -> Iterator[tuple[Stack, dict[str, Kind], Callable[..., None]]]:
    directory = tmp_path_factory.mktemp("kinds")
    work, model_dir = directory / "work", directory / "models"
    work.mkdir()
    model_dir.mkdir()
    kinds = sklearn_kinds(work) + torch_kinds(work)
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(work)  # not the repository's folder: the CLI finds it by ONNXQ_MODEL_DIR
        patch.setenv(ENV_FILE_VARIABLE, "")
        patch.setenv("ONNXQ_MODEL_DIR", str(model_dir))
        patch.setenv("ONNXQ_STATE_DIR", str(directory / "stack" / "state"))
        patch.setenv("ONNXQ_PREDICTION_LOG_DIR", str(directory / "stack" / "predictions"))
        for kind in kinds:
            cli(*kind.export)
            cli(*kind.register)
            cli("promote", kind.name, "1")
        assert not (work / "models").exists()
        (directory / "stack").mkdir()
        with running_stack(directory / "stack", model_dir, redis_binary) as stack:
            yield stack, {kind.name: kind for kind in kinds}, cli


NAMES = ["gbr", "multi", "iris", "svc", "lgbm", "xgb", "torch-regression", "cnn", "two-in-two-out"]


def answer_matches(answer: dict[str, Any], expected: dict[str, Any]) -> None:
    fields = {key for key in answer if key not in ("model", "version", "request_id", "classes")}
    assert fields - {"targets"} == set(expected)
    for key, value in expected.items():
        if key == "outputs":
            assert set(answer["outputs"]) == set(value)
            for name, array in value.items():
                close(answer["outputs"][name], array)
        else:
            close(answer[key], value)


@pytest.mark.parametrize("name", NAMES)
def test_each_kind_answers_as_its_source_model_on_v1_jobs_and_v2(kinds_stack, name: str) -> None:
    stack, kinds, _ = kinds_stack
    kind = kinds[name]

    sync = requests.post(
        stack.url(f"/v1/models/{name}/predict"), json={"instances": kind.instances}, timeout=10
    )
    submitted = requests.post(
        stack.url(f"/v1/models/{name}/jobs"), json={"instances": kind.instances}, timeout=10
    )
    v2 = requests.post(
        stack.url(f"/v2/models/{name}/infer"), json={"inputs": kind.v2_inputs}, timeout=10
    )

    assert sync.status_code == 200, sync.text
    answer_matches(sync.json(), kind.expected)
    assert submitted.status_code == 202, submitted.text
    job = stack.ended_job(submitted.json()["job_id"])
    assert job["status"] == "succeeded", job
    answer_matches(job["result"], kind.expected)
    assert v2.status_code == 200, v2.text
    outputs = {output["name"]: output for output in v2.json()["outputs"]}
    for output, array in kind.v2_expected.items():
        assert outputs[output]["shape"] == list(np.shape(array))
        close(outputs[output]["data"], np.ravel(array))


def test_the_manifests_describe_each_kind(kinds_stack) -> None:
    stack, _, _ = kinds_stack

    def describe(name: str) -> dict[str, Any]:
        return requests.get(stack.url(f"/v1/models/{name}"), timeout=5).json()

    assert describe("multi")["targets"] == ["price", "rent"]
    assert describe("iris")["class_names"] == ["Setosa", "Versicolour", "Virginica"]
    assert describe("iris")["classes"] == ["setosa", "versicolor", "virginica"]
    assert [o["name"] for o in describe("svc")["outputs"]] == ["label", "scores"]
    # LightGBM says it takes NaN, and its ONNX copy agreed on the probe rows.
    assert all(feature["nullable"] for feature in describe("lgbm")["features"])
    assert not any(feature["nullable"] for feature in describe("svc")["features"])
    cnn = describe("cnn")
    assert (cnn["task"], cnn["features"], cnn["inputs"][0]["shape"]) == (
        "classification",
        [],
        [None, 1, 28, 28],
    )
    two = describe("two-in-two-out")
    assert [i["name"] for i in two["inputs"]] == ["image", "meta"]
    assert [o["name"] for o in two["outputs"]] == ["logits", "embedding"]


def test_the_drift_check_reads_output_profiles_and_names_what_it_skips(
    kinds_stack, capsys: pytest.CaptureFixture[str]
) -> None:
    stack, kinds, run = kinds_stack
    for name in ("gbr", "two-in-two-out"):  # some traffic of their own
        response = requests.post(
            stack.url(f"/v1/models/{name}/predict"), json={"instances": kinds[name].instances}
        )
        assert response.status_code == 200
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(ENV_FILE_VARIABLE, "")
        patch.setenv("ONNXQ_MODEL_DIR", str(stack.model_dir))
        patch.setenv("ONNXQ_STATE_DIR", str(stack.directory / "state"))
        patch.setenv("ONNXQ_PREDICTION_LOG_DIR", str(stack.prediction_log_dir))
        run("drift", "gbr", "--no-alert", "--no-progress")
        run("drift", "two-in-two-out", "--no-alert", "--no-progress")
    printed = capsys.readouterr().out

    reports = stack.directory / "state" / "drift"
    gbr = json.loads(max((reports / "gbr").glob("*.json")).read_text())
    two = json.loads(max((reports / "two-in-two-out").glob("*.json")).read_text())
    assert gbr["rows"] >= 5 and [o["name"] for o in gbr["outputs"]] == ["prediction"]
    assert two["features"] == [] and two["rows"] >= 5
    assert [o["name"] for o in two["outputs"]] == ["logits[0]", "logits[1]", "logits[2]"]
    assert set(two["skipped"]) == {"image", "meta", "embedding"}
    assert "not profiled: image: input of shape ['N', 1, 28, 28]" in printed
