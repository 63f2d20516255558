"""`onnxq export torch`: a PyTorch module (module factory + state_dict) -> an export bundle.

Needs the `torch` extra (torch, onnxscript). The module is put in eval mode before anything runs:
dropout and batch-norm compute something else in training mode, and an export in training mode
would bake that into the ONNX graph.

The sample says what the module takes: a CSV of feature rows (a tabular model: one float32 input
`input`), or an .npz of input tensors keyed by input name in the order forward() takes them (a
tensor model: an image [N, 1, 28, 28], token ids beside numbers, ...; axis 0 is the batch, the
others are fixed). The task says what it gives:

- classification: the module's logits (softmax added) or probabilities, wrapped in a head giving
  `label` (argmax, int64, classes 0..n-1 with optional names) and `probabilities`;
- regression: its output as `predictions`, one column per target;
- tensor: its output tensor(s) as they are, named by `--output-names` (default `output`, or
  `output_0`, `output_1`, ... for several).

The weights are read with `torch.load(weights_only=True)`, which restores tensors only and refuses
to run code from the file; the module's code is the user's own Python file, imported like any
module they run.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import sys
import warnings
from pathlib import Path
from typing import Any, Literal

import numpy as np

from onnxq.errors import InvalidInput
from onnxq.models.manifest import Task
from onnxq.registry.export import ExportBundle
from onnxq.registry.export_dir import (
    LABEL_OUTPUT,
    PREDICTION_OUTPUT,
    PROBABILITY_OUTPUT,
    ExpectedOutputs,
    ExportRecord,
    read_sample,
    target_names,
)

ModuleOutput = Literal["logits", "probabilities"]
EXAMPLE_ROWS = 2  # the export traces this many rows (read_sample asks for at least as many)


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


def task_head(module: Any, task: Task, module_output: ModuleOutput) -> Any:
    """The module with what its task adds on top: softmax and argmax for a classifier, a
    [N, targets] matrix for a regressor, nothing for a tensor model."""
    import torch

    class TaskHead(torch.nn.Module):
        def __init__(self, inner: torch.nn.Module):
            super().__init__()
            self.inner = inner

        def forward(self, *inputs: torch.Tensor) -> Any:
            out = self.inner(*inputs)
            if task == "classification":
                probabilities = torch.softmax(out, dim=1) if module_output == "logits" else out
                return torch.argmax(probabilities, dim=1), probabilities
            if task == "regression":
                return out.reshape(out.shape[0], -1)
            return out

    return TaskHead(module).eval()


def torch_to_onnx(
    head: Any, examples: tuple[Any, ...], inputs: list[str], outputs: list[str]
) -> bytes:
    """Export with the dynamo exporter: named inputs and outputs, one dynamic batch axis."""
    import torch

    batch = torch.export.Dim("batch")
    # It logs a warning for each torchvision operator it cannot register without torchvision.
    logging.getLogger("torch.onnx._internal.exporter._registration").setLevel(logging.ERROR)
    with warnings.catch_warnings():
        # torch's own exporter calls an API torch deprecated: nothing the user can act on
        warnings.filterwarnings("ignore", message=r".*treespec, LeafSpec")
        program = torch.onnx.export(
            head,
            examples,
            input_names=inputs,
            output_names=outputs,
            # forward(*inputs) takes one argument, the tuple: its shapes are one tuple too
            dynamic_shapes=(tuple({0: batch} for _ in examples),),
            dynamo=True,
            verbose=False,
        )
    return program.model_proto.SerializeToString()  # type: ignore[no-any-return]


def export_torch_module(
    factory_spec: str,
    weights_file: Path,
    sample_file: Path,
    *,
    task: Task | None = None,
    module_output: ModuleOutput = "logits",
    class_names: list[str] | None = None,
    targets: list[str] | None = None,
    output_names: list[str] | None = None,
) -> ExportBundle:
    """Build the module, load its weights, switch to eval mode, run it on the sample, export."""
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

    inputs, features, sample = read_sample(sample_file)
    task = task or ("classification" if features else "tensor")
    head = task_head(module, task, module_output)
    as_torch = {
        name: torch.from_numpy(array.astype(np.float32) if features else array)
        for name, array in inputs.items()
    }
    with torch.no_grad():
        try:
            produced = head(*as_torch.values())
        except (RuntimeError, TypeError, ValueError) as exc:
            what = f"{len(features)} columns" if features else f"inputs {list(inputs)}"
            raise InvalidInput(f"the module cannot take {sample_file}'s {what}: {exc}") from exc
    produced = produced if isinstance(produced, tuple | list) else (produced,)
    fields, names = _task_fields(task, produced, class_names, targets, output_names)
    outputs = {
        name: tensor.numpy().astype(np.float64) if tensor.is_floating_point() else tensor.numpy()
        for name, tensor in zip(names, produced, strict=True)
    }
    examples = tuple(tensor[:EXAMPLE_ROWS] for tensor in as_torch.values())
    onnx_bytes = torch_to_onnx(head, examples, list(inputs), names)
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
        task=task,
        features=features,
        compared=[name for name in names],
        tree_model=False,
        sample=sample,
        **fields,
    )
    return ExportBundle(onnx_bytes, record, ExpectedOutputs(inputs, outputs))


def _task_fields(
    task: Task,
    produced: tuple[Any, ...],
    class_names: list[str] | None,
    targets: list[str] | None,
    output_names: list[str] | None,
) -> tuple[dict[str, Any], list[str]]:
    """The record's task fields and the graph's output names, checked against the outputs."""
    if task == "classification":
        probabilities = produced[1]
        if probabilities.ndim != 2:
            raise InvalidInput("the module must return one row of class scores per input row")
        classes = int(probabilities.shape[1])
        if class_names is not None and len(class_names) != classes:
            raise InvalidInput(f"{len(class_names)} class names for {classes} classes")
        fields = {
            "label_output": LABEL_OUTPUT,
            "probability_output": PROBABILITY_OUTPUT,
            "class_labels": list(range(classes)),
            "class_names": class_names,
        }
        return fields, [LABEL_OUTPUT, PROBABILITY_OUTPUT]
    if task == "regression":
        width = int(produced[0].shape[1])
        targets = target_names(width, targets)
        return {"prediction_output": PREDICTION_OUTPUT, "targets": targets}, [PREDICTION_OUTPUT]
    default = ["output"] if len(produced) == 1 else [f"output_{i}" for i in range(len(produced))]
    names = output_names or default
    if len(names) != len(produced) or len(set(names)) != len(names):
        raise InvalidInput(f"{len(names)} output names for {len(produced)} outputs: {names}")
    return {}, names
