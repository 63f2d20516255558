"""File jobs against raw inference: submit a file of rows, download the result as Arrow (issue 18).

    .venv/bin/python bench/file_jobs.py [--rows 100000] [--formats arrows npy] [--reps 3]

Starts a real gunicorn gateway and Celery worker (bench/stack.py) over the RandomForest-100
breast-cancer model, the prediction log on. For each size and format it times, with onnxq.client,
submit -> job ended -> result downloaded as an Arrow IPC stream, and in the same moments
`session.run` of the same matrix in this process (ONNX Runtime's default threads: what a user
running the model alone would get), and reports the ratio of rows/s: issue 18's target is >= 0.5x.
Repetitions alternate the two, so both see the same machine. Writes its section of
docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.model import MODEL_NAME, add_model_cache_option, breast_cancer, prepare_model
from bench.processes import own_redis, say, stop_on_signals
from bench.report import add_report_option, run_details, table, write_section
from bench.stack import local_url, start_onnxq
from onnxq.client import Client
from onnxq.models.result_table import arrow_stream

OWNER = "bench/file_jobs.py"
TARGET = 0.5


def write_input(path: Path, matrix: np.ndarray, names: list[str]) -> None:
    if path.suffix == ".npy":
        np.save(path, matrix)
    elif path.suffix == ".parquet":  # as pandas and pyarrow write it: snappy, dictionary pages
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.table({name: matrix[:, i] for i, name in enumerate(names)}), path)
    else:
        columns = {name: matrix[:, i] for i, name in enumerate(names)}
        path.write_bytes(arrow_stream(columns))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000])
    parser.add_argument(
        "--formats",
        nargs="+",
        choices=["parquet", "arrows", "npy"],
        default=["parquet", "arrows", "npy"],
    )
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--no-report", action="store_true")
    add_model_cache_option(parser)
    add_report_option(parser)
    args = parser.parse_args(argv)
    stop_on_signals()
    import onnxruntime as ort

    model_dir = prepare_model(args.model_cache)
    session = ort.InferenceSession(str(next(model_dir.rglob("model.onnx"))),
                                   providers=["CPUExecutionProvider"])  # fmt: skip
    feed = session.get_inputs()[0].name
    data = breast_cancer().astype(np.float32)
    results: dict[tuple[int, str], list[tuple[float, float]]] = {}
    with tempfile.TemporaryDirectory(prefix="onnxq-file-bench-") as work, \
            own_redis(Path(work) / "redis") as redis:  # fmt: skip
        workdir = Path(work)
        stack = start_onnxq(redis.url, model_dir, workdir)  # the shipped limits take 1M rows
        try:
            client = Client(local_url(stack.port), timeout=600)
            names = client.model(MODEL_NAME).feature_names()
            for rows in args.rows:
                matrix = np.resize(data, (rows, data.shape[1])).astype(np.float32)
                for kind in args.formats:
                    source = workdir / f"rows-{rows}.{kind}"
                    write_input(source, matrix, names)
                    for rep in range(args.reps):
                        started = time.perf_counter()
                        session.run(None, {feed: matrix})
                        raw = time.perf_counter() - started
                        started = time.perf_counter()
                        job = client.model(MODEL_NAME).submit(source)
                        job.download(workdir / "result.arrows", timeout=600)
                        served = time.perf_counter() - started
                        results.setdefault((rows, kind), []).append((raw, served))
                        say(f"{rows:,} rows {kind} rep {rep + 1}: raw {raw:.3f} s, job "
                            f"{served:.3f} s ({raw / served:.2f}x)")  # fmt: skip
        finally:
            stack.stop()
    block = render(results, run_details(OWNER), args.reps)
    print(block)
    if not args.no_report:
        write_section(args.report, OWNER, block)
    return 0


def render(results: dict[tuple[int, str], list[tuple[float, float]]], details: dict,
           reps: int) -> str:  # fmt: skip
    lines = [
        "## File jobs against raw inference (issue 18)",
        "",
        f"{details['date']}, `{details['command']}`, {details['machine']['cpu']}, git "
        f"{details['git']}. A real gunicorn gateway and Celery worker (prefork 2, the prediction "
        "log on); onnxq.client submits the file and downloads the result as an Arrow stream. "
        "Raw: `session.run` of the same matrix in the benchmark's process, ONNX Runtime's "
        f"default threads, alternating with the jobs. Median of {reps} repetitions.",
        "",
    ]
    body = []
    for (rows, kind), pairs in results.items():
        raw = statistics.median(r for r, _ in pairs)
        served = statistics.median(s for _, s in pairs)
        ratio = statistics.median(r / s for r, s in pairs)
        mark = "met" if ratio >= TARGET else "**missed**"
        body.append([f"{rows:,}", kind, f"{raw:.3f}", f"{served:.3f}", f"{rows / raw:,.0f}",
                     f"{rows / served:,.0f}", f"{ratio:.2f}x", mark])  # fmt: skip
    header = ["rows", "input", "raw s", "job s", "raw rows/s", "job rows/s", "job vs raw",
              f"target {TARGET}x"]  # fmt: skip
    lines += table(header, "rlrrrrrl", body)
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
