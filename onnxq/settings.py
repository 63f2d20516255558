"""Typed settings, read once at process start from ONNXQ_* variables and an optional .env."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

ENV_FILE_VARIABLE = "ONNXQ_ENV_FILE"
DEFAULT_ENV_FILE = ".env"


def env_file() -> str | None:
    """The .env file settings are read from: $ONNXQ_ENV_FILE, default `.env` in the working
    directory; set but empty, none (the test suite runs every process that way)."""
    name = os.environ.get(ENV_FILE_VARIABLE, DEFAULT_ENV_FILE).strip()
    return name or None


class Settings(BaseSettings):
    """Everything a gateway, worker or CLI process needs to know about its surroundings."""

    model_config = SettingsConfigDict(
        env_prefix="ONNXQ_",
        env_file=DEFAULT_ENV_FILE,  # replaced by env_file() unless _env_file is given
        env_file_encoding="utf-8",
        extra="ignore",
        use_attribute_docstrings=True,
    )

    redis_url: str = "redis://127.0.0.1:6379/0"
    """Redis used as the Celery broker and as the job store."""

    model_dir: Path = Path("models")
    """Root of the model repository: <model_dir>/<name>/<version>/{model.onnx,manifest.json}."""

    prediction_log_dir: Path = Path("var/predictions")
    """Where the prediction log is written: Arrow segments under <UTC day>/<model>/<version>/, one
    per writing process (docs/prediction-log.md)."""

    prediction_log_keep_days: int = Field(default=30, ge=1)
    """UTC days of the prediction log kept besides today: beat's log tidy removes older days. At
    least ONNXQ_DRIFT_WINDOW_DAYS, so that a drift check always finds its whole window."""

    prediction_log_tidy_schedule: str = "17 * * * *"
    """When beat tidies the prediction log (gzips the segments of the days before yesterday,
    removes the days past ONNXQ_PREDICTION_LOG_KEEP_DAYS): a crontab (UTC) or seconds."""

    api_keys: Annotated[list[SecretStr], NoDecode] = Field(default_factory=list)
    """Comma-separated API keys, sent as `Authorization: Bearer <key>` or `X-API-Key`."""

    api_keys_file: Path | None = None
    """File with more API keys, one per line or comma-separated (a Docker/Kubernetes secret)."""

    allow_unauthenticated: bool = False
    """Development only: let the gateway start with no API key configured (it logs a warning)."""

    sync_max_rows: int = Field(default=1000, ge=1)
    """Most rows the synchronous predict route accepts; larger batches go to the jobs route."""

    ort_intra_op_threads: int = Field(default=1, ge=1)
    """ONNX Runtime intra-op threads per process; processes x threads should not exceed cores."""

    ort_inter_op_threads: int = Field(default=1, ge=1)
    """ONNX Runtime inter-op threads per process (only used by parallel execution mode)."""

    gateway_host: str = "127.0.0.1"
    """Address gunicorn binds to: this machine only unless told otherwise (the images set
    0.0.0.0, as a container must)."""

    gateway_port: int = Field(default=8000, ge=1, le=65535)
    """Port gunicorn binds to."""

    gateway_workers: int = Field(default=2, ge=1)
    """gunicorn worker processes; each holds its own warm ONNX Runtime sessions."""

    grpc_port: int = Field(default=8001, ge=0, le=65535)
    """Port of the Open Inference Protocol gRPC service (as Triton's); 0 turns it off."""

    grpc_host: str = "127.0.0.1"
    """Address the gRPC service binds to (the images set 0.0.0.0, as a container must)."""

    grpc_workers: int = Field(default=2, ge=1)
    """gRPC server processes, sharing the port (SO_REUSEPORT); each holds warm sessions."""

    grpc_metrics_port: int = Field(default=9102, ge=0, le=65535)
    """Port of the gRPC service's Prometheus `/metrics` server; 0 turns it off."""

    worker_concurrency: int = Field(default_factory=lambda: max(1, os.cpu_count() or 1), ge=1)
    """Celery worker processes per worker container."""

    max_body_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)
    """Largest request body the gateway reads (a 100,000-row job is ~25 MB); larger: 413."""

    client_header_timeout_seconds: int = Field(default=10, ge=1)
    """How long a client may take to send a request line and headers, and how long an idle
    keep-alive connection stays open; then the gateway closes the connection."""

    client_keepalive_requests: int = Field(default=100, ge=1)
    """Requests one keep-alive connection carries before the gateway closes it after answering,
    so that clients reconnect and connections spread over the gateway processes by load."""

    client_body_timeout_seconds: float = Field(default=10.0, gt=0)
    """How long reading a request body may take, plus its size at the rate below; past that
    deadline the gateway answers 408 and closes the connection."""

    client_body_min_bytes_per_second: int = Field(default=1024 * 1024, ge=1024)
    """Slowest upload the body deadline allows for (64 MiB: 10 s + 64 s)."""

    job_ttl_seconds: int = Field(default=24 * 3600, ge=60)
    """How long a job and its result stay pollable after its last change (queued, finished)."""

    callback_max_attempts: int = Field(default=5, ge=1, le=20)
    """Attempts to deliver a job's completion callback before giving up."""

    callback_backoff_seconds: float = Field(default=1.0, gt=0)
    """First retry delay of a failed callback; doubles each attempt, capped at 60 s."""

    callback_timeout_seconds: float = Field(default=5.0, gt=0)
    """How long one callback POST may take."""

    outbound_allow: Annotated[list[str], NoDecode] = Field(default_factory=list)
    """Comma-separated host names and networks (`hooks.internal,10.1.0.0/16`) that callbacks
    and drift webhooks may reach although they are not public; everything else not globally
    routable (loopback, private, link-local) is refused."""

    queue_name: str = "onnxq.predict"
    """Celery queue the prediction jobs travel on (callbacks use `<queue_name>.callbacks`)."""

    visibility_timeout_seconds: int = Field(default=30, ge=5)
    """How long a dead worker's messages stay hidden before Redis hands them out again (live
    workers renew the lease on what they hold, so jobs may run far longer)."""

    task_soft_time_limit_seconds: int = Field(default=240, ge=1)
    """A job running longer gets SoftTimeLimitExceeded and is failed as 'timeout'."""

    task_time_limit_seconds: int = Field(default=300, ge=2)
    """A job running longer has its worker process killed (and is redelivered)."""

    job_max_attempts: int = Field(default=3, ge=1)
    """Deliveries of one job before it is failed as a poison job (its worker died each time)."""

    transient_retry_max: int = Field(default=5, ge=0)
    """Retries, with backoff, of a job that hit a transient error (Redis unreachable)."""

    job_max_rows: int = Field(default=100_000, ge=1)
    """Most rows one job may carry; more is a 413 at submit."""

    job_chunk_rows: int = Field(default=10_000, ge=1)
    """Rows per session.run when a large job is run in chunks."""

    job_file_max_rows: int = Field(default=1_000_000, ge=1)
    """Most rows of a job submitted as a file (Arrow, CSV, .npy); more is a 413 at submit."""

    job_file_max_bytes: int = Field(default=1024**3, ge=1024)
    """Largest file body of a job (written to the blob store as it arrives, never held in
    memory); larger is a 413. JSON bodies have ONNXQ_MAX_BODY_BYTES."""

    job_inline_result_rows: int = Field(default=10_000, ge=0)
    """A job of more rows than this keeps its input rows and its result in the blob store, not
    in Redis, and its document links the result instead of holding it (`result.href`:
    GET /v1/jobs/<id>/result, as an Arrow stream, CSV or JSON pages)."""

    job_chunk_threads: int = Field(default=2, ge=1, le=64)
    """Threads a worker process runs a large job's chunks on at once (ONNX Runtime releases the
    GIL while it runs): one job of more than ONNXQ_JOB_CHUNK_ROWS rows then uses this many cores,
    where one session.run at a time used one."""

    microbatch_max_jobs: int = Field(default=64, ge=1, le=256)
    """Most waiting jobs a worker runs together through one session.run (at most 256)."""

    microbatch_wait_ms: float = Field(default=3.0, ge=0, le=1000)
    """Once a batch has its first job, how long a worker waits for more before running it (it
    looks at the queue again once, when the time is up); 0 takes only jobs already waiting.
    Each batch costs a worker ~0.6 ms of CPU besides ~0.1 ms per job: under load, a few ms of
    waiting gathers jobs that would otherwise each pay for a batch (docs/benchmarks.md)."""

    microbatch_queued_wait_ms: float = Field(default=15.0, ge=0, le=1000)
    """The same wait for a batch none of whose jobs a client waits for in its request (all
    submitted without `Prefer: wait`): such clients poll, and a few ms more are invisible to
    them, while larger batches leave more CPU to the gateway under a burst. Never shorter than
    ONNXQ_MICROBATCH_WAIT_MS."""

    microbatch_linger_ms: float = Field(default=200.0, ge=0, le=1000)
    """After a batch, how long a worker process waits for the next one itself before it hands
    back to Celery (0: after every batch); a busy one hands back after 2 s (or a tenth of the
    soft time limit, if less)."""

    state_dir: Path = Path("var")
    """Writable directory for process state: Celery beat's schedule file, drift reports."""

    blob_dir: Path | None = None
    """Where large job data is kept (file uploads, and the input rows and results of jobs of more
    than ONNXQ_JOB_INLINE_RESULT_ROWS rows), removed when the job expires; every gateway and
    worker must see the same directory (a shared volume). Default: <state_dir>/blobs."""

    reconcile_interval_seconds: float = Field(default=10.0, gt=0)
    """How often beat runs the reconciler that re-sends jobs whose message was lost."""

    reconcile_stale_seconds: float = Field(default=15.0, gt=0)
    """A queued job older than this with no message left in Redis is re-sent by the reconciler."""

    log_level: str = "INFO"
    """Level of the structured JSON logs written to stdout."""

    drift_window_days: int = Field(default=7, ge=1)
    """Days of the prediction log a drift check compares with the training profile."""

    drift_threshold: float = Field(default=0.2, gt=0)
    """PSI a feature's drift must be shown to exceed (at the check's family-wise confidence,
    docs/drift.md) to raise an alert."""

    drift_missing_threshold: float = Field(default=0.1, gt=0, le=1)
    """Rise in a feature's missing rate (0.1 = 10 points) it must be shown to exceed to drift."""

    drift_unseen_threshold: float = Field(default=0.01, gt=0, le=1)
    """Rise in the share of a feature's values never seen in training (beyond the training range,
    or of no training category; 0.01 = 1 point) it must be shown to exceed to drift."""

    drift_family_alpha: float = Field(default=0.05, gt=0, lt=1)
    """Chance allowed that a check raises any alert when nothing drifted, shared out among its
    tests (2 per feature and model output)."""

    drift_min_rows: int = Field(default=0, ge=0)
    """Fewer logged rows than this in the window: no verdict at all ('insufficient data'). The
    minimum windows that follow from the reference's size are computed besides (docs/drift.md)."""

    drift_bins: int = Field(default=10, ge=2, le=100)
    """Quantile bins per numeric feature when a reference profile is built."""

    drift_schedule: str = "0 6 * * 1"
    """When beat runs the drift check: a crontab (minute hour day month weekday, UTC) or seconds."""

    drift_history_keep: int = Field(default=52, ge=1)
    """Timestamped drift reports kept per model besides the latest one."""

    drift_webhook_url: SecretStr | None = None
    """URL a drift alert is POSTed to as JSON; empty: alerts are only logged (`drift_alert`)."""

    drift_webhook_timeout_seconds: float = Field(default=5.0, gt=0)
    """How long one drift webhook POST may take."""

    drift_webhook_attempts: int = Field(default=3, ge=1, le=10)
    """Attempts to deliver a drift alert to the webhook before logging it as failed."""

    drift_webhook_backoff_seconds: float = Field(default=1.0, ge=0)
    """Wait before the second webhook attempt; doubles each attempt."""

    metrics_dir: Path | None = None
    """Where gateway and worker processes share Prometheus metric files (`<dir>/gateway`,
    `<dir>/worker`, wiped at start); empty: a fresh temporary directory per process tree."""

    worker_metrics_port: int = Field(default=9101, ge=0, le=65535)
    """Port of the worker's Prometheus `/metrics` server (its main process); 0 turns it off."""

    worker_metrics_host: str = "127.0.0.1"
    """Address the worker's `/metrics` server binds to (the worker image sets 0.0.0.0)."""

    def __init__(self, **values: Any) -> None:
        values.setdefault("_env_file", env_file())
        super().__init__(**values)

    @property
    def blob_root(self) -> Path:
        """The blob store's directory (ONNXQ_BLOB_DIR, or under the state directory)."""
        return self.blob_dir if self.blob_dir is not None else self.state_dir / "blobs"

    @property
    def blob_sweep_grace_seconds(self) -> float:
        """How old a blob with no job record must be before it is removed: longer than the
        largest file body may take to arrive (its upload has no record until it is checked)."""
        upload = self.job_file_max_bytes / self.client_body_min_bytes_per_second
        return self.client_body_timeout_seconds + upload + 60

    @model_validator(mode="after")
    def _read_keys_file(self) -> Settings:
        if self.api_keys_file is not None:
            text = self.api_keys_file.read_text(encoding="utf-8")
            keys = [key.strip() for key in text.replace(",", "\n").splitlines() if key.strip()]
            self.api_keys = [*self.api_keys, *(SecretStr(key) for key in keys)]
        return self

    @model_validator(mode="after")
    def _check_time_limits(self) -> Settings:
        if not self.task_soft_time_limit_seconds < self.task_time_limit_seconds:
            raise ValueError("task_soft_time_limit_seconds must be below task_time_limit_seconds")
        return self

    @field_validator("drift_webhook_url", mode="before")
    @classmethod
    def _no_empty_webhook(cls, value: object) -> object:
        # compose passes ONNXQ_DRIFT_WEBHOOK_URL= when it is unset: that means no webhook.
        return None if isinstance(value, str) and not value.strip() else value

    @model_validator(mode="after")
    def _check_log_keeps_the_drift_window(self) -> Settings:
        if self.prediction_log_keep_days < self.drift_window_days:
            raise ValueError(
                f"prediction_log_keep_days ({self.prediction_log_keep_days}) must be at least "
                f"drift_window_days ({self.drift_window_days}): the drift check reads that far back"
            )
        return self

    @field_validator("drift_schedule", "prediction_log_tidy_schedule")
    @classmethod
    def _check_schedule(cls, value: str, info: ValidationInfo) -> str:
        text = value.strip()
        try:
            seconds = float(text)
        except ValueError:
            if len(text.split()) != 5:
                raise ValueError(
                    f"{info.field_name} must be seconds or a 5-field crontab, e.g. '0 6 * * 1'"
                ) from None
            return text
        if seconds <= 0:
            raise ValueError(f"{info.field_name} in seconds must be positive")
        return text

    @field_validator("api_keys", "outbound_allow", mode="before")
    @classmethod
    def _split_keys(cls, value: object) -> object:
        if isinstance(value, str):
            return [key.strip() for key in value.split(",") if key.strip()]
        return value


def effective_configuration(settings: Settings) -> dict[str, object]:
    """Every setting as JSON-ready values for the start-up log, with no secret in it.

    API keys are reduced to how many there are; a password in the Redis URL is masked.
    """
    values = settings.model_dump(mode="json")
    values["api_keys"] = f"{len(settings.api_keys)} configured"
    values["redis_url"] = _masked_url(settings.redis_url)
    return values


def _masked_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    userinfo = f"{parts.username}:***" if parts.username else ":***"
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"{userinfo}@{host}"))
