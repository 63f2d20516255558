"""Job records as the tests build them: a queued job, with any field changed."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from onnxq.jobs.record import Job, JobStatus

SUBMITTED_AT = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def queued_job(job_id: str = "job-1", **changes: Any) -> Job:
    fields: dict[str, Any] = {
        "job_id": job_id,
        "status": JobStatus.QUEUED,
        "model": "breast-cancer",
        "version": 1,
        "rows": 2,
        "request_id": "req-1",
        "submitted_at": SUBMITTED_AT,
    }
    return Job(**(fields | changes))
