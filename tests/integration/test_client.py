"""onnxq.client against a real gateway and worker: the answers onnxruntime gives, jobs waited for
with the waiting poll, rows by name from a DataFrame, and the server's errors as typed ones."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer

from onnxq.client import Client, InvalidInput, NotFound
from tests.integration.conftest import Stack

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def rows() -> np.ndarray:
    return load_breast_cancer().data[:40].astype(np.float32)


def reference(model_dir: Path, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    # One thread, as the service runs it: more threads add a forest's trees in another order.
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    path = str(model_dir / "breast-cancer" / "1" / "model.onnx")
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    labels, probabilities = session.run(["label", "probabilities"], {"input": rows})
    return labels, probabilities


def test_predict_and_a_job_give_onnxruntimes_answers(stack: Stack, rows: np.ndarray) -> None:
    labels, probabilities = reference(stack.model_dir, rows)
    with Client(stack.base_url) as client:
        model = client.model("breast-cancer")
        answer = model.predict(rows[:5])
        job = model.submit(rows)
        result = job.wait(timeout=60).result()

    assert answer.labels.tolist() == labels[:5].tolist()
    np.testing.assert_array_equal(answer.probabilities.astype(np.float32), probabilities[:5])
    assert job.status == "succeeded" and (result.model, result.version) == ("breast-cancer", 1)
    assert result.labels.tolist() == labels.tolist()
    np.testing.assert_array_equal(result.probabilities.astype(np.float32), probabilities)
    frame = result.to_pandas()
    assert list(frame.columns) == ["label", "probability_0", "probability_1"]
    assert len(frame) == len(rows)


def test_a_dataframe_is_sent_by_column_name_in_any_order(stack: Stack, rows: np.ndarray) -> None:
    names = load_breast_cancer().feature_names.tolist()
    frame = pd.DataFrame(rows[:8], columns=names)[list(reversed(names))]
    labels, _ = reference(stack.model_dir, rows[:8])
    answer = Client(stack.base_url).model("breast-cancer").predict(frame)
    assert answer.labels.tolist() == labels.tolist()


def test_the_same_idempotency_key_returns_the_same_job(stack: Stack, rows: np.ndarray) -> None:
    model = Client(stack.base_url).model("breast-cancer")
    first = model.submit(rows[:3], idempotency_key="client-test-1")
    again = model.submit(rows[:3], idempotency_key="client-test-1")
    assert again.id == first.id
    assert Client(stack.base_url).job(first.id).wait(timeout=60).status == "succeeded"


def test_bad_rows_and_unknown_models_raise_typed_errors(stack: Stack, rows: np.ndarray) -> None:
    client = Client(stack.base_url)
    bad = rows[:2].copy()
    bad[1, 3] = np.nan  # the demo model takes no missing values
    with pytest.raises(InvalidInput) as raised:
        client.model("breast-cancer").predict(bad)
    assert raised.value.status == 422 and raised.value.details
    assert any(detail.get("loc", [None])[:2] == ["instances", 1] for detail in raised.value.details)
    with pytest.raises(NotFound) as missing:
        client.model("no-such-model").submit(rows[:1])
    assert missing.value.type == "model_not_found"


def test_large_arrays_frames_and_files_go_as_files(stack: Stack, tmp_path: Path) -> None:
    data = load_breast_cancer()
    X = np.resize(data.data, (2500, data.data.shape[1])).astype(np.float32)
    labels, probabilities = reference(stack.model_dir, X)
    names = data.feature_names.tolist()
    csv_path = tmp_path / "rows.csv"
    pd.DataFrame(X[:50], columns=names).to_csv(csv_path, index=False)
    model = Client(stack.base_url).model("breast-cancer", version=1)

    as_array = model.submit(X)  # 2,500 rows: a .npy body
    as_frame = model.submit(pd.DataFrame(X, columns=names)[list(reversed(names))])
    as_csv = model.submit(csv_path)

    for job in (as_array, as_frame):
        result = job.result(timeout=120)
        assert result.labels.tolist() == labels.tolist()
        np.testing.assert_array_equal(result.probabilities.astype(np.float32), probabilities)
    assert as_csv.result(timeout=60).labels.tolist() == labels[:50].tolist()


def test_a_large_result_comes_through_its_link(
    tmp_path_factory: pytest.TempPathFactory, model_dir: Path, redis_binary: str
) -> None:
    from tests.integration.conftest import running_stack

    X = np.resize(load_breast_cancer().data, (3000, 30)).astype(np.float32)
    labels, probabilities = reference(model_dir, X)
    env = {"ONNXQ_JOB_INLINE_RESULT_ROWS": "1000"}
    with running_stack(tmp_path_factory.mktemp("linked"), model_dir, redis_binary,
                       extra_env=env) as stack:  # fmt: skip
        job = Client(stack.base_url).model("breast-cancer").submit(X)
        result = job.result(timeout=120)
        assert job.document["result"]["href"] == f"/v1/jobs/{job.id}/result"
    assert result.labels.tolist() == labels.tolist()
    np.testing.assert_array_equal(result.probabilities, probabilities)
    assert result.constants == {"classes": [0, 1]}
    assert list(result.to_pandas().columns) == ["label", "probability_0", "probability_1"]
