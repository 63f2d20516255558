"""`onnxq export torch`: eval mode before export, dynamic batch axis, named input and outputs."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pandas as pd
import pytest
import torch

from onnxq.models.manifest import MODEL_FILE
from onnxq.registry.export_dir import EXPORT_FILE
from tests.support.lifecycle import run_cli, write_csv

MODULE = textwrap.dedent(
    """
    import torch


    def make_classifier():
        # Built in training mode, as torch builds every module: dropout is active.
        return torch.nn.Sequential(
            torch.nn.Linear(4, 16),
            torch.nn.ReLU(),
            torch.nn.Dropout(p=0.5),
            torch.nn.Linear(16, 3),
        )
    """
)


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A dropout classifier, its weights and a sample, exported once for the module."""
    directory = tmp_path_factory.mktemp("torch")
    (directory / "classifier.py").write_text(MODULE)
    torch.manual_seed(0)
    namespace: dict[str, object] = {}
    exec(MODULE, namespace)  # the same factory the command imports
    module = namespace["make_classifier"]()
    torch.save(module.state_dict(), directory / "weights.pt")
    rng = np.random.default_rng(0)
    sample = pd.DataFrame(rng.normal(size=(64, 4)), columns=["a", "b", "c", "d"])
    write_csv(directory / "sample.csv", sample)
    return {"dir": directory, "out": directory / "export"}


def run_export(exported: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    directory = exported["dir"]
    code, out, err = run_cli(
        "export",
        "torch",
        f"{directory / 'classifier.py'}:make_classifier",
        "--weights",
        directory / "weights.pt",
        "--sample",
        directory / "sample.csv",
        "--out",
        exported["out"],
        "--class-names",
        "x,y,z",
        capsys=capsys,
    )
    return code, out + err


def reference_module(directory: Path) -> torch.nn.Module:
    namespace: dict[str, object] = {}
    exec(MODULE, namespace)
    module = namespace["make_classifier"]()
    module.load_state_dict(torch.load(directory / "weights.pt", weights_only=True))
    return module


def test_a_dropout_module_is_exported_in_eval_mode(
    exported: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    code, output = run_export(exported, capsys)
    assert code == 0, output
    assert "PASS" in output

    rows = pd.read_csv(exported["dir"] / "sample.csv").to_numpy(dtype=np.float32)
    module = reference_module(exported["dir"])
    with torch.no_grad():
        module.train()
        torch.manual_seed(1)
        training = torch.softmax(module(torch.from_numpy(rows)), dim=1).numpy()
        module.eval()
        evaluation = torch.softmax(module(torch.from_numpy(rows)), dim=1).numpy()
    # The premise: this module answers differently in training mode.
    assert np.abs(training - evaluation).max() > 1e-2

    session = ort.InferenceSession(str(exported["out"] / MODEL_FILE))
    labels, probabilities = session.run(["label", "probabilities"], {"input": rows})
    np.testing.assert_allclose(probabilities, evaluation, rtol=0, atol=1e-5)
    np.testing.assert_array_equal(labels, evaluation.argmax(axis=1))
    assert np.abs(probabilities - training).max() > 1e-2


def test_the_torch_export_has_named_tensors_and_a_dynamic_batch_axis(
    exported: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    if not (exported["out"] / MODEL_FILE).exists():
        assert run_export(exported, capsys)[0] == 0

    session = ort.InferenceSession(str(exported["out"] / MODEL_FILE))
    [model_input] = session.get_inputs()
    assert model_input.name == "input"
    assert model_input.type == "tensor(float)"
    assert isinstance(model_input.shape[0], str) and model_input.shape[1] == 4
    assert [output.name for output in session.get_outputs()] == ["label", "probabilities"]
    for batch in (1, 7, 300):
        labels, probabilities = session.run(None, {"input": np.zeros((batch, 4), np.float32)})
        assert labels.shape == (batch,) and probabilities.shape == (batch, 3)
    record = json.loads((exported["out"] / EXPORT_FILE).read_text())
    assert record["framework"] == "pytorch"
    assert record["features"] == ["a", "b", "c", "d"]
    assert record["class_labels"] == [0, 1, 2]
    assert record["class_names"] == ["x", "y", "z"]
    assert record["parity"]["max_abs_diff"] <= 1e-5


def test_weights_that_do_not_fit_the_module_are_refused(
    exported: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    torch.save({"unexpected": torch.zeros(2)}, tmp_path / "other.pt")

    code, _, err = run_cli(
        "export",
        "torch",
        f"{exported['dir'] / 'classifier.py'}:make_classifier",
        "--weights",
        tmp_path / "other.pt",
        "--sample",
        exported["dir"] / "sample.csv",
        "--out",
        tmp_path / "out",
        capsys=capsys,
    )

    assert code == 1
    assert "is not a state_dict for this module" in err
    assert not (tmp_path / "out").exists()
