"""onnxq's Python client: predictions and jobs over HTTP, results as numpy, pandas or Arrow.

from onnxq.client import Client

client = Client("http://127.0.0.1:8000", api_key=os.environ.get("ONNXQ_API_KEY"))
model = client.model("breast-cancer")
answer = model.predict(X)                      # X: 2-D array, DataFrame or rows
job = model.submit(X)                          # queued; idempotent across retries
result = job.wait(timeout=60).result()         # Result: .labels, .probabilities, ...
frame = result.to_pandas()
"""

from __future__ import annotations

import contextlib
import io
import json
import mmap
import os
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import numpy as np

from onnxq.client.errors import JobFailed, JobTimeout
from onnxq.client.results import Result
from onnxq.client.transport import HttpOptions, Progress, Transport

ENDED = {"succeeded", "failed", "cancelled"}
BINARY_ROWS = 1000  # from this many rows, an array goes as a .npy body: no JSON numbers to parse
FILE_TYPES = {
    ".npy": "application/x-npy",
    ".parquet": "application/vnd.apache.parquet",
    ".arrows": "application/vnd.apache.arrow.stream",
    ".csv": "text/csv",
}
RESULT_TYPES = {
    ".arrows": "application/vnd.apache.arrow.stream",
    ".parquet": "application/vnd.apache.parquet",
    ".csv": "text/csv",
    ".json": "application/json",  # {"columns": {name: values}}, every page put together
}
MAX_WAIT_SECONDS = 30  # what one waiting poll may ask the server for


class Job:
    """A submitted job: its document as last read, `wait` for its end, `result`."""

    def __init__(self, transport: Transport, document: dict[str, Any]):
        self._transport = transport
        self.document = document

    @property
    def id(self) -> str:
        return str(self.document["job_id"])

    @property
    def status(self) -> str:
        return str(self.document["status"])

    @property
    def ended(self) -> bool:
        return self.status in ENDED

    def refresh(self, wait: float = 0) -> Job:
        query = f"?wait={min(wait, MAX_WAIT_SECONDS):g}" if wait > 0 else ""
        answer = self._transport.request(
            "GET", f"/v1/jobs/{self.id}{query}", timeout=self._transport.timeout + wait
        )
        self.document = answer.body
        return self

    def wait(self, timeout: float = 300.0) -> Job:
        """Hold waiting polls (the server answers the moment the job ends) until it has ended;
        JobTimeout after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while not self.ended:
            left = deadline - time.monotonic()
            if left <= 0:
                raise JobTimeout(f"job {self.id} still {self.status} after {timeout:g} s")
            self.refresh(wait=left)
        return self

    def result(self, timeout: float = 300.0) -> Result:
        """The job's result (waiting for it first); JobFailed if it failed or was cancelled."""
        self._succeeded(timeout)
        document = self.document["result"]
        if "href" in document:  # a large result: fetched as the Arrow stream it is kept as
            accept = {"Accept": RESULT_TYPES[".arrows"]}
            answer = self._transport.request("GET", document["href"], headers=accept)
            return Result.of_table(document["model"], document["version"], answer.body)
        return Result.of(document)

    def _succeeded(self, timeout: float) -> None:
        """Wait for the end; JobFailed unless the job succeeded."""
        self.wait(timeout)
        if self.status != "succeeded":
            error = self.document.get("error") or {}
            raise JobFailed(str(error.get("message", self.status)), type=error.get("type"),
                            request_id=self.document.get("request_id"))  # fmt: skip

    def download(self, path: str | os.PathLike[str], timeout: float = 300.0) -> int:
        """Write the result to `path` as its suffix says (.parquet, .arrows: Arrow IPC stream,
        .csv, .json: every row's columns) from the result route; return the bytes written."""
        self._succeeded(timeout)
        target = Path(path)
        kind = RESULT_TYPES.get(target.suffix.lower())
        if kind is None:
            raise ValueError(f"{target}: a result file is .parquet, .arrows, .csv or .json")
        url = f"/v1/jobs/{self.id}/result"
        if kind == RESULT_TYPES[".json"]:
            columns: dict[str, list[Any]] = {}
            offset, rows = 0, None
            while rows is None or offset < rows:
                page = self._transport.request("GET", f"{url}?offset={offset}").body
                rows = page["rows"]
                for name, values in page["columns"].items():
                    columns.setdefault(name, []).extend(values)
                offset += page["limit"] or rows  # an empty result: one page
            data = json.dumps({"rows": rows, "columns": columns}).encode()
        else:
            data = self._transport.request("GET", url, headers={"Accept": kind}).body
        target.write_bytes(data)
        return len(data)

    def __repr__(self) -> str:
        return f"Job({self.id!r}, {self.status!r})"


