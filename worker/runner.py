"""Running prediction jobs as plain objects: the Celery task calls them, and so do unit tests.

One `JobRunner.run` takes any number of job messages: it claims them in one
transaction, runs every group of same-model jobs through one `session.run`
(chunked for large jobs), and stores all outcomes in one round trip.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import structlog
from celery.exceptions import SoftTimeLimitExceeded

from onnxq.errors import InvalidInput, OnnxqError, QueueUnavailable
from onnxq.jobs import lifecycle
from onnxq.jobs.lifecycle import ClaimState
from onnxq.jobs.record import Job, JobStatus
from onnxq.jobs.store import JobStore
from onnxq.models.repository import ModelRepository
from onnxq.models.session import OnnxModel, PredictionResult
from onnxq.telemetry import metrics
from onnxq.telemetry.prediction_log import PredictionLog

log = structlog.get_logger("onnxq.worker")


@dataclass(frozen=True)
class JobMessage:
    """The predict message the gateway sent (onnxq.jobs.queue.predict_message); rows in Redis."""

    job_id: str
    model: str
    version: int
    request_id: str | None = None
    width: int = 0  # features per stored row (0: the rows were gone when it was re-sent)
    rows: int = 0  # how many stored rows


@dataclass
class JobRunner:
    repository: ModelRepository
    store: JobStore
    prediction_log: PredictionLog
    max_attempts: int = 3
    chunk_rows: int = 10_000
    on_end: Callable[[Job], None] | None = None

    def run(self, messages: list[JobMessage]) -> dict[str, Job | None]:
        """Run the jobs; return each one's final state (None when its record is gone)."""
        started = time.perf_counter()
        metrics.microbatch_ran(len(messages))
        claims = self.store.claim_many([m.job_id for m in messages], self.max_attempts)
        stored_rows = self.store.load_rows([m.job_id for m in messages if claims[m.job_id].job])
        outcomes: dict[str, Job | None] = {}
        groups: dict[tuple[str, int], list[tuple[JobMessage, Job]]] = {}
        for message in messages:
            claim = claims[message.job_id]
            outcomes[message.job_id] = claim.job
            if claim.state is ClaimState.CLAIMED and claim.job is not None:
                _observe_queue_wait(claim.job)
                groups.setdefault((message.model, message.version), []).append((message, claim.job))
            else:
                self._report_unclaimed(message, claim.state, claim.job, started)

        finished: list[Job] = []
        for (name, version), members in groups.items():
            finished += self._run_group(name, version, members, stored_rows)
        stored = self.store.store_many(finished)
        for job in finished:
            if job.job_id in stored:
                outcomes[job.job_id] = job
                self._report_end(job, len(messages), started)
            else:  # the record expired while the job ran: nobody can poll it any more
                outcomes[job.job_id] = None
                log.warning(
                    "job",
                    status="dropped",
                    reason="job record expired while running",
                    job_id=job.job_id,
                    duration_ms=_ms_since(started),
                )
        return outcomes

    def _run_group(
        self,
        name: str,
        version: int,
        members: list[tuple[JobMessage, Job]],
        stored_rows: dict[str, bytes | None],
    ) -> list[Job]:
        try:
            model = self.repository.get(name, version)
        except OnnxqError as exc:
            return [lifecycle.fail(job, exc.error_type, exc.message) for _, job in members]
        except Exception as exc:  # a broken model file or runtime: fail, never loop
            log.exception("model_load_failed", model=name, version=version)
            return [lifecycle.fail(job, type(exc).__name__, str(exc)) for _, job in members]
        finished, ready = [], []
        for message, job in members:
            try:
                matrix = _input_matrix(message, model, stored_rows.get(message.job_id))
            except OnnxqError as exc:
                finished.append(lifecycle.fail(job, exc.error_type, exc.message))
                continue
            if matrix is None:
                current = self.store.get(message.job_id)
                if current.status.ended:
                    # A duplicate delivery of a job another worker just finished.
                    log.info(
                        "job",
                        status="skipped",
                        reason="inputs already consumed",
                        job_id=message.job_id,
                    )
                    continue
                # Nobody else will end it: say why it cannot run rather than leave it running.
                finished.append(lifecycle.inputs_missing(job))
                continue
            ready.append((message, job, matrix))
        if not ready:
            return finished
        try:
            results = self._predict_together(model, [matrix for *_, matrix in ready])
        except QueueUnavailable:
            raise
        except SoftTimeLimitExceeded:
            return finished + [lifecycle.timed_out(job, len(ready)) for _, job, _ in ready]
        except Exception:  # one bad job must not fail its batch-mates: run them alone
            log.exception("batch_failed_running_alone", model=name, jobs=len(ready))
            return finished + [self._run_alone(model, m, job, x) for m, job, x in ready]
        for (message, job, matrix), (result, latency_ms) in zip(ready, results, strict=True):
            finished.append(self._succeed(model, message, job, matrix, result, latency_ms))
        return finished

    def _predict_together(
        self, model: OnnxModel, matrices: list[np.ndarray]
    ) -> list[tuple[PredictionResult, float]]:
        started = time.perf_counter()
        combined = np.concatenate(matrices) if len(matrices) > 1 else matrices[0]
        parts = [
            model.predict(combined[start : start + self.chunk_rows])
            for start in range(0, len(combined), self.chunk_rows)
        ]
        seconds = time.perf_counter() - started
        latency_ms = seconds * 1000
        metrics.inference_ran(model.name, "job", len(combined), seconds)
        labels = [label for part in parts for label in part.labels]
        probabilities = [row for part in parts for row in part.probabilities]
        results, offset = [], 0
        for matrix in matrices:
            end = offset + len(matrix)
            result = PredictionResult(
                labels[offset:end], probabilities[offset:end], parts[0].classes
            )
            results.append((result, latency_ms))
            offset = end
        return results

    def _run_alone(
        self, model: OnnxModel, message: JobMessage, job: Job, matrix: np.ndarray
    ) -> Job:
        try:
            [(result, latency_ms)] = self._predict_together(model, [matrix])
        except QueueUnavailable:
            raise
        except Exception as exc:  # a model or runtime fault: record it, never loop on it
            return lifecycle.fail(job, type(exc).__name__, str(exc))
        return self._succeed(model, message, job, matrix, result, latency_ms)

    def _succeed(
        self,
        model: OnnxModel,
        message: JobMessage,
        job: Job,
        matrix: np.ndarray,
        result: PredictionResult,
        latency_ms: float,
    ) -> Job:
        self.prediction_log.record(
            model=model.name,
            version=model.version,
            rows=matrix,
            result=result,
            latency_ms=latency_ms,
            request_id=message.request_id,
            job_id=message.job_id,
            source="job",
        )
        document = {"model": model.name, "version": model.version, **result.to_dict()}
        return lifecycle.succeed(job, document)

    def _report_unclaimed(
        self, message: JobMessage, state: ClaimState, job: Job | None, started: float
    ) -> None:
        fields = _fields(message, started)
        if state is ClaimState.POISONED and job is not None:
            log.error(
                "job",
                status=job.status.value,
                error_type="poison_job",
                attempts=job.attempts,
                **fields,
            )
            metrics.job_failed(job.model, "poison_job")
            if self.on_end is not None:
                self.on_end(job)
        elif state is ClaimState.ENDED and job is not None:
            # Cancelled while queued, or a duplicate delivery of a job that ended.
            log.info("job", status="skipped", job_status=job.status.value, **fields)
        else:
            log.warning("job", status="dropped", reason="job record missing or expired", **fields)

    def _report_end(self, job: Job, batch_size: int, started: float) -> None:
        fields = {
            "job_id": job.job_id,
            "request_id": job.request_id,
            "model": job.model,
            "version": job.version,
            "rows": job.rows,
            "batch_jobs": batch_size,
            "attempt": job.attempts,
            "duration_ms": _ms_since(started),
        }
        if job.status is JobStatus.SUCCEEDED:
            log.info("job", status=job.status.value, **fields)
            metrics.job_succeeded(job.model)
        else:
            error = job.error
            log.warning(
                "job",
                status=job.status.value,
                error_type=error and error.type,
                error=error and error.message,
                **fields,
            )
            metrics.job_failed(job.model, error.type if error else "unknown")
        if self.on_end is not None:
            self.on_end(job)


def _input_matrix(message: JobMessage, model: OnnxModel, raw: bytes | None) -> np.ndarray | None:
    """The job's stored rows as the model's input matrix; None when they are gone."""
    if raw is None:
        return None
    width = len(model.manifest.features)
    if message.width != width:
        raise InvalidInput(f"rows have {message.width} features; the model takes {width}")
    return np.frombuffer(raw, dtype=np.float32).reshape(-1, width)


def _fields(message: JobMessage, started: float) -> dict[str, Any]:
    return {
        "job_id": message.job_id,
        "request_id": message.request_id,
        "model": message.model,
        "version": message.version,
        "rows": message.rows,
        "duration_ms": _ms_since(started),
    }


def _observe_queue_wait(job: Job) -> None:
    if job.started_at is not None:
        metrics.job_started(job.model, (job.started_at - job.submitted_at).total_seconds())


def _ms_since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)
