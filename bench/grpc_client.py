"""A gRPC load generator for bench/v2_protocols.py: processes of threads, one channel each.

Each thread holds its own channel (its own HTTP/2 connection: a local subchannel pool, so that
channels with the same target do not share one) and makes blocking ModelInfer calls in a closed
loop with one prebuilt request message. Client CPU is measured and reported, as bench/
load_client.py does for HTTP, because the client shares the machine's cores with the server.
"""

from __future__ import annotations

import multiprocessing as mp
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from bench.load_client import LoadResult, run_clients, shares
from bench.model import MODEL_NAME


def _drive(
    target: str, request: bytes, threads: int, duration: float, start_at: float, queue: mp.Queue
) -> None:
    import grpc

    from gateway.grpc_api import open_inference_pb2 as pb
    from gateway.grpc_api import open_inference_pb2_grpc as pb_grpc

    message = pb.ModelInferRequest.FromString(request)
    latencies: list[list[float]] = [[] for _ in range(threads)]
    errors: list[int] = [0] * threads
    channels = [
        grpc.insecure_channel(target, options=[("grpc.use_local_subchannel_pool", 1)])
        for _ in range(threads)
    ]
    stubs = [pb_grpc.GRPCInferenceServiceStub(channel) for channel in channels]
    for stub in stubs:  # connected before the clock starts
        stub.ServerLive(pb.ServerLiveRequest(), timeout=10)
    while time.time() < start_at:
        time.sleep(0.001)
    cpu_started = time.process_time()
    started = time.perf_counter()
    stop_at = started + duration

    def loop(index: int) -> None:
        stub, own = stubs[index], latencies[index]
        while (sent := time.perf_counter()) < stop_at:
            try:
                stub.ModelInfer(message, timeout=30)
            except grpc.RpcError:
                errors[index] += 1
                continue
            own.append(time.perf_counter() - sent)

    workers = [threading.Thread(target=loop, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    wall = time.perf_counter() - started
    for channel in channels:
        channel.close()
    flat = np.asarray([value for own in latencies for value in own])
    queue.put(
        {
            "latencies": flat.tobytes(),
            "answered": len(flat),
            "errors": sum(errors),
            "wall": wall,
            "cpu": time.process_time() - cpu_started,
        }
    )


GRPC_METHOD = "/inference.GRPCInferenceService/ModelInfer"


@dataclass
class GrpcCall:
    """One ModelInfer request, as both gRPC drivers send it, and its answer's size."""

    port: int
    message: Any  # the ModelInferRequest (grpcio's driver)
    payload: bytes  # serialized (the lean driver, bench/grpc_wire.py)
    expected_bytes: int  # a correct answer's DATA: the 5-byte prefix and the message

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"


def grpc_call(port: int, matrix: np.ndarray) -> GrpcCall:
    """The call of `matrix` (float32 rows) as raw_input_contents, its answer fetched once through
    grpcio: what the lean driver checks every answer against."""
    import grpc

    from gateway.grpc_api import open_inference_pb2 as pb

    request = pb.ModelInferRequest(model_name=MODEL_NAME)
    request.inputs.add(name="input", datatype="FP32", shape=list(matrix.shape))
    request.raw_input_contents.append(matrix.astype("<f4").tobytes())
    payload = request.SerializeToString()
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        answer: bytes = channel.unary_unary(GRPC_METHOD)(payload, timeout=30)
    if not answer:
        raise RuntimeError("the gRPC service gave an empty ModelInfer answer")
    return GrpcCall(port, request, payload, 5 + len(answer))


def run_grpc_load(
    target: str, request: Any, *, connections: int, duration: float, processes: int = 2
) -> LoadResult:
    """Drive `target` with `connections` channels spread over `processes` client processes."""
    context = mp.get_context("spawn")  # grpc must not be forked after it started
    start_at = time.time() + 3.0  # spawned interpreters take a moment to import grpc
    payload = request.SerializeToString()
    clients: list[tuple[Callable[..., None], tuple[Any, ...]]] = [
        (_drive, (target, payload, n, duration, start_at)) for n in shares(connections, processes)
    ]
    results = run_clients(context, clients, duration + 60)
    errors = sum(r["errors"] for r in results)
    return LoadResult(
        latencies=np.concatenate([np.frombuffer(r["latencies"]) for r in results]),
        statuses={200: sum(r["answered"] for r in results)},
        errors={"grpc": errors} if errors else {},
        wall=max(r["wall"] for r in results),
        client_cpu=sum(r["cpu"] for r in results),
    )
