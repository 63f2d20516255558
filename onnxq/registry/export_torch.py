"""`onnxq export torch`: a PyTorch classifier (module factory + state_dict) -> an export directory.

Needs the `torch` extra (torch, onnxscript). The module is put in eval mode before anything runs:
dropout and batch-norm compute something else in training mode, and an export in training mode
would bake that into the ONNX graph. The exported graph wraps the module in a classifier head:
input `input` (float32, dynamic batch axis), outputs `probabilities` (softmax of the module's
logits, or the module's output as is with `--module-output probabilities`) and `label` (argmax,
int64); class labels are 0..n-1, with optional class names.

The weights are read with `torch.load(weights_only=True)`, which restores tensors only and refuses
to run code from the file; the module's code is the user's own Python file, imported like any
module they run.
"""

from __future__ import annotations

import hashlib
import importlib.util
import sys
from pathlib import Path
from typing import Any, Literal

import numpy as np

from onnxq.errors import InvalidInput
from onnxq.registry.export_dir import (
    INPUT_NAME,
    LABEL_OUTPUT,
    PROBABILITY_OUTPUT,
    ExpectedOutputs,
    ExportRecord,
    SampleInfo,
    read_csv,
    sample_matrix,
    write_export_dir,
)

ModuleOutput = Literal["logits", "probabilities"]


def load_factory(spec: str) -> Any:
    """`path/to/module.py:factory` -> the factory callable (the file is imported)."""
    path_text, _, attribute = spec.rpartition(":")
    path = Path(path_text)
    if not path_text or not attribute or path.suffix != ".py" or not path.is_file():
        raise InvalidInput(f"{spec!r} must be <file.py>:<factory>, naming an existing file")
    digest = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:12]
    module_name = f"onnxq_user_module_{digest}"
    loader_spec = importlib.util.spec_from_file_location(module_name, path)
    if loader_spec is None or loader_spec.loader is None:
        raise InvalidInput(f"{path} cannot be imported")
    module = importlib.util.module_from_spec(loader_spec)
    sys.modules[module_name] = module
    loader_spec.loader.exec_module(module)
    factory = getattr(module, attribute, None)
    if not callable(factory):
        raise InvalidInput(f"{path} has no callable {attribute!r}")
    return factory


def classifier_head(module: Any, module_output: ModuleOutput) -> Any:
    """The module with softmax (unless it already gives probabilities) and argmax on top."""
    import torch

    class ClassifierHead(torch.nn.Module):
        def __init__(self, inner: torch.nn.Module):
            super().__init__()
            self.inner = inner

        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            scores = self.inner(x)
            probabilities = torch.softmax(scores, dim=1) if module_output == "logits" else scores
            return torch.argmax(probabilities, dim=1), probabilities

    return ClassifierHead(module)


def torch_classifier_to_onnx(head: Any, width: int) -> bytes:
    """Export with the dynamo exporter: named input/outputs, dynamic batch axis."""
    import torch

    example = (torch.zeros(2, width, dtype=torch.float32),)
    program = torch.onnx.export(
        head,
        example,
        input_names=[INPUT_NAME],
        output_names=[LABEL_OUTPUT, PROBABILITY_OUTPUT],
        dynamic_shapes=({0: torch.export.Dim("batch")},),
        dynamo=True,
        verbose=False,
    )
    return program.model_proto.SerializeToString()  # type: ignore[no-any-return]


def export_torch_module(
    factory_spec: str,
    weights_file: Path,
    sample_file: Path,
    out_dir: Path,
    *,
    module_output: ModuleOutput = "logits",
    class_names: list[str] | None = None,
) -> ExportRecord:
    """Build the module, load its weights, switch to eval mode, export; write `out_dir`."""
    import torch

    module = load_factory(factory_spec)()
    if not isinstance(module, torch.nn.Module):
        raise InvalidInput(f"{factory_spec} returned a {type(module).__name__}, not a torch Module")
    try:
        state = torch.load(weights_file, map_location="cpu", weights_only=True)
        module.load_state_dict(state)
    except (OSError, RuntimeError, ValueError, KeyError, EOFError) as exc:
        raise InvalidInput(f"{weights_file} is not a state_dict for this module: {exc}") from exc
    module.eval()  # before export AND before computing the expected outputs

    frame = read_csv(sample_file)
    features = [str(column) for column in frame.columns]
    rows = sample_matrix(frame, sample_file)
    head = classifier_head(module, module_output).eval()
    with torch.no_grad():
        try:
            labels, probabilities = head(torch.from_numpy(rows.astype(np.float32)))
        except RuntimeError as exc:
            raise InvalidInput(
                f"the module cannot take {sample_file}'s {len(features)} columns: {exc}"
            ) from exc
    if probabilities.ndim != 2:
        raise InvalidInput("the module must return one row of class scores per input row")
    classes = int(probabilities.shape[1])
    if class_names is not None and len(class_names) != classes:
        raise InvalidInput(f"{len(class_names)} class names for {classes} classes")
    onnx_bytes = torch_classifier_to_onnx(head, len(features))
    record = ExportRecord(
        framework="pytorch",
        framework_version=torch.__version__,
        source={
            "factory": factory_spec.rpartition(":")[2],
            "file": Path(factory_spec.rpartition(":")[0]).name,
            "weights": weights_file.name,
            "weights_sha256": hashlib.sha256(weights_file.read_bytes()).hexdigest(),
            "module": type(module).__name__,
            "module_output": module_output,
        },
        features=features,
        class_labels=list(range(classes)),
        class_names=class_names,
        tree_model=False,
        sample=SampleInfo.of(sample_file, rows),
    )
    expected = ExpectedOutputs(
        rows=rows,
        probabilities=probabilities.numpy().astype(np.float64),
        labels=labels.numpy(),
    )
    write_export_dir(out_dir, onnx_bytes, record, expected)
    return record
