"""`python -m gateway.grpc_api.healthcheck [--infer MODEL]`: exit 0 when the gRPC service answers.

The container's health check (the images have no shell and no grpc_health_probe): ServerLive, a
liveness probe as the HTTP image's /health is, touching no model and no Redis. With `--infer`
(scripts/compose-smoke), also one ModelInfer of a row of zeros, with the first API key.
"""

from __future__ import annotations

import sys

import grpc

from gateway.grpc_api import open_inference_pb2 as pb
from gateway.grpc_api import open_inference_pb2_grpc as pb_grpc
from onnxq.settings import Settings


def infer_zeros(stub: pb_grpc.GRPCInferenceServiceStub, model: str, settings: Settings) -> str:
    keys = [key.get_secret_value() for key in settings.api_keys]
    metadata = [("authorization", f"Bearer {keys[0]}")] if keys else []
    described = stub.ModelMetadata(pb.ModelMetadataRequest(name=model), metadata=metadata)
    [tensor] = described.inputs
    width = int(tensor.shape[1])
    request = pb.ModelInferRequest(model_name=model)
    request.inputs.add(name=tensor.name, datatype="FP32", shape=[1, width])
    request.raw_input_contents.append(bytes(4 * width))
    answer = stub.ModelInfer(request, metadata=metadata, timeout=10)
    return ", ".join(f"{o.name} {list(o.shape)}" for o in answer.outputs)


def main(argv: list[str]) -> int:
    settings = Settings()
    host = "127.0.0.1" if settings.grpc_host in ("0.0.0.0", "::") else settings.grpc_host
    with grpc.insecure_channel(f"{host}:{settings.grpc_port}") as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        try:
            live = stub.ServerLive(pb.ServerLiveRequest(), timeout=2).live
            if live and argv[:1] == ["--infer"] and len(argv) == 2:
                print(f"ModelInfer {argv[1]}: {infer_zeros(stub, argv[1], settings)}")
        except grpc.RpcError as exc:
            print(f"gRPC service: {exc.code().name} {exc.details()}", file=sys.stderr)
            return 1
    return 0 if live else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
