"""One gRPC server process: warm sessions, an asyncio server, the shared port (SO_REUSEPORT).

`python -m gateway.grpc_api` runs ONNXQ_GRPC_WORKERS of these (gateway/grpc_api/__main__.py);
each binds the same address, and the kernel spreads connections over them, as gunicorn's
workers share the HTTP port. SIGTERM or SIGINT stops it gracefully: no new calls, the running
ones finish (up to GRACE_SECONDS).
"""

from __future__ import annotations

import asyncio
import signal

import grpc
import structlog

from gateway.grpc_api import open_inference_pb2_grpc as pb_grpc
from gateway.grpc_api.service import GrpcServices, InferenceServicer
from onnxq.models.repository import ModelRepository
from onnxq.models.session import SessionConfig
from onnxq.settings import Settings
from onnxq.telemetry.logs import configure_logging
from onnxq.telemetry.prediction_log import PredictionLog

log = structlog.get_logger("onnxq.gateway")
GRACE_SECONDS = 10.0


def build_server(settings: Settings) -> tuple[grpc.aio.Server, GrpcServices]:
    """The server (not started; call from the event loop that will run it) and its services."""
    services = GrpcServices(
        settings=settings,
        repository=ModelRepository(
            settings.model_dir,
            SessionConfig(settings.ort_intra_op_threads, settings.ort_inter_op_threads),
        ),
        prediction_log=PredictionLog(settings.prediction_log_dir),
    )
    server = grpc.aio.server(
        options=[
            ("grpc.so_reuseport", 1),
            # The HTTP body limit, for the same tensors sent over gRPC (its default is 4 MB).
            ("grpc.max_receive_message_length", settings.max_body_bytes),
            ("grpc.max_send_message_length", settings.max_body_bytes),
        ],
    )
    pb_grpc.add_GRPCInferenceServiceServicer_to_server(InferenceServicer(services), server)
    server.add_insecure_port(f"{settings.grpc_host}:{settings.grpc_port}")
    return server, services


async def run(settings: Settings) -> None:
    server, services = build_server(settings)
    loaded = services.repository.load_defaults()  # warm before the first call
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    await server.start()
    log.info(
        "grpc_server_started",
        host=settings.grpc_host,
        port=settings.grpc_port,
        models=[f"{m.name}/{m.version}" for m in loaded],
    )
    await stopping.wait()
    await server.stop(GRACE_SECONDS)
    services.prediction_log.close()
    log.info("grpc_server_stopped")


def serve(settings: Settings | None = None) -> None:
    settings = settings or Settings()
    configure_logging(settings.log_level, process="grpc")
    asyncio.run(run(settings))


if __name__ == "__main__":
    serve()
