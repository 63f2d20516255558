"""Jobs submitted as files: an Arrow IPC stream matched to the manifest by column name, or a .npy
array in feature order; the same checks as JSON rows, and a bad file leaves no job behind."""

from __future__ import annotations

import numpy as np
import pytest
from flask.testing import FlaskClient

from gateway.services import Services
from onnxq.jobs import keys
from onnxq.models import file_inputs
from tests.support.file_bodies import arrow_stream, npy
from tests.support.file_jobs import json_job, no_jobs, run_job, submit

ARROW = "application/vnd.apache.arrow.stream"
NPY = "application/x-npy"


def pickled(array: np.ndarray) -> bytes:
    """A .npy of Python objects: what np.load refuses without allow_pickle, and so must onnxq."""
    import io

    out = io.BytesIO()
    np.save(out, array, allow_pickle=True)
    return out.getvalue()


def test_an_arrow_stream_by_column_name_gives_the_json_jobs_result(
    client: FlaskClient, services: Services, demo_model_name: str, names, matrix
) -> None:
    columns = {name: matrix[:, i] for i, name in reversed(list(enumerate(names)))}
    answer = submit(client, demo_model_name, arrow_stream(columns, batch_rows=10), ARROW)
    assert answer.status_code == 202, answer.get_json()
    assert answer.get_json()["rows"] == 25
    from_file = run_job(client, services, answer.get_json()["job_id"])

    from_json = json_job(client, services, demo_model_name, matrix)
    assert from_file["status"] == from_json["status"] == "succeeded"
    assert from_file["result"] == from_json["result"]


def test_a_npy_array_in_feature_order_gives_the_json_jobs_result(
    client: FlaskClient, services: Services, demo_model_name: str, matrix
) -> None:
    answer = submit(client, demo_model_name, npy(matrix.astype(np.float64)), NPY, "?version=1")
    assert answer.status_code == 202, answer.get_json()
    from_file = run_job(client, services, answer.get_json()["job_id"])
    assert from_file["result"] == json_job(client, services, demo_model_name, matrix)["result"]


def test_missing_and_extra_columns_are_named(
    client: FlaskClient, services: Services, demo_model_name: str, names, matrix
) -> None:
    columns = {name: matrix[:, i] for i, name in enumerate(names) if i != 3}
    columns["customer_id"] = np.arange(25, dtype=np.int64)
    answer = submit(client, demo_model_name, arrow_stream(columns), ARROW)
    assert answer.status_code == 422
    details = answer.get_json()["error"]["details"]
    assert {
        "loc": ["columns", names[3]],
        "feature": names[3],
        "message": "missing column",
    } in details
    assert any(d["loc"] == ["columns", "customer_id"] for d in details)
    assert no_jobs(services)


def test_extra_columns_are_left_out_when_asked(
    client: FlaskClient, demo_model_name: str, names, matrix
) -> None:
    columns = {"customer_id": np.arange(25, dtype=np.int64)}
    columns.update({name: matrix[:, i] for i, name in enumerate(names)})
    answer = submit(client, demo_model_name, arrow_stream(columns), ARROW, "?extra=ignore")
    assert answer.status_code == 202, answer.get_json()


def test_a_column_of_strings_is_named_with_its_type(
    client: FlaskClient, services: Services, demo_model_name: str, names, matrix
) -> None:
    columns = {name: matrix[:3, i] for i, name in enumerate(names)}
    columns[names[0]] = ["1.5", "2", "x"]
    answer = submit(client, demo_model_name, arrow_stream(columns), ARROW)
    assert answer.status_code == 422
    [detail] = answer.get_json()["error"]["details"]
    assert detail["feature"] == names[0] and "string" in detail["message"]
    assert no_jobs(services)


def test_bad_values_are_listed_by_row_and_feature_the_first_hundred_with_their_count(
    client: FlaskClient, services: Services, demo_model_name: str, names, matrix
) -> None:
    bad = np.repeat(matrix, 10, axis=0)  # 250 rows
    bad[:, 2] = np.nan  # the demo model takes no missing values
    bad[7, 5] = np.inf
    answer = submit(client, demo_model_name, npy(bad), NPY)
    assert answer.status_code == 422
    error = answer.get_json()["error"]
    assert error["message"] == "251 problem(s) in the file's rows; the first 100 are listed"
    assert len(error["details"]) == 100
    assert error["details"][0] == {"loc": ["rows", 0, names[2]], "row": 0, "feature": names[2],
                                   "message": "expected a number, got a missing value"}  # fmt: skip
    assert {"loc": ["rows", 7, names[5]], "row": 7, "feature": names[5],
            "message": "expected a finite number, got Infinity"} in error["details"]  # fmt: skip
    assert no_jobs(services)


