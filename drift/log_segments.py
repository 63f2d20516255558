"""The prediction log's files: Arrow IPC stream segments, one batch of rows per record batch.

Layout (docs/prediction-log.md), under the log directory:

    <YYYY-MM-DD>/<model>/<version>/<host>-<pid>-<token>-<seq>.arrows

One segment is written by one process only (its name says which), so writers never share a file
or a lock; a process starts a new segment at a new UTC day, past a size, or when it restarts. A
record batch holds the rows of one request or one job, with the columns below. The format is
standard Arrow IPC (the stream format): pyarrow (`pyarrow.ipc.open_stream`), polars
(`read_ipc_stream`), DuckDB and nanoarrow read it; `onnxq log` prints it as JSON lines.

Why not a JSON line per row, as before: writing each row's decimals cost as much CPU as the
model itself on a 1,000-row request (one core-millisecond per 30,000 floats), and a file job of
1,000,000 rows wrote 450 MB; a record batch is the model's own float32 buffers (120 bytes a row
here), written as they are.

This module is the format's one definition: onnxq's PredictionLog writes with these names and
`read_segment` reads them back.
"""

from __future__ import annotations

import gzip
import re
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import nanoarrow as na
import numpy as np
import orjson

SUFFIX = ".arrows"
COMPRESSED_SUFFIX = ".gz"  # a segment of a day before yesterday, gzipped (onnxq's log tidy)
FORMAT_VERSION = "1"  # the schema metadata's `onnxq.log_format`
DAY_DIRECTORY = re.compile(r"^\d{4}-\d{2}-\d{2}$")

# Columns, in the order a record batch has them; features and the outputs only where the model
# has them (a tensor model's input tensors are not logged).
TS = "ts"  # timestamp[ms, UTC]: when the batch was predicted
SOURCE = "source"  # utf8: sync, v2, grpc or job
REQUEST_ID = "request_id"  # utf8, nullable
JOB_ID = "job_id"  # utf8, nullable: null for a synchronous prediction
ROW = "row"  # int64: the row's index in its request or job
FEATURES = "features"  # fixed_size_list<float32>[features]: what the model saw; NaN = missing
LABEL = "label"  # int64, float64 or utf8: a classifier's label
PROBABILITIES = "probabilities"  # fixed_size_list<float32>[classes]
PREDICTION = "prediction"  # float32, or fixed_size_list<float32>[targets]
OUTPUTS = "outputs"  # utf8: a tensor model's outputs of the row, a JSON object
LATENCY_MS = "latency_ms"  # float64: the session.run of the whole batch


def segment_directory(log_dir: Path, day: date, model: str, version: int) -> Path:
    return log_dir / f"{day:%Y-%m-%d}" / model / str(version)


def segment_files(
    log_dir: str | Path,
    model: str | None = None,
    version: int | None = None,
    first: date = date.min,
    last: date = date.max,
) -> list[Path]:
    """The segments under `log_dir` of `model` (every model if None) and `version` (every
    version if None) written on the UTC days first..last: by day, model, version, name."""
    root = Path(log_dir)
    if not root.is_dir():
        return []
    found: list[Path] = []
    for day_dir in sorted(root.iterdir()):
        day = day_of_directory(day_dir)
        if day is None or not first <= day <= last:
            continue
        models = [day_dir / model] if model is not None else sorted(day_dir.iterdir())
        for model_dir in (m for m in models if m.is_dir()):
            if version is not None:
                versions = [model_dir / str(version)]
            else:  # numeric order: version 10 after version 9
                versions = sorted(model_dir.iterdir(), key=lambda p: (len(p.name), p.name))
            for version_dir in versions:
                found += segments_in(version_dir)
    return found


def day_of_directory(day_dir: Path) -> date | None:
    """The UTC day a log directory holds, or None for anything else in the log directory."""
    if not DAY_DIRECTORY.match(day_dir.name) or not day_dir.is_dir():
        return None
    try:
        return date.fromisoformat(day_dir.name)
    except ValueError:
        return None


def segments_in(version_dir: Path) -> list[Path]:
    """A version directory's segments, by name; while a segment and its compressed copy both
    exist (the tidy between its rename and its unlink), only the segment."""
    if not version_dir.is_dir():
        return []
    plain = {p.name: p for p in version_dir.glob(f"*{SUFFIX}")}
    compressed = {
        p.name.removesuffix(COMPRESSED_SUFFIX): p
        for p in version_dir.glob(f"*{SUFFIX}{COMPRESSED_SUFFIX}")
    }
    return [plain.get(name) or compressed[name] for name in sorted({*plain, *compressed})]


