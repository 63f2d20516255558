"""What the client raises: the server's own error (type, message, details) as a typed exception."""

from __future__ import annotations

from typing import Any


class ClientError(Exception):
    """Base of the client's errors. From an answer: the HTTP status, the server's error `type`,
    `message` and `details` (per-field problems), and the request id it logged them under."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        type: str | None = None,
        details: list[dict[str, Any]] | None = None,
        request_id: str | None = None,
    ):
        super().__init__(message)
        self.message = message
        self.status = status
        self.type = type
        self.details = details or []
        self.request_id = request_id

    def __str__(self) -> str:
        where = f"{self.status} {self.type}: " if self.status is not None else ""
        return where + self.message


class InvalidInput(ClientError):
    """400 or 422: the rows (or the request) were refused; `details` say where."""


class Unauthorized(ClientError):
    """401: no API key, or not one the server knows."""


class NotFound(ClientError):
    """404: no such model, version or job (or the job expired)."""


class Conflict(ClientError):
    """409: an idempotency key reused with another body, or a job that can no longer change."""


class TooLarge(ClientError):
    """413: more rows than the synchronous route takes, or a body over the server's limit."""


class Unavailable(ClientError):
    """503 (or the connection) still failing after the client's retries."""


class JobFailed(ClientError):
    """The job ended `failed` (or `cancelled`); `type` and `message` are the job's error."""


class JobTimeout(ClientError, TimeoutError):
    """`Job.wait` ran out of time before the job ended."""


BY_STATUS: dict[int, type[ClientError]] = {
    400: InvalidInput,
    401: Unauthorized,
    404: NotFound,
    409: Conflict,
    413: TooLarge,
    422: InvalidInput,
    503: Unavailable,
}


def error_for(status: int, body: Any, request_id: str | None) -> ClientError:
    """The exception an error answer stands for; the V2 shape `{"error": "<text>"}` too."""
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        message = str(error.get("message", ""))
        kind, details = error.get("type"), error.get("details")
    else:
        message, kind, details = str(error or body or f"HTTP {status}"), None, None
    cls = BY_STATUS.get(status, ClientError)
    return cls(message, status=status, type=kind, details=details, request_id=request_id)