class Model:
    """One model of the server (its default version, or the one given)."""

    def __init__(self, transport: Transport, name: str, version: int | None = None):
        self._transport, self.name, self.version = transport, name, version

    def predict(self, rows: Any) -> Result:
        """A synchronous prediction (small batches: the server's ONNXQ_SYNC_MAX_ROWS)."""
        answer = self._transport.request("POST", f"/v1/models/{self.name}/predict",
                                         self._body(rows))  # fmt: skip
        return Result.of(answer.body)

    def submit(
        self,
        rows: Any,
        idempotency_key: str | None = None,
        callback_url: str | None = None,
        progress: Progress | None = None,
    ) -> Job:
        """Queue a job of `rows` (a 2-D array, a DataFrame, a list of rows, or the path of a
        .parquet, .npy, .arrows or .csv file). A numeric array or DataFrame of BINARY_ROWS rows or
        more goes as a .npy body (float32, feature order), not JSON. Every submit carries an
        Idempotency-Key (a new one unless given), so a retry after a dropped connection returns
        the same job rather than a second one. `progress(sent, total)` follows a file's upload."""
        headers = {"Idempotency-Key": idempotency_key or uuid.uuid4().hex}
        path = f"/v1/models/{self.name}/jobs"
        file = self._file_body(rows)
        if file is None:
            body = self._body(rows)
            if callback_url is not None:
                body["callback_url"] = callback_url
            answer = self._transport.request("POST", path, body, headers)
        else:
            data, kind = file
            query = {k: v for k, v in (("version", self.version), ("callback_url", callback_url))
                     if v is not None}  # fmt: skip
            suffix = f"?{urlencode(query)}" if query else ""
            try:
                answer = self._transport.request("POST", path + suffix, headers=headers,
                                                 data=data, content_type=kind,
                                                 progress=progress)  # fmt: skip
            finally:
                if isinstance(data, mmap.mmap):
                    # A view of it may live on in a traceback: the map then closes when freed.
                    with contextlib.suppress(BufferError):
                        data.close()
        return Job(self._transport, answer.body)

    def _file_body(self, rows: Any) -> tuple[bytes | mmap.mmap, str] | None:
        """The body and media type of rows sent as a file; None for a JSON body."""
        if isinstance(rows, str | os.PathLike):
            path = Path(rows)
            kind = FILE_TYPES.get(path.suffix.lower())
            if kind is None:
                kinds = ".parquet, .npy, .arrows (Arrow IPC stream) or .csv"
                raise ValueError(f"{path}: a job file is {kinds}")
            with path.open("rb") as handle:  # sent from the page cache, not read into memory
                if not os.fstat(handle.fileno()).st_size:
                    return b"", kind
                return mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ), kind
        if hasattr(rows, "columns") and hasattr(rows, "to_numpy") and len(rows) >= BINARY_ROWS:
            rows = rows[self.feature_names()].to_numpy(dtype=np.float32, na_value=np.nan)
        if isinstance(rows, np.ndarray) and rows.dtype.kind in "biuf" and len(rows) >= BINARY_ROWS:
            out = io.BytesIO()
            np.save(out, np.ascontiguousarray(rows, dtype=np.float32), allow_pickle=False)
            return out.getvalue(), FILE_TYPES[".npy"]
        return None

    def feature_names(self) -> list[str]:
        """The model's features, in the order its rows take them."""
        return [feature["name"] for feature in self.metadata()["features"]]

    def metadata(self) -> dict[str, Any]:
        suffix = f"/versions/{self.version}" if self.version is not None else ""
        return self._transport.request("GET", f"/v1/models/{self.name}{suffix}").body  # type: ignore[no-any-return]

    def _body(self, rows: Any) -> dict[str, Any]:
        body: dict[str, Any] = {"instances": instances(rows)}
        if self.version is not None:
            body["version"] = self.version
        return body


def instances(rows: Any) -> list[Any]:
    """Rows as the JSON body takes them: a DataFrame by column name, an array or a sequence of
    rows in manifest feature order; missing values (NaN, None) as null."""
    if hasattr(rows, "to_dict") and hasattr(rows, "columns"):  # a pandas DataFrame
        records = rows.astype(object).where(rows.notna(), None).to_dict(orient="records")
        return [{str(k): v for k, v in record.items()} for record in records]
    if isinstance(rows, np.ndarray):
        if rows.ndim != 2:
            raise ValueError(f"rows must be 2-D (rows x features), not shape {rows.shape}")
        values = rows.astype(object)
        if rows.dtype.kind == "f":
            values[np.isnan(rows)] = None
        return values.tolist()  # type: ignore[no-any-return]
    if isinstance(rows, Sequence) and not isinstance(rows, str | bytes):
        return [_nulls(row) for row in rows]
    raise TypeError(f"rows must be a 2-D array, a DataFrame or a list of rows, not {type(rows)}")


def _nulls(row: Any) -> Any:
    """A row with NaN as None (JSON has no NaN; the server reads null as missing)."""
    if isinstance(row, dict):
        return {key: None if _is_nan(value) else value for key, value in row.items()}
    if isinstance(row, Sequence) and not isinstance(row, str | bytes):
        return [None if _is_nan(value) else value for value in row]
    return row


def _is_nan(value: Any) -> bool:
    return isinstance(value, float) and value != value


class Client:
    """onnxq over HTTP. `retries` and `backoff` apply to 503/429 and to connection failures."""

    def __init__(
        self,
        url: str,
        api_key: str | None = None,
        *,
        timeout: float = 60.0,
        retries: int = 5,
        backoff: float = 0.2,
    ):
        self._transport = Transport(url, api_key, HttpOptions(timeout, retries, backoff))

    def model(self, name: str, version: int | None = None) -> Model:
        return Model(self._transport, name, version)

    def job(self, job_id: str) -> Job:
        """A job by id (one submitted earlier, perhaps by another process)."""
        return Job(self._transport, {"job_id": job_id, "status": "unknown"}).refresh()

    def models(self) -> list[dict[str, Any]]:
        return self._transport.request("GET", "/v1/models").body["models"]  # type: ignore[no-any-return]

    def close(self) -> None:
        self._transport.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
