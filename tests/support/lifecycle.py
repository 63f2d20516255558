"""Helpers for the model lifecycle tests: pickled estimators, CSV files, export directories."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from onnxq.cli.main import main


def breast_cancer() -> tuple[pd.DataFrame, pd.Series]:
    data = load_breast_cancer(as_frame=True)
    return data.data, data.target


def fitted_pipeline() -> Pipeline:
    X, y = breast_cancer()
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(X, y)


def pickle_to(path: Path, estimator: Any) -> Path:
    with path.open("wb") as handle:
        pickle.dump(estimator, handle)
    return path


def write_csv(path: Path, frame: pd.DataFrame) -> Path:
    frame.to_csv(path, index=False)
    return path


def run_cli(*argv: str | Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """`onnxq <argv>` in this process; returns exit status, stdout and stderr."""
    code = main([str(arg) for arg in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def export_pipeline(
    directory: Path, capsys: pytest.CaptureFixture[str] | None = None, estimator: Any = None
) -> Path:
    """Export the breast-cancer pipeline (or `estimator`); return the export directory."""
    X, _ = breast_cancer()
    directory.mkdir(parents=True, exist_ok=True)
    pickled = pickle_to(directory / "pipeline.pkl", estimator or fitted_pipeline())
    sample = write_csv(directory / "sample.csv", X.iloc[:150])
    out = directory / "export"
    argv = ["export", "sklearn", str(pickled), "--sample", str(sample), "--out", str(out)]
    if capsys is None:
        assert main(argv) == 0
    else:
        code, _, err = run_cli(*argv, capsys=capsys)
        assert code == 0, err
    return out


def training_csv(directory: Path) -> Path:
    X, y = breast_cancer()
    return write_csv(directory / "training.csv", X.assign(target=y))
