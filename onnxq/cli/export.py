"""`onnxq export sklearn | torch`: a trained model -> a checked export directory.

Each handler is a thin shell over onnxq.registry (export_sklearn, export_torch, parity): the
export is checked for parity in memory and written only when it passes.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from onnxq.cli.errors import reports_errors
from onnxq.models.manifest import MODEL_FILE
from onnxq.settings import Settings

if TYPE_CHECKING:
    from onnxq.registry.export import ExportBundle


def print_report(lines: list[str]) -> None:
    for line in lines:
        print(line, file=sys.stderr if line.startswith("WARNING") else sys.stdout)


def _names(text: str | None) -> list[str] | None:
    return [name.strip() for name in text.split(",") if name.strip()] if text else None


def _nullable(text: str | None) -> list[str] | str | None:
    """--nullable: None (decide from the model), "all", or the named features ("none": [])."""
    if text is None or text == "all":
        return text
    return [] if text == "none" else _names(text)


def _check_and_write(bundle: ExportBundle, out_dir: Path, tolerance: float) -> int:
    """Write the export only once it reproduces its source: a failed export leaves nothing."""
    from onnxq.registry.parity import validate_export

    report = validate_export(bundle.onnx_bytes, bundle.record, bundle.expected, None, tolerance)
    print_report(report.lines())
    if not report.passed:
        print(f"nothing written to {out_dir}: the ONNX model does not reproduce its source")
        return 1
    bundle.record.parity = report.parity()
    bundle.write(out_dir)
    print(f"wrote {out_dir / MODEL_FILE}")
    return 0


@reports_errors
def _export_sklearn(args: argparse.Namespace, _settings: Settings) -> int:
    from onnxq.registry.export_sklearn import export_sklearn_file

    bundle = export_sklearn_file(
        args.estimator,
        args.sample,
        class_names=_names(args.class_names),
        targets=_names(args.targets),
        nullable=_nullable(args.nullable),
    )
    return _check_and_write(bundle, args.out, args.tolerance)


@reports_errors
def _export_torch(args: argparse.Namespace, _settings: Settings) -> int:
    try:
        from onnxq.registry.export_torch import export_torch_module
    except ImportError:  # pragma: no cover - depends on the installed extras
        print(
            "error: `onnxq export torch` needs the torch extra: pip install 'onnxq[torch]'",
            file=sys.stderr,
        )
        return 1
    bundle = export_torch_module(
        args.factory,
        args.weights,
        args.sample,
        task=args.task,
        module_output=args.module_output,
        class_names=_names(args.class_names),
        targets=_names(args.targets),
        output_names=_names(args.output_names),
    )
    return _check_and_write(bundle, args.out, args.tolerance)


def add_export_commands(
    commands: argparse._SubParsersAction, tolerance: argparse.ArgumentParser
) -> None:
    """Add `export sklearn` and `export torch` to the `onnxq` parser."""
    export = commands.add_parser("export", help="convert a trained model to ONNX and check parity")
    kinds = export.add_subparsers(dest="framework", required=True)
    sk = kinds.add_parser(
        "sklearn",
        parents=[tolerance],
        help="a pickled scikit-learn-API classifier, regressor or pipeline (LightGBM, XGBoost: "
        "the boosting extra); your own file",
    )
    sk.add_argument("estimator", type=Path, help="pickle file of the fitted estimator")
    sk.add_argument(
        "--sample",
        type=Path,
        required=True,
        help="CSV of sample rows; its columns are the feature names, in order",
    )
    sk.add_argument("--out", type=Path, default=Path("export"), help="directory to write")
    sk.add_argument("--class-names", help="a classifier's comma-separated class names, in order")
    sk.add_argument("--targets", help="a regressor's comma-separated target names, in order")
    sk.add_argument(
        "--nullable",
        help="features that may be sent missing (null/NaN): 'all', 'none' or a comma-separated "
        "list (default: all when the estimator takes NaN, e.g. HistGradientBoosting, LightGBM, "
        "XGBoost; none otherwise)",
    )
    sk.set_defaults(handler=_export_sklearn)

    pt = kinds.add_parser("torch", parents=[tolerance], help="a PyTorch module (torch extra)")
    pt.add_argument("factory", help="<module.py>:<factory>, a function returning the nn.Module")
    pt.add_argument("--weights", type=Path, required=True, help="state_dict file (torch.save)")
    pt.add_argument(
        "--sample",
        type=Path,
        required=True,
        help="CSV of sample feature rows (a tabular model), or .npz of sample input tensors "
        "keyed by input name, in the order forward() takes them (a tensor model)",
    )
    pt.add_argument("--out", type=Path, default=Path("export"), help="directory to write")
    pt.add_argument(
        "--task",
        choices=["classification", "regression", "tensor"],
        help="what the module's output is (default: classification for a CSV sample, tensor "
        "for an .npz sample)",
    )
    pt.add_argument(
        "--module-output",
        choices=["logits", "probabilities"],
        default="logits",
        help="a classifier's output; logits get a softmax",
    )
    pt.add_argument("--class-names", help="comma-separated names of classes 0..n-1")
    pt.add_argument("--targets", help="a regressor's comma-separated target names, in order")
    pt.add_argument("--output-names", help="a tensor model's comma-separated output names")
    pt.set_defaults(handler=_export_torch)