@dataclass
class LoggedRows:
    """One record batch read back: a column per field, numpy where numeric."""

    model: str
    version: int
    ts_ms: np.ndarray  # int64
    source: list[str]
    request_id: list[str | None]
    job_id: list[str | None]
    row: np.ndarray  # int64
    latency_ms: np.ndarray  # float64
    features: np.ndarray | None = None  # rows x features, float32
    label: list[Any] | None = None
    probabilities: np.ndarray | None = None  # rows x classes, float32
    prediction: np.ndarray | None = None  # float32, one column per target
    outputs: list[str] | None = None  # JSON objects

    def __len__(self) -> int:
        return len(self.row)

    def lines(self) -> list[dict[str, Any]]:
        """Each row as a JSON object (what `onnxq log` prints): the columns' values, the
        float32 ones as their shortest round-trip decimals, NaN as null."""
        shared = {"model": self.model, "version": self.version}
        columns: dict[str, list[Any]] = {
            TS: [_iso(ms) for ms in self.ts_ms.tolist()],
            SOURCE: self.source,
            REQUEST_ID: self.request_id,
            JOB_ID: self.job_id,
        }
        order = [TS, SOURCE, REQUEST_ID, JOB_ID, "model", "version", ROW, FEATURES]
        columns[ROW] = self.row.tolist()
        columns[FEATURES] = (
            _decimals(self.features) if self.features is not None else [None] * len(self)
        )
        for name in (LABEL, PROBABILITIES, PREDICTION):
            value = getattr(self, name)
            if value is not None:
                columns[name] = value if name == LABEL else _decimals(value)
                order.append(name)
        if self.outputs is not None:
            columns[OUTPUTS] = [orjson.loads(text) for text in self.outputs]
            order.append(OUTPUTS)
        columns[LATENCY_MS] = [round(ms, 3) for ms in self.latency_ms.tolist()]
        order.append(LATENCY_MS)
        return [
            {key: shared[key] if key in shared else columns[key][i] for key in order}
            for i in range(len(self))
        ]


@dataclass
class SegmentRead:
    """What `read_segment` found: the batches, and whether the file ended mid-batch."""

    batches: list[LoggedRows]
    truncated: bool = False


def _iso(ms: int) -> str:
    return (
        datetime.fromtimestamp(ms / 1000, UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


def _decimals(array: np.ndarray) -> list[Any]:
    return orjson.loads(
        orjson.dumps(np.ascontiguousarray(array), option=orjson.OPT_SERIALIZE_NUMPY)
    )  # type: ignore[no-any-return]


def read_segment(path: Path) -> SegmentRead:
    """Every whole record batch of a segment; a segment cut short (its process killed while
    writing) yields the batches before the cut and says so."""
    read = SegmentRead([])
    for batch in stream_segment(path):
        if batch is None:
            read.truncated = True
        else:
            read.batches.append(batch)
    return read


def stream_segment(path: Path) -> Iterator[LoggedRows | None]:
    """A segment's whole record batches one at a time (memory: one batch, not the segment),
    then None if it was cut short. A compressed segment is read through gzip."""
    try:
        if path.stat().st_size == 0:
            return  # opened, and its writer stopped before its first write
    except FileNotFoundError:  # compressed since it was listed
        path = path.with_name(path.name + COMPRESSED_SUFFIX)
    with ExitStack() as files:
        try:
            if path.name.endswith(COMPRESSED_SUFFIX):
                stream = na.ArrayStream.from_readable(files.enter_context(gzip.open(path)))
            else:
                stream = na.ArrayStream.from_path(str(path))
            metadata = {k.decode(): v.decode() for k, v in (stream.schema.metadata or {}).items()}
            model, version = metadata.get("model", ""), int(metadata.get("version", "0"))
            names = [stream.schema.field(i).name for i in range(stream.schema.n_fields)]
            batches = iter(stream)
        except Exception:  # nanoarrow raises its own exception for a short or corrupt message
            yield None
            return
        while True:
            try:
                batch = next(batches)
            except StopIteration:
                return
            except Exception:
                yield None
                return
            yield _rows(model, version, names, batch)


def _rows(model: str, version: int, names: list[str], batch: Any) -> LoggedRows:
    columns = {name: batch.child(i) for i, name in enumerate(names)}
    rows = LoggedRows(
        model=model,
        version=version,
        ts_ms=_numbers(columns[TS], np.int64),
        source=columns[SOURCE].to_pylist(),
        request_id=columns[REQUEST_ID].to_pylist(),
        job_id=columns[JOB_ID].to_pylist(),
        row=_numbers(columns[ROW], np.int64),
        latency_ms=_numbers(columns[LATENCY_MS], np.float64),
    )
    if FEATURES in columns:
        rows.features = _matrix(columns[FEATURES])
    if LABEL in columns:
        label = columns[LABEL]
        kind = label.schema.type
        rows.label = (
            label.to_pylist() if kind == na.Type.STRING else _numbers(label, _NUMPY[kind]).tolist()
        )
    if PROBABILITIES in columns:
        rows.probabilities = _matrix(columns[PROBABILITIES])
    if PREDICTION in columns:
        prediction = columns[PREDICTION]
        rows.prediction = (
            _matrix(prediction)
            if prediction.schema.type == na.Type.FIXED_SIZE_LIST
            else _numbers(prediction, np.float32)
        )
    if OUTPUTS in columns:
        rows.outputs = columns[OUTPUTS].to_pylist()
    return rows


_NUMPY = {na.Type.INT64: np.int64, na.Type.DOUBLE: np.float64, na.Type.FLOAT: np.float32}


def _numbers(array: Any, dtype: Any) -> np.ndarray:
    values = np.frombuffer(array.buffer(1), dtype=dtype)
    return values[array.offset : array.offset + len(array)]


def _matrix(array: Any) -> np.ndarray:
    """A fixed_size_list<float32> column as a rows x width matrix."""
    width = array.schema.list_size
    flat = np.frombuffer(array.child(0).buffer(1), dtype=np.float32)
    start = array.offset * width + array.child(0).offset
    return flat[start : start + len(array) * width].reshape(len(array), width)
