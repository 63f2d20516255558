"""Running prediction jobs as a plain object: the predict task is a thin shell over JobRunner.

One `JobRunner.run` takes any number of job messages: it claims them (and reads their rows)
in two round trips, runs every group of same-model jobs through one `session.run`
(chunked for large jobs), and stores all outcomes in one round trip.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import structlog
from celery.exceptions import SoftTimeLimitExceeded

from onnxq.broker.task_message import Acknowledgement
from onnxq.errors import InvalidInput, OnnxqError, QueueUnavailable
from onnxq.jobs import lifecycle
from onnxq.jobs.lifecycle import ClaimState
from onnxq.jobs.record import Job
from onnxq.jobs.store import JobStore
from onnxq.models.repository import ModelRepository
from onnxq.models.result_table import arrow_stream, linked_result, result_table_columns
from onnxq.models.results import PredictionResult
from onnxq.models.session import OnnxModel
from onnxq.models.tensors import stored_rows
from onnxq.telemetry import metrics
from onnxq.telemetry.prediction_log import PredictionBatch, PredictionLog
from worker import job_events

log = structlog.get_logger("onnxq.worker")


@dataclass(frozen=True)
class JobMessage:
    """The predict message the gateway sent (onnxq.jobs.queue.predict_message); rows in Redis."""

    job_id: str
    model: str
    version: int
    request_id: str | None = None
    # features per stored row (bytes for a tensor model: tensors.stored_width); 0: the rows were
    # gone when it was re-sent
    width: int = 0
    rows: int = 0  # how many stored rows
    # A client waits for it in its request (the message's AWAITED_HEADER): a short batch wait.
    awaited: bool = False
    # The job's record and rows as read when its message was taken (QueueDrain): the claim then
    # has no read of its own to make.
    stored: tuple[bytes | None, bytes | None] | None = field(
        default=None, compare=False, repr=False
    )

    def fields(self) -> dict[str, str | int | None]:
        """What a `job` log event says about this message's job."""
        return {
            "job_id": self.job_id,
            "request_id": self.request_id,
            "model": self.model,
            "version": self.version,
            "rows": self.rows,
        }


