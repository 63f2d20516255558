"""One model, four ways in: v1 JSON, V2 JSON, V2 binary tensor data and gRPC, at 1 and 1,000 rows.

    .venv/bin/python bench/v2_protocols.py [--seconds 5] [--rounds 2]

Starts a real gunicorn gateway (2 processes) and the gRPC service (2 processes) over the
RandomForest-100 breast-cancer model, then runs closed-loop load at 1 and 16 connections for
each protocol and batch size, interleaved by round (the machine's speed drifts; a ratio compares
runs that were close in time). Reports requests/s, rows/s, p50/p99 latency and client and server
CPU per request; the verdict is issue 17's target: binary and gRPC at least v1's requests/s at
1 row, and at least 3x v1's rows/s at 1,000 rows. gRPC is driven twice: by bench/grpc_wire.py
(judged: as lean per call as the HTTP rows' client, as wrk or ghz would be) and by grpcio's
client (shown: what a Python caller spends). Writes its section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import interleaved
from bench.grpc_client import GRPC_METHOD, GrpcCall, grpc_call, run_grpc_load
from bench.grpc_wire import connection, run_wire_load
from bench.load_client import LoadResult, build_request, run_load
from bench.meters import CpuMeter, process_tree
from bench.model import MODEL_NAME, add_model_cache_option, breast_cancer, prepare_model
from bench.processes import Service, own_redis, say, stop_on_signals
from bench.report import add_report_option, run_details, table, write_section
from bench.stack import local_url, service_env
from onnxq.devtools.processes import gateway_answers, gateway_command, grpc_ready
from onnxq.devtools.redis_server import free_port
from onnxq.devtools.waiting import wait_until

OWNER = "bench/v2_protocols.py"
PROTOCOLS = ["v1", "v2-json", "v2-binary", "grpc", "grpc-grpcio"]
# What each gRPC row's client is: the lean one measures the server as the HTTP rows' client does;
# grpcio's, what a Python caller spends (it shares the two cores with the server).
ROWS = [1, 1000]
CONNECTIONS = [1, 16]


@dataclass
class Case:
    protocol: str
    rows: int
    connections: int
    rate: float  # requests/s
    p50: float
    p99: float
    client_cpu_ms: float  # per request
    server_cpu_ms: float
    errors: int

    @property
    def rows_per_second(self) -> float:
        return self.rate * self.rows


def bodies(matrix: np.ndarray) -> dict[str, bytes]:
    """The request of each HTTP protocol for `matrix` (float32 rows), prebuilt once."""
    rows = matrix.tolist()
    path_v1 = f"/v1/models/{MODEL_NAME}/predict"
    path_v2 = f"/v2/models/{MODEL_NAME}/infer"
    v2 = {"inputs": [{"name": "input", "shape": list(matrix.shape), "datatype": "FP32",
                      "data": rows}]}  # fmt: skip
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": "input",
                    "shape": list(matrix.shape),
                    "datatype": "FP32",
                    "parameters": {"binary_data_size": matrix.nbytes},
                }
            ],
            "parameters": {"binary_data_output": True},
        }
    ).encode()
    binary_body = header + matrix.astype("<f4").tobytes()
    binary = (
        f"POST {path_v2} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Content-Type: application/octet-stream\r\nInference-Header-Content-Length: "
        f"{len(header)}\r\nContent-Length: {len(binary_body)}\r\n\r\n"
    ).encode() + binary_body
    return {
        "v1": build_request("POST", path_v1, json.dumps({"instances": rows}).encode()),
        "v2-json": build_request("POST", path_v2, json.dumps(v2).encode()),
        "v2-binary": binary,
    }


def measure(
    protocol: str,
    rows: int,
    connections: int,
    seconds: float,
    http_requests: dict[str, bytes],
    call: GrpcCall,
    gateway: Service,
    grpc: Service,
) -> Case:
    server = grpc if protocol.startswith("grpc") else gateway
    meter = CpuMeter({"server": process_tree(server)}).start()
    result: LoadResult
    if protocol == "grpc":
        result = run_wire_load(call.port, GRPC_METHOD, call.payload, call.expected_bytes,
                               connections=connections, duration=seconds)  # fmt: skip
    elif protocol == "grpc-grpcio":
        result = run_grpc_load(call.target, call.message, connections=connections,
                               duration=seconds)  # fmt: skip
    else:
        assert gateway.port is not None
        # One request, repeated: run_load deals the list out over its 2 client processes.
        result = run_load(
            gateway.port, [http_requests[protocol]] * 2, connections=connections, duration=seconds
        )
    meter.stop()
    answered = max(1, result.answered)
    return Case(
        protocol=protocol,
        rows=rows,
        connections=connections,
        rate=result.rate,
        p50=result.pct(50),
        p99=result.pct(99),
        client_cpu_ms=result.client_cpu / answered * 1000,
        server_cpu_ms=meter.used["server"] / answered * 1000,
        errors=result.failed,
    )


def take_turns(
    rows: int, seconds: float, http_requests: dict[str, bytes], call: GrpcCall, gateway: Service
) -> dict[str, np.ndarray]:
    """v1, V2 JSON, V2 binary and gRPC (lean client) at one connection each, in turns."""
    assert gateway.port is not None
    callers = {
        protocol: interleaved.HttpConnection(gateway.port, http_requests[protocol]).call
        for protocol in ("v1", "v2-json", "v2-binary")
    }
    callers["grpc"] = connection(call.port, GRPC_METHOD, call.payload, call.expected_bytes).call
    turns = interleaved.take_turns(callers, seconds)
    say(f"turns, {rows} rows: " + ", ".join(
        f"{name} {1 / values.mean():,.0f} req/s" for name, values in turns.items()))  # fmt: skip
    return turns


def median_case(cases: list[Case]) -> Case:
    middle = sorted(cases, key=lambda c: c.rate)[len(cases) // 2]
    return Case(
        protocol=middle.protocol,
        rows=middle.rows,
        connections=middle.connections,
        rate=statistics.median(c.rate for c in cases),
        p50=statistics.median(c.p50 for c in cases),
        p99=statistics.median(c.p99 for c in cases),
        client_cpu_ms=statistics.median(c.client_cpu_ms for c in cases),
        server_cpu_ms=statistics.median(c.server_cpu_ms for c in cases),
        errors=sum(c.errors for c in cases),
    )


def render(
    results: dict[tuple[str, int, int], Case],
    turns: dict[int, dict[str, np.ndarray]],
    details: dict[str, Any],
    rounds: int,
    turn_seconds: float,
) -> str:
    """The section; at one connection the verdict is the turns' ratio (the same moments)."""
    in_turns = interleaved.ratios(turns, "v1")
    lines = [
        "## V2 protocols: v1 JSON, V2 JSON, V2 binary tensor data, gRPC (issue 17)",
        "",
        f"{details['date']}, `{details['command']}`, {details['machine']['cpu']}, "
        f"git {details['git']}. A real gunicorn gateway (2 processes, gevent) and the gRPC "
        "service (2 processes, 16 threads each) over the RandomForest-100 breast-cancer model; "
        "closed-loop clients on the same 2 cores (prebuilt requests; HTTP: bench/load_client.py; "
        "grpc: bench/grpc_wire.py, prebuilt HTTP/2 frames, as lean as the HTTP client; "
        "grpc-grpcio: grpcio's own client, bench/grpc_client.py, shown, not judged). Median of "
        f"{rounds} interleaved rounds. CPU per request: the clients' own, and the serving "
        "processes' (gateway or gRPC service).",
        "",
    ]
    header = [
        "rows", "conns", "protocol", "req/s", "rows/s", "p50 ms", "p99 ms",
        "client CPU ms/req", "server CPU ms/req", "vs v1 (req/s)", "errors",
    ]  # fmt: skip
    body = []
    verdicts = []
    for rows in ROWS:
        for connections in CONNECTIONS:
            base = results[("v1", rows, connections)]
            for protocol in PROTOCOLS:
                case = results[(protocol, rows, connections)]
                ratio = case.rate / base.rate if base.rate else float("nan")
                judged = in_turns.get((rows, protocol)) if connections == 1 else ratio
                body.append(
                    [rows, connections, protocol, f"{case.rate:,.0f}",
                     f"{case.rows_per_second:,.0f}", f"{case.p50 * 1000:.2f}",
                     f"{case.p99 * 1000:.2f}", f"{case.client_cpu_ms:.3f}",
                     f"{case.server_cpu_ms:.3f}", f"{ratio:.2f}x", case.errors]
                )  # fmt: skip
                if protocol in ("v2-binary", "grpc"):  # grpc-grpcio: shown, not judged
                    wanted = 1.0 if rows == 1 else 3.0
                    if judged is not None:
                        verdicts.append((rows, connections, protocol, judged, wanted))
    lines += table(header, "rrlrrrrrrrr", body)
    lines += interleaved.render(turns, "v1", turn_seconds)
    lines += ["", "Target (issue 17): binary and gRPC >= v1's req/s at 1 row, >= 3x v1's rows/s "
              "at 1,000 rows; at 1 connection judged from the turns.", ""]  # fmt: skip
    for rows, connections, protocol, ratio, wanted in verdicts:
        mark = "met" if ratio >= wanted else "**missed**"
        lines.append(
            f"- {protocol}, {rows} row(s), {connections} connection(s): {ratio:.2f}x v1 "
            f"(target {wanted:g}x): {mark}"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="per measurement")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--rows", type=int, nargs="+", choices=ROWS, default=ROWS)
    parser.add_argument("--connections", type=int, nargs="+", default=CONNECTIONS)
    parser.add_argument("--protocols", nargs="+", choices=PROTOCOLS, default=PROTOCOLS)
    parser.add_argument(
        "--no-report", action="store_true", help="print only (a partial run while profiling)"
    )
    add_model_cache_option(parser)
    add_report_option(parser)
    args = parser.parse_args(argv)
    stop_on_signals()
    model_dir = prepare_model(args.model_cache)
    data = breast_cancer().astype(np.float32)
    matrices = {rows: np.resize(data, (rows, data.shape[1])).astype(np.float32) for rows in ROWS}
    http_requests = {rows: bodies(matrix) for rows, matrix in matrices.items()}
    with (
        tempfile.TemporaryDirectory(prefix="onnxq-v2-bench-") as work,
        own_redis(Path(work) / "redis") as redis,
    ):
        workdir = Path(work)
        port = free_port()
        env = service_env(redis.url, model_dir, workdir / "predictions", port)
        env.update({"ONNXQ_SYNC_MAX_ROWS": "1000", "ONNXQ_GRPC_WORKERS": "2"})
        gateway = Service("gateway", gateway_command(), env, workdir / "gateway.log", port=port)
        grpc = Service(
            "grpc", [sys.executable, "-m", "gateway.grpc_api"], env, workdir / "grpc.log"
        )
        gateway.start()
        grpc.start()
        try:
            wait_until(lambda: gateway_answers(local_url(port), "/ready"), 60, "the gateway")
            wait_until(lambda: grpc_ready(grpc, 2), 60, "the gRPC service")
            grpc_port = int(env["ONNXQ_GRPC_PORT"])
            calls = {rows: grpc_call(grpc_port, matrix) for rows, matrix in matrices.items()}
            samples: dict[tuple[str, int, int], list[Case]] = {}
            for round_number in range(args.rounds):
                for rows in args.rows:
                    for connections in args.connections:
                        for protocol in args.protocols:
                            case = measure(
                                protocol, rows, connections, args.seconds,
                                http_requests[rows], calls[rows], gateway, grpc,
                            )  # fmt: skip
                            samples.setdefault((protocol, rows, connections), []).append(case)
                            say(
                                f"round {round_number + 1}: {protocol:9} {rows:5} rows "
                                f"{connections:2} conns: {case.rate:8,.0f} req/s p50 "
                                f"{case.p50 * 1000:6.2f} ms, server {case.server_cpu_ms:.3f} "
                                f"ms/req, errors {case.errors}"
                            )
            turns = {rows: take_turns(rows, 3 * args.seconds, http_requests[rows], calls[rows],
                                      gateway) for rows in args.rows}  # fmt: skip
        finally:
            grpc.stop()
            gateway.stop()
    results = {key: median_case(cases) for key, cases in samples.items()}
    if args.no_report:
        return 0
    block = render(results, turns, run_details(OWNER), args.rounds, 3 * args.seconds)
    write_section(args.report, OWNER, block)
    print(block)
    say(f"wrote {args.report}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
