"""`onnxq validate | register | promote | rollback | models`: the model lifecycle commands
(`onnxq export`: onnxq/cli/export.py).

Each handler is a thin shell over onnxq.registry (parity, register); an OnnxqError becomes one
`error: ...` line on stderr and exit status 1, never a traceback (onnxq/cli/errors.py).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from onnxq.cli.errors import reports_errors
from onnxq.cli.export import add_export_commands, print_report
from onnxq.cli.repository import served_repository
from onnxq.errors import OnnxqError
from onnxq.models.manifest import DEFAULT_TOLERANCE, Manifest
from onnxq.settings import Settings


@reports_errors
def _validate(args: argparse.Namespace, _settings: Settings) -> int:
    from onnxq.registry.parity import validate_export_dir

    report = validate_export_dir(args.model_dir, args.sample, args.tolerance)
    print_report(report.lines())
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
    print_report(registration.report.lines())
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

    add_export_commands(commands, tolerance)

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
