"""Errors that know their HTTP status, so one handler can render them all."""

from __future__ import annotations

from typing import Any


class OnnxqError(Exception):
    """Base of every error onnxq raises on purpose."""

    status_code: int = 500
    error_type: str = "internal_error"

    def __init__(self, message: str, details: list[dict[str, Any]] | None = None):
        super().__init__(message)
        self.message = message
        self.details = details or []

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"type": self.error_type, "message": self.message}
        if self.details:
            body["details"] = self.details
        return body


class ModelNotFound(OnnxqError):
    status_code = 404
    error_type = "model_not_found"

    def __init__(self, name: str, version: int | None = None):
        where = f"model '{name}'" if version is None else f"model '{name}' version {version}"
        super().__init__(f"{where} is not in the model repository")
        self.name = name
        self.version = version


class ModelRepositoryMissing(OnnxqError):
    """A command was pointed at a model repository that does not exist (the CLI only)."""

    error_type = "model_repository_missing"

    def __init__(self, root: object):
        super().__init__(
            f"no model repository at {root} (ONNXQ_MODEL_DIR): point ONNXQ_MODEL_DIR at the "
            "directory the gateway and workers serve, or create it (onnxq demo-model makes one)"
        )


class ModelNotReady(OnnxqError):
    status_code = 503
    error_type = "model_not_ready"


class UnsupportedFile(OnnxqError):
    """A file body the model cannot take (a tensor model's rows come as JSON)."""

    status_code = 415
    error_type = "unsupported_media_type"


class Unauthorized(OnnxqError):
    status_code = 401
    error_type = "unauthorized"


class InvalidModel(OnnxqError):
    """A model directory that cannot be served: bad manifest, checksum or file."""

    status_code = 500
    error_type = "invalid_model"


class InvalidInput(OnnxqError):
    status_code = 422
    error_type = "invalid_input"


class TooManyRows(OnnxqError):
    status_code = 413
    error_type = "too_many_rows"


class JobNotFound(OnnxqError):
    status_code = 404
    error_type = "job_not_found"

    def __init__(self, job_id: str):
        super().__init__(f"job '{job_id}' does not exist")
        self.job_id = job_id


class JobConflict(OnnxqError):
    """The job is not in a state that allows the operation (e.g. cancelling a running job)."""

    status_code = 409
    error_type = "job_conflict"

    def __init__(self, job_id: str, status: str):
        super().__init__(
            f"job '{job_id}' is already {status}; only queued jobs can be cancelled",
            [{"job_id": job_id, "status": status}],
        )
        self.status = status


class ResultNotReady(OnnxqError):
    """A job's result asked for before the job succeeded."""

    status_code = 409
    error_type = "result_not_ready"

    def __init__(self, job_id: str, status: str):
        super().__init__(
            f"job '{job_id}' is {status}: it has no result"
            + ("" if status in ("failed", "cancelled") else " yet (poll it, or wait=<s>)"),
            [{"job_id": job_id, "status": status}],
        )


class NotAcceptable(OnnxqError):
    status_code = 406
    error_type = "not_acceptable"


class IdempotencyConflict(OnnxqError):
    status_code = 409
    error_type = "idempotency_conflict"


class JobExpired(JobNotFound):
    """A job that existed, but whose record has expired."""

    status_code = 404
    error_type = "job_expired"

    def __init__(self, job_id: str, ttl_seconds: int):
        OnnxqError.__init__(
            self,
            f"job '{job_id}' has expired: jobs and results are kept {ttl_seconds} s "
            "after their last change",
        )
        self.job_id = job_id


class QueueUnavailable(OnnxqError):
    """Redis (broker or job store) cannot be reached; the request may be retried."""

    status_code = 503
    error_type = "queue_unavailable"


class ParityError(OnnxqError):
    """ONNX outputs differ from the source model's by more than the tolerance."""

    error_type = "parity_error"


class DriftProfileMissing(OnnxqError):
    """A model version has no reference profile (profile.json) to measure drift against."""

    status_code = 404
    error_type = "drift_profile_missing"

    def __init__(self, name: str, version: int):
        super().__init__(
            f"model '{name}' version {version} has no reference profile: build one with "
            f"`onnxq drift-profile {name} --version {version} --data <training.csv>`"
        )


class DriftReportNotFound(OnnxqError):
    """No drift check has written a report for this model yet."""

    status_code = 404
    error_type = "drift_report_not_found"

    def __init__(self, name: str):
        super().__init__(
            f"no drift report for model '{name}' yet: the scheduled check writes one, or run "
            f"`onnxq drift {name}`"
        )
