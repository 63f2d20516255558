"""onnxq: the shared core of the gateway and the worker."""

__version__ = "0.1.0"
