"""The model every benchmark serves (the RandomForest-100 breast-cancer demo model, built once
and cached), its rows, and an ONNX Runtime session like the services' (one thread)."""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from bench.processes import say
from onnxq.models.repository import ModelRepository

MODEL_NAME = "breast-cancer"
N_ESTIMATORS = 100
MODEL_CACHE = Path(tempfile.gettempdir()) / "onnxq-bench-model"


def add_model_cache_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model-cache",
        type=Path,
        default=MODEL_CACHE,
        help="where the model is built once and reused",
    )


def prepare_model(cache_dir: Path) -> Path:
    """The demo model (RandomForest, 100 trees) in a repository under cache_dir; built once."""
    manifest = cache_dir / MODEL_NAME / "1" / "manifest.json"
    if manifest.is_file():
        source = json.loads(manifest.read_text()).get("source", {})
        if f"n_estimators={N_ESTIMATORS}" in source.get("estimator", ""):
            say(f"reusing the model in {cache_dir}")
            return cache_dir
        shutil.rmtree(cache_dir)
    from onnxq.registry.demo import (
        build_demo_model,  # needs the export extra (scikit-learn, skl2onnx)
    )

    say("building the RandomForest-100 breast-cancer model ...")
    cache_dir.mkdir(parents=True, exist_ok=True)
    build_demo_model(ModelRepository(cache_dir), n_estimators=N_ESTIMATORS)
    return cache_dir


def model_file(model_dir: Path) -> Path:
    """The ONNX file of version 1 in the repository prepare_model returned."""
    return model_dir / MODEL_NAME / "1" / "model.onnx"


def breast_cancer() -> np.ndarray:
    from sklearn.datasets import load_breast_cancer

    return np.asarray(load_breast_cancer().data, dtype=np.float64)


def make_session(model_path: Path) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
