"""Drift check speed and memory: 30 features x N logged rows, read and binned against a profile.

    .venv/bin/python bench/drift.py [--rows 100000,1000000] [--features 30] [--reps 2]

Writes a synthetic prediction log with onnxq's own PredictionLog (the real format: segments per
UTC day over the last 7 days; and once the earlier JSONL layout, as a same-run baseline), builds a
profile from synthetic training data, then runs
`compute_drift` on each log size in a fresh child process (so that its peak RSS is its own),
alternating sizes over the repetitions. Prints a Markdown table: wall and CPU seconds, rows/s,
peak RSS, and time and rows relative to the smallest size (linear: the ratios are equal).
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# As a script, Python puts bench/ first on sys.path, where this file would hide the drift
# package: import from the repository root instead.
if Path(sys.path[0]).resolve() == ROOT / "bench":
    sys.path[0] = str(ROOT)

import numpy as np  # noqa: E402
import orjson  # noqa: E402

from drift import build_profile, compute_drift  # noqa: E402
from drift.profile import ReferenceProfile  # noqa: E402
from onnxq.models.results import PredictionResult  # noqa: E402
from onnxq.telemetry.prediction_log import PredictionLog  # noqa: E402

MODEL = "bench"
BATCH = 10_000


def write_log(directory: Path, rows: int, features: int, now: datetime, layout: str) -> int:
    """Log ``rows`` rows spread over the last 7 days; one feature in three drifts a little.
    `layout`: "segments" (PredictionLog's), or "jsonl", the earlier log's line per row, as a
    baseline."""
    rng = np.random.default_rng(rows)
    when = [now]
    log = PredictionLog(directory, clock=lambda: int(when[0].timestamp() * 1e9))
    written = 0
    while written < rows:
        size = min(BATCH, rows - written)
        matrix = rng.normal(0.0, 1.0, (size, features)).astype(np.float32)
        matrix[:, ::3] += 0.3
        p = rng.random(size)
        labels = (p > 0.5).astype(int).tolist()
        probabilities = np.c_[1 - p, p].astype(np.float32)
        # spread the batches over the window
        when[0] = now - timedelta(days=6.9 * (1 - written / rows))
        ids = {"request_id": uuid.uuid4().hex, "job_id": uuid.uuid4().hex}
        if layout == "jsonl":
            _append_lines(directory, when[0], matrix, labels, probabilities, ids, written)
        else:
            result = PredictionResult.classification(labels, probabilities, [0, 1])
            log.record(model=MODEL, version=1, rows=matrix, result=result, latency_ms=1.0,
                       source="job", first_row=written, **ids)  # fmt: skip
        written += size
    return sum(path.stat().st_size for path in directory.rglob("*") if path.is_file())


def _append_lines(
    directory: Path,
    when: datetime,
    matrix: np.ndarray,
    labels: list[int],
    probabilities: np.ndarray,
    ids: dict[str, str],
    first_row: int,
) -> None:
    """The earlier layout: predictions-<day>.jsonl, a JSON line per row, in its key order."""
    stamp = when.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    lines = [
        orjson.dumps(
            {
                "ts": stamp,
                "source": "job",
                **ids,
                "model": MODEL,
                "version": 1,
                "row": first_row + i,
                "features": matrix[i],
                "label": labels[i],
                "probabilities": probabilities[i],
                "latency_ms": 1.0,
            },
            option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_APPEND_NEWLINE,
        )
        for i in range(len(matrix))
    ]
    directory.mkdir(parents=True, exist_ok=True)
    with (directory / f"predictions-{when:%Y-%m-%d}.jsonl").open("ab") as handle:
        handle.write(b"".join(lines))


def measure(profile_path: str, log_dir: str, now: str) -> None:
    """Child process: one compute_drift, printed as JSON with its time and peak RSS."""
    profile = ReferenceProfile.load(profile_path)
    started, cpu = time.perf_counter(), time.process_time()
    report = compute_drift(profile, log_dir, MODEL, version=1, now=datetime.fromisoformat(now))
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        json.dumps(
            {
                "seconds": seconds,
                "cpu": cpu,
                "rows": report.rows,
                "peak_mb": peak_kb / 1024,
                "drifted": len(report.drifted),
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="100000,1000000")
    parser.add_argument("--features", type=int, default=30)
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument(
        "--baseline-rows",
        type=int,
        default=100_000,
        help="rows logged and read once more in the earlier JSONL layout, as a baseline; 0: none",
    )
    parser.add_argument("--measure", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        measure(*args.measure)
        return
    # Not at the top: a measuring child's ru_maxrss starts from this process's RSS when it
    # starts the child (Linux keeps the high-water mark across exec), so import nothing more.
    from bench.processes import output_of

    sizes = [int(n) for n in args.rows.split(",")]
    now = datetime.now(UTC)
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory(prefix="drift-bench-") as tmp:
        root = Path(tmp)
        training = rng.normal(0.0, 1.0, (50_000, args.features))
        p = rng.random(50_000)
        profile = build_profile(
            training,
            outputs={"probabilities": np.c_[1 - p, p], "label": (p > 0.5).astype(int)},
            outputs_source="held-out",
            feature_names=[f"f{i}" for i in range(args.features)],
        )
        profile_path = profile.save(root / "profile.json")
        sizes_mb = {}
        logs = [(rows, "segments") for rows in sizes]
        if args.baseline_rows in sizes:
            logs.append((args.baseline_rows, "jsonl"))
        for rows, layout in logs:
            started = time.perf_counter()
            size = write_log(root / f"{layout}-{rows}", rows, args.features, now, layout)
            if layout == "segments":
                sizes_mb[rows] = size / 1e6
            print(
                f"wrote {rows:,} rows as {layout} ({size / 1e6:,.0f} MB) in "
                f"{time.perf_counter() - started:.1f} s",
                file=sys.stderr,
            )
        runs: dict[int, list[dict[str, float]]] = {rows: [] for rows in sizes}
        general: list[dict[str, float]] = []

        def run(rows: int, path: str) -> dict[str, float]:
            command = [
                sys.executable,
                __file__,
                "--measure",
                str(profile_path),
                str(root / f"{path}-{rows}"),
                now.isoformat(),
            ]
            result = json.loads(output_of(command))
            assert result["rows"] == rows, result
            print(
                f"{rows:,} rows ({path}): {result['seconds']:.2f} s wall, "
                f"{result['cpu']:.2f} s CPU, {result['peak_mb']:.0f} MB",
                file=sys.stderr,
            )
            return result

        for _ in range(args.reps):
            for rows in sizes:  # alternate, so the machine's noise spreads over all sizes
                runs[rows].append(run(rows, "segments"))
            if args.baseline_rows in runs:
                general.append(run(args.baseline_rows, "jsonl"))

    from bench.report import table

    base = sizes[0]
    base_seconds = statistics.median(r["seconds"] for r in runs[base])
    base_cpu = statistics.median(r["cpu"] for r in runs[base])
    header = [
        f"logged rows ({args.features} features)",
        "log size",
        "median wall s",
        "median CPU s",
        "rows/s (wall)",
        "peak RSS",
        "rows vs first",
        "wall vs first",
        "CPU vs first",
    ]
    lines = []
    for rows in sizes:
        seconds = statistics.median(r["seconds"] for r in runs[rows])
        cpu = statistics.median(r["cpu"] for r in runs[rows])
        peak = max(r["peak_mb"] for r in runs[rows])
        lines.append(
            [
                f"{rows:,}",
                f"{sizes_mb[rows]:,.0f} MB",
                f"{seconds:.2f}",
                f"{cpu:.2f}",
                f"{rows / seconds:,.0f}",
                f"{peak:,.0f} MB",
                f"{rows / base:.1f}x",
                f"{seconds / base_seconds:.2f}x",
                f"{cpu / base_cpu:.2f}x",
            ]
        )
    print("\n".join(table(header, "r" * len(header), lines)))
    if general:
        rows = args.baseline_rows
        fast_cpu = statistics.median(r["cpu"] for r in runs[rows])
        slow_cpu = statistics.median(r["cpu"] for r in general)
        print(
            f"\nThe earlier JSONL log (a line per row, its fast path), {rows:,} rows: "
            f"median {slow_cpu:.2f} s CPU; the segments are read {slow_cpu / fast_cpu:.1f}x "
            "faster (CPU, same run)."
        )


if __name__ == "__main__":
    main()
