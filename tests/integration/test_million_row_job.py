"""A job of a million rows, sent as a file through onnxq.client to a real gateway and worker with
the shipped limits: onnxruntime's answers for every row, each row logged once, no process past
1 GB of memory, Redis no bigger for it, and nothing but the result left in the blob store."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import psutil
import pytest
import redis
from sklearn.datasets import load_breast_cancer

from drift.log_segments import read_segment, segment_files
from onnxq.client import Client
from onnxq.models.result_table import arrow_stream
from tests.integration.conftest import Stack
from tests.integration.test_client import reference

pytestmark = pytest.mark.integration
ROWS = 1_000_000
RSS_BOUND = 1024**3


def peak_rss(pid: int) -> int:
    """The process's high-water mark of resident memory (VmHWM): its peak, not a sample."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmHWM for {pid}")


def service_pids(stack: Stack) -> dict[str, int]:
    """Every gateway and worker process: the parents and their children."""
    found = {}
    for service in (stack.gateway, stack.worker):
        assert service is not None and service.process is not None
        parent = psutil.Process(service.process.pid)
        for process in [parent, *parent.children(recursive=True)]:
            found[f"{service.name} {process.pid}"] = process.pid
    return found


def logged_rows(log_dir: Path, job_id: str) -> int:
    rows = 0
    for path in segment_files(log_dir):
        for batch in read_segment(path).batches:
            rows += batch.job_id.count(job_id)
    return rows


def test_a_million_row_arrow_file_in_bounded_memory(stack: Stack, tmp_path: Path) -> None:
    data = load_breast_cancer()
    matrix = np.resize(data.data, (ROWS, data.data.shape[1])).astype(np.float32)
    source = tmp_path / "rows.arrows"
    columns = {name: matrix[:, i] for i, name in enumerate(data.feature_names.tolist())}
    source.write_bytes(arrow_stream(columns, batch_rows=100_000))
    del columns
    redis_client = redis.Redis.from_url(stack.redis.url)
    redis_peak = int(redis_client.info("memory")["used_memory_peak"])

    with Client(stack.base_url, timeout=600) as client:
        job = client.model("breast-cancer").submit(source)
        job.wait(timeout=600)
        out = tmp_path / "result.arrows"
        job.download(out, timeout=600)
    result = client.job(job.id).wait(timeout=60).result()

    labels, probabilities = reference(stack.model_dir, matrix)
    assert job.status == "succeeded" and len(result.labels) == ROWS
    assert np.array_equal(result.labels, labels)
    np.testing.assert_array_equal(result.probabilities.astype(np.float32), probabilities)
    assert logged_rows(stack.prediction_log_dir, job.id) == ROWS
    peaks = {name: peak_rss(pid) for name, pid in service_pids(stack).items()}
    print("peak RSS (MB):", {name: peak // 2**20 for name, peak in peaks.items()})
    assert max(peaks.values()) <= RSS_BOUND, peaks
    # The rows and the result were never in Redis: its peak grew by the record, not the job.
    grown = int(redis_client.info("memory")["used_memory_peak"]) - redis_peak
    print("Redis peak grew (bytes):", grown)
    assert grown < 8 * 1024**2, f"Redis peak grew {grown} bytes"
    blobs = Path(stack.env["ONNXQ_STATE_DIR"]) / "blobs"
    assert sorted(p.name for p in blobs.iterdir()) == [f"{job.id}.result"]
    assert out.stat().st_size > ROWS * 8  # label and probabilities of every row