@pytest.mark.parametrize(
    ("kind", "body"),
    [
        (ARROW, b""),
        (ARROW, b"PAR1 not an arrow stream at all"),
        (NPY, b"\x93NUMPY but cut"),
        (NPY, npy(np.zeros(30, dtype=np.float32))),  # 1-D
        (NPY, npy(np.zeros((2, 3), dtype=np.float32))),  # too narrow
        (NPY, npy(np.array([["a"] * 30], dtype="<U1"))),  # text
        (NPY, pickled(np.array([[object()] * 30], dtype=object))),
        (NPY, npy(np.zeros((4, 30), dtype=np.float32))[:-20]),  # cut in its data
    ],
    ids=[
        "empty",
        "wrong magic",
        "truncated npy",
        "1-D npy",
        "narrow npy",
        "text npy",
        "pickled objects",
        "short data",
    ],
)
def test_a_bad_file_is_a_422_and_leaves_no_job(
    client: FlaskClient, services: Services, demo_model_name: str, kind: str, body: bytes
) -> None:
    answer = submit(client, demo_model_name, body, kind)
    assert answer.status_code == 422, answer.get_json()
    assert answer.get_json()["error"]["details"]
    assert no_jobs(services)


def test_a_truncated_arrow_stream_is_a_422(
    client: FlaskClient, services: Services, demo_model_name: str, names, matrix
) -> None:
    body = arrow_stream({name: matrix[:, i] for i, name in enumerate(names)}, batch_rows=5)
    answer = submit(client, demo_model_name, body[: len(body) // 2], ARROW)
    assert answer.status_code == 422
    assert "not a whole Arrow IPC stream" in answer.get_json()["error"]["message"]
    assert no_jobs(services)


def test_query_parameters_are_checked(client: FlaskClient, demo_model_name: str, matrix) -> None:
    answer = submit(client, demo_model_name, npy(matrix), NPY, "?version=x&extra=maybe&rows=3")
    assert answer.status_code == 422
    locs = [d["loc"] for d in answer.get_json()["error"]["details"]]
    assert locs == [["query", "rows"], ["query", "extra"], ["query", "version"]]


def test_the_same_idempotency_key_replays_the_same_file_and_refuses_another(
    client: FlaskClient, demo_model_name: str, matrix
) -> None:
    first = submit(client, demo_model_name, npy(matrix), NPY, **{"Idempotency-Key": "k1"})
    again = submit(client, demo_model_name, npy(matrix), NPY, **{"Idempotency-Key": "k1"})
    other = submit(client, demo_model_name, npy(matrix[:3]), NPY, **{"Idempotency-Key": "k1"})
    assert again.get_json()["job_id"] == first.get_json()["job_id"]
    assert again.headers["Idempotent-Replayed"] == "true"
    assert other.status_code == 409


def test_a_file_over_the_file_row_limit_is_a_413(
    client: FlaskClient, services: Services, demo_model_name: str, names
) -> None:
    limit = services.settings.job_file_max_rows
    answer = submit(client, demo_model_name, npy(np.ones((limit + 1, len(names)), np.float32)), NPY)
    assert answer.status_code == 413
    assert no_jobs(services)


CSV = "text/csv"


def csv_body(header: list[str], rows: list[list[object]]) -> bytes:
    lines = [",".join(header)] + [",".join(str(v) for v in row) for row in rows]
    return ("\r\n".join(lines) + "\r\n").encode()


def test_a_csv_by_header_name_gives_the_json_jobs_result(
    client: FlaskClient, services: Services, demo_model_name: str, names, matrix
) -> None:
    order = list(reversed(range(len(names))))
    body = csv_body([f'"{names[i]}"' for i in order],
                    [[repr(float(v)) for v in row[order]] for row in matrix])  # fmt: skip
    answer = submit(client, demo_model_name, body, CSV)
    assert answer.status_code == 202, answer.get_json()
    from_file = run_job(client, services, answer.get_json()["job_id"])
    assert from_file["result"] == json_job(client, services, demo_model_name, matrix)["result"]


def test_csv_problems_name_the_missing_column_and_each_cell_that_is_not_a_number(
    client: FlaskClient, services: Services, demo_model_name: str, names, matrix
) -> None:
    missing = submit(client, demo_model_name, csv_body(names[1:], matrix[:, 1:].tolist()), CSV)
    assert missing.status_code == 422
    assert missing.get_json()["error"]["details"] == [
        {"loc": ["columns", names[0]], "feature": names[0], "message": "missing column"}
    ]
    rows = matrix[:3].tolist()
    rows[1][4], rows[2][0] = "abc", ""
    answer = submit(client, demo_model_name, csv_body(names, rows), CSV)
    assert answer.status_code == 422
    error = answer.get_json()["error"]
    # Both in one answer: the text, and the empty cell (a missing value the demo model cannot
    # take), each once.
    assert error["message"] == "2 problem(s) in the file's rows"
    assert error["details"] == [
        {"loc": ["rows", 1, names[4]], "row": 1, "feature": names[4],
         "message": "expected a number, got 'abc'"},
        {"loc": ["rows", 2, names[0]], "row": 2, "feature": names[0],
         "message": "expected a number, got a missing value"},
    ]  # fmt: skip
    assert no_jobs(services)


@pytest.mark.parametrize(
    "body", [b"", b"\n\n", b"\xff\xfe not utf-8", b'a,"b\n1,2'], ids=["empty", "blank",
                                                                   "binary", "open quote"]
)  # fmt: skip
def test_a_bad_csv_is_a_422_and_leaves_no_job(
    client: FlaskClient, services: Services, demo_model_name: str, body: bytes
) -> None:
    answer = submit(client, demo_model_name, body, CSV)
    assert answer.status_code == 422, answer.get_json()
    assert no_jobs(services)


def test_a_csv_row_of_another_length_is_named(
    client: FlaskClient, demo_model_name: str, names, matrix
) -> None:
    rows = matrix[:3].tolist()
    rows[2] = rows[2][:-1]
    answer = submit(client, demo_model_name, csv_body(names, rows), CSV)
    assert answer.status_code == 422
    assert answer.get_json()["error"]["details"] == [
        {
            "loc": ["rows", 2],
            "row": 2,
            "message": f"expected {len(names)} cells, got {len(names) - 1}",
        }
    ]


def test_a_value_beyond_float32s_range_is_named(
    client: FlaskClient, services: Services, demo_model_name: str, names, matrix
) -> None:
    wide = matrix.astype(np.float64)
    wide[3, 1] = 1e39  # finite as a float64, not as a float32
    answer = submit(client, demo_model_name, npy(wide), NPY)
    assert answer.status_code == 422
    assert answer.get_json()["error"]["details"] == [
        {"loc": ["rows", 3, names[1]], "row": 3, "feature": names[1],
         "message": "value is outside the float32 range"}
    ]  # fmt: skip
    assert no_jobs(services)


def test_a_file_over_the_file_byte_limit_is_a_413_and_leaves_nothing(
    client: FlaskClient, services: Services, demo_model_name: str, names
) -> None:
    limit = services.settings.job_file_max_bytes
    body = npy(np.ones((limit // 8 // len(names) + 1, len(names)), np.float64))
    answer = submit(client, demo_model_name, body, NPY)
    assert answer.status_code == 413
    assert "ONNXQ_JOB_FILE_MAX_BYTES" in answer.get_json()["error"]["message"]
    assert no_jobs(services)


def test_a_file_may_be_larger_than_a_json_body(
    client: FlaskClient, services: Services, demo_model_name: str, names
) -> None:
    rows = services.settings.job_file_max_rows
    columns = {f"extra {i}": np.zeros(rows) for i in range(60)}
    columns |= {name: np.ones(rows) for name in names}
    body = arrow_stream(columns)
    assert services.settings.max_body_bytes < len(body) < services.settings.job_file_max_bytes
    answer = submit(client, demo_model_name, body, ARROW, "?extra=ignore")
    assert answer.status_code == 202, answer.get_json()
    assert answer.get_json()["rows"] == rows


def test_a_large_file_jobs_rows_wait_in_the_blob_store_not_in_redis(
    client: FlaskClient, services: Services, demo_model_name: str, matrix
) -> None:
    services.jobs.inline_rows = 10  # the 25-row file is then a large job
    answer = submit(client, demo_model_name, npy(matrix), NPY)
    job_id = answer.get_json()["job_id"]
    assert services.redis.exists(keys.rows(job_id)) == 0
    assert [p.name for p in services.settings.blob_root.iterdir()] == [f"{job_id}.rows"]

    done = run_job(client, services, job_id)

    assert done["result"] == json_job(client, services, demo_model_name, matrix)["result"]
    assert not (services.settings.blob_root / f"{job_id}.rows").exists()


def test_a_large_file_refused_part_way_leaves_no_rows_blob(
    client: FlaskClient,
    services: Services,
    demo_model_name: str,
    names,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    services.jobs.inline_rows = 10  # its rows go to the blob store as they are checked,
    monkeypatch.setattr(file_inputs, "ROW_BLOCK", 100)  # a block at a time
    limit = services.settings.job_file_max_rows
    ones = np.ones((limit + 1, len(names)), np.float32)
    too_many = submit(client, demo_model_name, npy(ones), NPY)
    bad_last_row = ones[:limit].copy()
    bad_last_row[-1, 0] = np.inf
    bad = submit(client, demo_model_name, npy(bad_last_row), NPY)
    assert too_many.status_code == 413
    assert bad.status_code == 422
    assert bad.get_json()["error"]["details"][0]["row"] == limit - 1
    assert no_jobs(services)
    assert list(services.settings.blob_root.iterdir()) == []


def test_a_replayed_large_file_keeps_only_the_first_jobs_rows(
    client: FlaskClient, services: Services, demo_model_name: str, matrix
) -> None:
    services.jobs.inline_rows = 10
    first = submit(client, demo_model_name, npy(matrix), NPY, **{"Idempotency-Key": "k2"})
    again = submit(client, demo_model_name, npy(matrix), NPY, **{"Idempotency-Key": "k2"})
    job_id = first.get_json()["job_id"]
    assert again.get_json()["job_id"] == job_id
    assert [p.name for p in services.settings.blob_root.iterdir()] == [f"{job_id}.rows"]
