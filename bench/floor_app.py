"""The floor bench/load.py compares onnxq with: bare Flask + onnxruntime, nothing else.

    FLOOR_MODEL=<model.onnx> gunicorn -w 2 -k sync 'bench.floor_app:create_app()'

No validation beyond what numpy does, no auth, no logs, no metrics, no prediction
log: what serving this model over HTTP costs at the least, on the same machine.
"""

from __future__ import annotations

import os

import numpy as np
import onnxruntime as ort
from flask import Flask, jsonify, request
from flask.typing import ResponseReturnValue


def create_app() -> Flask:
    app = Flask(__name__)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(
        os.environ["FLOOR_MODEL"], options, providers=["CPUExecutionProvider"]
    )
    input_name = session.get_inputs()[0].name

    @app.post("/predict")
    def predict() -> ResponseReturnValue:
        rows = np.asarray(request.get_json()["instances"], dtype=np.float32)
        labels, probabilities = session.run(None, {input_name: rows})
        return jsonify(labels=labels.tolist(), probabilities=probabilities.tolist())

    @app.get("/health")
    def health() -> ResponseReturnValue:
        return jsonify(status="ok")

    return app
