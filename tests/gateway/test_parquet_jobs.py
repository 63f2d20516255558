"""Jobs sent as Parquet files, and results fetched as Parquet: the same checks and answers as
JSON rows, and a bad file leaves nothing behind."""

from __future__ import annotations

import io

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from flask.testing import FlaskClient

from gateway.services import Services
from tests.support.file_jobs import json_job, no_jobs, run_job, submit

PARQUET = "application/vnd.apache.parquet"


def parquet(columns: dict[str, object], **options: object) -> bytes:
    out = io.BytesIO()
    pq.write_table(pa.table(columns), out, **options)
    return out.getvalue()


def test_a_parquet_file_by_column_name_gives_the_json_jobs_result(
    client: FlaskClient, services: Services, demo_model_name: str, names, matrix
) -> None:
    order = reversed(list(enumerate(names)))
    columns = {name: matrix[:, i].astype(np.float64) for i, name in order}
    answer = submit(client, demo_model_name, parquet(columns, row_group_size=10), PARQUET)
    assert answer.status_code == 202, answer.get_json()
    done = run_job(client, services, answer.get_json()["job_id"])
    assert done["result"] == json_job(client, services, demo_model_name, matrix)["result"]

    table = pq.read_table(io.BytesIO(client.get(f"/v1/jobs/{done['job_id']}/result",
                                                headers={"Accept": PARQUET}).data))  # fmt: skip
    assert table.column("label").to_pylist() == done["result"]["labels"]


@pytest.mark.parametrize("problem", ["truncated", "wrong magic", "text column", "empty"])
def test_a_bad_parquet_file_is_a_422_and_leaves_no_job(
    client: FlaskClient, services: Services, demo_model_name: str, names, matrix, problem: str
) -> None:
    columns = {name: matrix[:, i] for i, name in enumerate(names)}
    whole = parquet(columns)
    body = {
        "truncated": whole[: len(whole) // 2],
        "wrong magic": b"PAR0" + whole[4:],
        "text column": parquet(columns | {names[2]: [str(v) for v in matrix[:, 2]]}),
        "empty": b"",
    }[problem]
    answer = submit(client, demo_model_name, body, PARQUET)
    assert answer.status_code == 422, answer.get_json()
    if problem == "text column":
        assert answer.get_json()["error"]["details"] == [
            {"loc": ["columns", names[2]], "feature": names[2],
             "message": "a column of text, not numbers"}
        ]  # fmt: skip
    assert no_jobs(services)


def test_nulls_in_a_parquet_column_are_missing_values_named_by_row(
    client: FlaskClient, demo_model_name: str, names, matrix
) -> None:
    columns: dict[str, object] = {name: matrix[:, i] for i, name in enumerate(names)}
    columns[names[1]] = pa.array([None if i == 4 else float(v) for i, v in enumerate(matrix[:, 1])])
    answer = submit(client, demo_model_name, parquet(columns), PARQUET)
    assert answer.status_code == 422
    assert answer.get_json()["error"]["details"] == [
        {"loc": ["rows", 4, names[1]], "row": 4, "feature": names[1],
         "message": "expected a number, got a missing value"}
    ]  # fmt: skip