@dataclass
class JobRunner:
    repository: ModelRepository
    store: JobStore
    prediction_log: PredictionLog
    max_attempts: int = 3
    chunk_rows: int = 10_000
    chunk_threads: int = 1
    # A result of more rows than this is stored apart as an Arrow stream; the record links it.
    inline_result_rows: int = 10_000
    _linked: dict[str, bytes] = field(default_factory=dict, init=False, repr=False)
    on_end: Callable[[Job], None] | None = None

    def run(
        self, messages: list[JobMessage], acknowledge: Acknowledgement | None = None
    ) -> dict[str, Job | None]:
        """Run the jobs; return each one's final state (None when its record is gone).

        `acknowledge`: broker messages acknowledged in the same round trip as the outcomes (the
        micro-batch's extra messages): done once this returns.
        """
        started = time.perf_counter()
        metrics.microbatch_ran(len(messages))
        claims, stored_rows = self.store.claim_with_rows(
            [m.job_id for m in messages],
            self.max_attempts,
            f"{socket.gethostname()}:{os.getpid()}",
            known={m.job_id: m.stored for m in messages if m.stored is not None},
        )
        outcomes: dict[str, Job | None] = {}
        groups: dict[tuple[str, int], list[tuple[JobMessage, Job]]] = {}
        for message in messages:
            claim = claims[message.job_id]
            outcomes[message.job_id] = claim.job
            if claim.state is ClaimState.CLAIMED and claim.job is not None:
                job_events.started(claim.job)
                groups.setdefault((message.model, message.version), []).append((message, claim.job))
                continue
            job_events.not_run(message.fields(), claim, started)
            if claim.state is ClaimState.POISONED and claim.job is not None:
                self._ended(claim.job)  # failed by this delivery's claim

        finished: list[Job] = []
        self._linked = {}
        # The batch's prediction lines go out in one write, before the outcomes are stored.
        with self.prediction_log.batch() as predictions:
            for (name, version), members in groups.items():
                finished += self._run_group(name, version, members, stored_rows, predictions)
        self.store.put_results(self._linked)  # before the records that link them
        stored = self.store.store_many(finished, acknowledge)
        for job in finished:
            if job.job_id in stored:
                outcomes[job.job_id] = job
                job_events.ended(job, len(messages), started)
                self._ended(job)
            else:
                outcomes[job.job_id] = None
                job_events.expired_while_running(job.job_id, started)
        return outcomes

    def _ended(self, job: Job) -> None:
        if self.on_end is not None:
            self.on_end(job)

    def _run_group(
        self,
        name: str,
        version: int,
        members: list[tuple[JobMessage, Job]],
        stored_rows: dict[str, bytes | None],
        predictions: PredictionBatch,
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
                # Read with its record, which was not ended: the rows expired. Nobody else will
                # end it, so say why it cannot run rather than leave it running.
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
            return finished + [
                self._run_alone(model, m, job, x, predictions) for m, job, x in ready
            ]
        for (message, job, matrix), (result, latency_ms) in zip(ready, results, strict=True):
            finished.append(
                self._succeed(model, message, job, matrix, result, latency_ms, predictions)
            )
        return finished

    def _predict_together(
        self, model: OnnxModel, matrices: list[np.ndarray]
    ) -> list[tuple[PredictionResult, float]]:
        started = time.perf_counter()
        combined = np.concatenate(matrices) if len(matrices) > 1 else matrices[0]
        parts = chunk_predictions(model, combined, self.chunk_rows, self.chunk_threads)
        seconds = time.perf_counter() - started
        latency_ms = seconds * 1000
        metrics.inference_ran(model.name, "job", len(combined), seconds)
        whole = PredictionResult.joined(parts)
        results, offset = [], 0
        for matrix in matrices:
            end = offset + len(matrix)
            results.append((whole.part(offset, end), latency_ms))
            offset = end
        return results

    def _run_alone(
        self,
        model: OnnxModel,
        message: JobMessage,
        job: Job,
        matrix: np.ndarray,
        predictions: PredictionBatch,
    ) -> Job:
        try:
            [(result, latency_ms)] = self._predict_together(model, [matrix])
        except QueueUnavailable:
            raise
        except Exception as exc:  # a model or runtime fault: record it, never loop on it
            return lifecycle.fail(job, type(exc).__name__, str(exc))
        return self._succeed(model, message, job, matrix, result, latency_ms, predictions)

    def _succeed(
        self,
        model: OnnxModel,
        message: JobMessage,
        job: Job,
        matrix: np.ndarray,
        result: PredictionResult,
        latency_ms: float,
        predictions: PredictionBatch,
    ) -> Job:
        predictions.record(
            model=model.name,
            version=model.version,
            rows=matrix,
            result=result,
            latency_ms=latency_ms,
            request_id=message.request_id,
            job_id=message.job_id,
            source="job",
        )
        if len(result) > self.inline_result_rows:
            self._linked[job.job_id] = arrow_stream(result_table_columns(result))
            document = linked_result(model.name, model.version, job.job_id, len(result))
        else:
            document = {"model": model.name, "version": model.version, **result.to_dict()}
        return lifecycle.succeed(job, document)


def chunk_predictions(
    model: OnnxModel, matrix: np.ndarray, chunk_rows: int, threads: int
) -> list[PredictionResult]:
    """`matrix` predicted `chunk_rows` rows at a time, in order; on `threads` threads at once
    when there are several chunks (one session serves concurrent runs)."""
    starts = range(0, len(matrix), chunk_rows)
    if threads < 2 or len(starts) < 2:
        return [model.predict(matrix[start : start + chunk_rows]) for start in starts]
    pool = _chunk_pool(threads)
    return list(pool.map(lambda start: model.predict(matrix[start : start + chunk_rows]), starts))


_pools: dict[tuple[int, int], ThreadPoolExecutor] = {}


def _chunk_pool(threads: int) -> ThreadPoolExecutor:
    """This process's pool of `threads` threads (a forked child makes its own)."""
    key = (os.getpid(), threads)
    if key not in _pools:
        _pools[key] = ThreadPoolExecutor(threads, thread_name_prefix="onnxq-chunk")
    return _pools[key]


def _input_matrix(message: JobMessage, model: OnnxModel, raw: bytes | None) -> np.ndarray | None:
    """The job's stored rows as the model's input batch; None when they are gone."""
    if raw is None:
        return None
    manifest = model.manifest
    if manifest.tabular and message.width != len(manifest.features):
        raise InvalidInput(
            f"rows have {message.width} features; the model takes {len(manifest.features)}"
        )
    return stored_rows(manifest, raw)  # a tensor model's rows are checked by their size
