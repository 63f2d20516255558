"""`onnxq export | validate | register | promote | rollback | models`: the model lifecycle commands.

Each handler is a thin shell over onnxq.registry (export_sklearn, export_torch, parity,
register); an OnnxqError becomes one `error: ...` line on stderr and exit status 1, never a
traceback.
"""

from __future__ import annotations

import argparse
import functools
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from onnxq.cli.repository import served_repository
from onnxq.errors import OnnxqError
from onnxq.models.manifest import DEFAULT_TOLERANCE, MODEL_FILE, Manifest
from onnxq.settings import Settings

if TYPE_CHECKING:
    from onnxq.registry.export import ExportBundle

Handler = Callable[[argparse.Namespace, Settings], int]


def _show_warning(
    message: Warning | str, category: type[Warning], *_args: object, **_kw: object
) -> None:
    print(f"WARNING: {message}", file=sys.stderr, flush=True)


def reports_errors(handler: Handler) -> Handler:
    """Warnings and onnxq errors as plain lines on stderr: this is a command, not a library."""

    @functools.wraps(handler)
    def run(args: argparse.Namespace, settings: Settings) -> int:
        with warnings.catch_warnings():
            warnings.simplefilter("always", UserWarning)
            warnings.showwarning = _show_warning  # at once, before the work it warns about
            try:
                return handler(args, settings)
            except OnnxqError as exc:
                print(f"error: {exc.message}", file=sys.stderr)
                return 1

    return run


def _print_report(lines: list[str]) -> None:
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
    _print_report(report.lines())
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


@reports_errors
def _validate(args: argparse.Namespace, _settings: Settings) -> int:
    from onnxq.registry.parity import validate_export_dir

    report = validate_export_dir(args.model_dir, args.sample, args.tolerance)
    _print_report(report.lines())
    return 0 if report.passed else 1


@reports_errors
def _register(args: argparse.Namespace, settings: Settings) -> int:
    from onnxq.registry.register import register_model

    repository = served_repository(settings)
    registration = register_model(
        repository,
        args.name,
        args.model,
        args.reference,
        promote=args.promote,
        tolerance=args.tolerance,
        sample=args.sample,
        held_out=args.held_out,
    )
    _print_report(registration.report.lines())
    manifest = registration.manifest
    served = repository.default_version(manifest.name)
    print(
        f"registered {manifest.name} version {manifest.version} in {registration.path}; "
        f"default version: {served}"
        + (
            ""
            if registration.promoted
            else f" (promote with: onnxq promote {manifest.name} {manifest.version})"
        )
    )
    return 0


@reports_errors
def _promote(args: argparse.Namespace, settings: Settings) -> int:
    from onnxq.registry.register import promote

    change = promote(served_repository(settings), args.name, args.version)
    print(f"{change.name}: default version {change.previous} -> {change.version}")
    return 0


@reports_errors
def _rollback(args: argparse.Namespace, settings: Settings) -> int:
    from onnxq.registry.register import rollback

    change = rollback(served_repository(settings), args.name, args.version)
    print(f"{change.name}: default version {change.previous} -> {change.version} (rolled back)")
    return 0


def _size(size: int) -> str:
    return f"{size / 1024:.1f} KiB" if size < 1024 * 1024 else f"{size / 1024 / 1024:.1f} MiB"


@reports_errors
def _models(_args: argparse.Namespace, settings: Settings) -> int:
    repository = served_repository(settings)
    print(
        f"{'model':<24} {'version':>7}  {'default':<7}  {'parity max|diff|':>16}  "
        f"{'rows':>6}  {'size':>10}  created"
    )
    for name in repository.names():
        try:
            default: int | None = repository.default_version(name)
        except OnnxqError as exc:  # list the versions anyway: this is what a person debugs with
            print(f"WARNING: {name}: {exc.message}", file=sys.stderr)
            default = None
        for version in repository.versions(name):
            marker = "*" if version == default else ""
            try:
                manifest = Manifest.read(repository.paths(name, version).directory)
            except (OSError, ValueError) as exc:
                print(f"{name:<24} {version:>7}  {marker:<7}  unreadable manifest: {exc}")
                continue
            parity = manifest.parity
            print(
                f"{name:<24} {version:>7}  {marker:<7}  {parity.max_abs_diff:>16.3g}  "
                f"{parity.rows:>6}  {_size(manifest.size_bytes):>10}  "
                f"{manifest.created_at:%Y-%m-%d %H:%M:%S}"
            )
    return 0


def add_lifecycle_commands(commands: argparse._SubParsersAction) -> None:
    """Add the lifecycle subcommands to the `onnxq` parser."""
    tolerance = argparse.ArgumentParser(add_help=False)
    tolerance.add_argument(
        "--tolerance",
        type=float,
        default=DEFAULT_TOLERANCE,
        help="largest allowed |ONNX - source| (default: %(default)g)",
    )

    export = commands.add_parser("export", help="convert a trained model to ONNX and check parity")
    kinds = export.add_subparsers(dest="framework", required=True)
    sk = kinds.add_parser(
        "sklearn",
        parents=[tolerance],
        help="a pickled scikit-learn classifier or pipeline (your own file)",
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

    validate = commands.add_parser(
        "validate", parents=[tolerance], help="compare an exported model with its source model"
    )
    validate.add_argument("model_dir", type=Path, help="directory written by onnxq export")
    validate.add_argument(
        "--sample",
        type=Path,
        help="CSV the source outputs were recorded on (default: the export's)",
    )
    validate.set_defaults(handler=_validate)

    register = commands.add_parser(
        "register",
        parents=[tolerance],
        help="validate an exported model and add it as a new version",
    )
    register.add_argument("name", help="model name")
    register.add_argument("model", type=Path, help="model.onnx in a directory from onnxq export")
    register.add_argument(
        "--reference",
        type=Path,
        help="training data CSV, profiled for drift monitoring (needed for a tabular model)",
    )
    register.add_argument(
        "--held-out",
        type=Path,
        help="rows the model was not trained on (CSV; .npz of input tensors for a tensor "
        "model): its outputs on them are the drift profile's output reference (without it "
        "the outputs are not profiled)",
    )
    register.add_argument("--sample", type=Path, help="check against this export sample CSV")
    register.add_argument("--promote", action="store_true", help="make it the default version")
    register.set_defaults(handler=_register)

    promote = commands.add_parser("promote", help="make a version the default")
    promote.add_argument("name")
    promote.add_argument("version", type=int)
    promote.set_defaults(handler=_promote)

    rollback = commands.add_parser("rollback", help="move the default version back")
    rollback.add_argument("name")
    rollback.add_argument(
        "version",
        type=int,
        nargs="?",
        help="version to serve (default: the one below the current default)",
    )
    rollback.set_defaults(handler=_rollback)

    models = commands.add_parser("models", help="list models, versions, default, parity, size")
    models.set_defaults(handler=_models)
