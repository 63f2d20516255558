"""CPU cost of one single-row submit and one poll inside the gateway app, without gunicorn.

    .venv/bin/python bench/gateway_profile.py [--requests 1000] [--top 30]

Runs the Flask app in this process (its test client) against a redis-server of its own on a free
port: first unprofiled (CPU ms per request, from time.process_time), then under cProfile (the
functions with the largest cumulative time). Comparing the unprofiled numbers with the gateway
CPU per request that bench/throughput.py measures under gunicorn tells what the HTTP server
adds. The worker is not started: submitted jobs just stay queued.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import logging
import os
import pstats
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# As a script, Python puts bench/ first on sys.path, where bench/drift.py would hide the drift
# package: import from the repository root instead.
if Path(sys.path[0]).resolve() == ROOT / "bench":
    sys.path[0] = str(ROOT)

from bench.model import (  # noqa: E402
    MODEL_NAME,
    add_model_cache_option,
    breast_cancer,
    prepare_model,
)
from bench.processes import own_redis  # noqa: E402
from bench.stack import service_env  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--top", type=int, default=30)
    add_model_cache_option(parser)
    args = parser.parse_args(argv)
    n = args.requests
    model_dir = prepare_model(args.model_cache)
    rows = breast_cancer().tolist()
    bodies = [json.dumps({"instances": [rows[i % len(rows)]]}) for i in range(4 * n + 100)]
    with (
        tempfile.TemporaryDirectory(prefix="onnxq-gateway-profile-") as tmp,
        own_redis(Path(tmp) / "redis") as redis,
    ):
        os.environ.update(service_env(redis.url, model_dir, Path(tmp) / "log", 8000))
        from gateway import create_app

        app = create_app()
        logging.getLogger().handlers[0].setStream(open(os.devnull, "w"))  # noqa: SIM115
        client = app.test_client()
        path = f"/v1/models/{MODEL_NAME}/jobs"
        ids: list[str] = []

        def submit(body: str) -> None:
            answer = client.post(path, data=body, content_type="application/json")
            ids.append(answer.get_json()["job_id"])

        def poll(job_id: str) -> None:
            client.get(f"/v1/jobs/{job_id}")

        for body in bodies[:100]:  # warm-up
            submit(body)
        started = time.process_time()
        for body in bodies[100 : 100 + n]:
            submit(body)
        submit_ms = (time.process_time() - started) * 1000 / n
        started = time.process_time()
        for job_id in ids[100 : 100 + n]:
            poll(job_id)
        poll_ms = (time.process_time() - started) * 1000 / n
        print(f"unprofiled CPU per request: submit {submit_ms:.2f} ms, poll {poll_ms:.2f} ms\n")
        for name, run, items in [
            ("submit", submit, bodies[100 + n : 100 + 2 * n]),
            ("poll", poll, ids[100 : 100 + n]),
        ]:
            profile = cProfile.Profile()
            profile.enable()
            for item in items:
                run(item)
            profile.disable()
            out = io.StringIO()
            stats = pstats.Stats(profile, stream=out)
            stats.sort_stats("cumulative").print_stats(args.top)
            print(f"===== {name}, under cProfile (times are inflated by the profiler)")
            print(out.getvalue())
    return 0


if __name__ == "__main__":
    sys.exit(main())
