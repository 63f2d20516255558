"""onnxq's Python client (standard library and numpy only): `Client(url, api_key=...)`."""

from onnxq.client.client import Client, Job, Model
from onnxq.client.errors import (
    ClientError,
    Conflict,
    InvalidInput,
    JobFailed,
    JobTimeout,
    NotFound,
    TooLarge,
    Unauthorized,
    Unavailable,
)
from onnxq.client.results import Result

__all__ = [
    "Client",
    "ClientError",
    "Conflict",
    "InvalidInput",
    "Job",
    "JobFailed",
    "JobTimeout",
    "Model",
    "NotFound",
    "Result",
    "TooLarge",
    "Unauthorized",
    "Unavailable",
]
