"""GET /v1/jobs/<id>/result: JSON pages, or every row as an Arrow stream or CSV."""

from __future__ import annotations

import csv
import io

import nanoarrow as na
import numpy as np
import pytest
from flask.testing import FlaskClient

from gateway.services import Services
from tests.support.jobs import take_messages
from worker.runner import JobRunner

ARROW = "application/vnd.apache.arrow.stream"


@pytest.fixture
def finished(client: FlaskClient, services: Services, demo_model_name: str) -> dict:
    """A succeeded job of 25 rows: its document."""
    width = len(services.repository.manifest(demo_model_name).features)
    rows = np.random.default_rng(2).uniform(1, 50, size=(25, width)).tolist()
    job_id = client.post(f"/v1/models/{demo_model_name}/jobs",
                         json={"instances": rows}).get_json()["job_id"]  # fmt: skip
    [message] = take_messages(services.queue.celery, services.settings.queue_name, job_id)
    JobRunner(services.repository, services.jobs, services.prediction_log).run([message])
    return client.get(f"/v1/jobs/{job_id}").get_json()


def test_json_pages_cover_the_result_in_order(client: FlaskClient, finished: dict) -> None:
    url = f"/v1/jobs/{finished['job_id']}/result"
    whole = client.get(url).get_json()
    assert (whole["rows"], whole["offset"], whole["limit"]) == (25, 0, 25)
    assert list(whole["columns"]) == ["label", "probability_0", "probability_1"]
    assert whole["columns"]["label"] == finished["result"]["labels"]
    assert whole["columns"]["probability_1"] == [p[1] for p in finished["result"]["probabilities"]]
    pages = [client.get(f"{url}?offset={start}&limit=10").get_json() for start in (0, 10, 20)]
    assert [page["limit"] for page in pages] == [10, 10, 5]
    assert [v for page in pages for v in page["columns"]["label"]] == whole["columns"]["label"]
    assert client.get(f"{url}?offset=99").get_json()["limit"] == 0


def test_the_arrow_stream_and_csv_hold_every_row(client: FlaskClient, finished: dict) -> None:
    url = f"/v1/jobs/{finished['job_id']}/result"
    arrow = client.get(url, headers={"Accept": ARROW})
    assert arrow.status_code == 200 and arrow.mimetype == ARROW
    table = na.ArrayStream.from_readable(io.BytesIO(arrow.data)).read_all()
    assert [table.schema.field(i).name for i in range(3)] == ["label", "probability_0",
                                                              "probability_1"]  # fmt: skip
    assert table.child(0).to_pylist() == finished["result"]["labels"]
    expected = np.array(finished["result"]["probabilities"], dtype=np.float32)[:, 0]
    assert np.array_equal(np.asarray(table.child(1).to_pylist(), dtype=np.float32), expected)

    text = client.get(url, headers={"Accept": "text/csv"})
    assert text.mimetype == "text/csv"
    [header, *rows] = list(csv.reader(io.StringIO(text.get_data(as_text=True))))
    assert header == ["label", "probability_0", "probability_1"]
    assert [int(row[0]) for row in rows] == finished["result"]["labels"]
    assert [float(row[2]) for row in rows] == [p[1] for p in finished["result"]["probabilities"]]


def test_a_job_without_a_result_is_a_409_and_bad_pages_a_422(
    client: FlaskClient, demo_model_name: str, services: Services, finished: dict
) -> None:
    width = len(services.repository.manifest(demo_model_name).features)
    queued = client.post(f"/v1/models/{demo_model_name}/jobs",
                         json={"instances": [[1.0] * width]}).get_json()  # fmt: skip
    answer = client.get(f"/v1/jobs/{queued['job_id']}/result")
    assert answer.status_code == 409
    assert answer.get_json()["error"]["type"] == "result_not_ready"
    url = f"/v1/jobs/{finished['job_id']}/result"
    assert client.get(f"{url}?limit=0").status_code == 422
    assert client.get(f"{url}?offset=-1").status_code == 422
    assert client.get(url, headers={"Accept": "image/png"}).status_code == 406
    assert client.get("/v1/jobs/0123456789abcdef0123456789abcdef/result").status_code == 404


def test_a_large_result_is_linked_from_its_document_and_served_whole(
    client: FlaskClient, services: Services, demo_model_name: str
) -> None:
    width = len(services.repository.manifest(demo_model_name).features)
    rows = np.random.default_rng(5).uniform(1, 50, size=(40, width)).tolist()
    url = f"/v1/models/{demo_model_name}/jobs"
    ids = [client.post(url, json={"instances": rows}).get_json()["job_id"] for _ in range(2)]
    for job_id, inline in zip(ids, (1000, 10), strict=True):
        [message] = take_messages(services.queue.celery, services.settings.queue_name, job_id)
        JobRunner(services.repository, services.jobs, services.prediction_log,
                  inline_result_rows=inline).run([message])  # fmt: skip
    small, large = (client.get(f"/v1/jobs/{job_id}").get_json() for job_id in ids)

    assert large["status"] == "succeeded"
    assert large["result"] == {"model": demo_model_name, "version": 1, "rows": 40,
                               "href": f"/v1/jobs/{ids[1]}/result"}  # fmt: skip
    for accept in ("application/json", "text/csv"):
        inline = client.get(f"/v1/jobs/{ids[0]}/result", headers={"Accept": accept})
        linked = client.get(large["result"]["href"], headers={"Accept": accept})
        assert linked.status_code == 200 and linked.data == inline.data
    arrow = client.get(large["result"]["href"], headers={"Accept": ARROW})
    table = na.ArrayStream.from_readable(io.BytesIO(arrow.data)).read_all()
    assert table.child(0).to_pylist() == small["result"]["labels"]


def test_a_linked_result_gone_from_the_store_is_a_404(
    client: FlaskClient, services: Services, demo_model_name: str
) -> None:
    width = len(services.repository.manifest(demo_model_name).features)
    job_id = client.post(f"/v1/models/{demo_model_name}/jobs",
                         json={"instances": [[1.0] * width] * 3}).get_json()["job_id"]  # fmt: skip
    [message] = take_messages(services.queue.celery, services.settings.queue_name, job_id)
    JobRunner(services.repository, services.jobs, services.prediction_log,
              inline_result_rows=1).run([message])  # fmt: skip
    services.blobs.delete(job_id)
    answer = client.get(f"/v1/jobs/{job_id}/result")
    assert answer.status_code == 404 and answer.get_json()["error"]["type"] == "job_expired"
