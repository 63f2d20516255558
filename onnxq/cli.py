"""The `onnxq` command line."""

from __future__ import annotations

import argparse
import sys

from onnxq.logs import configure_logging
from onnxq.model import SessionConfig
from onnxq.repository import ModelRepository
from onnxq.settings import Settings


def _demo_model(args: argparse.Namespace, settings: Settings) -> int:
    from onnxq.demo import DEMO_MODEL_NAME, build_demo_model

    repository = ModelRepository(settings.model_dir, SessionConfig())
    if args.if_missing and repository.versions(DEMO_MODEL_NAME):
        print(
            f"{DEMO_MODEL_NAME}: already in {settings.model_dir}, versions "
            f"{repository.versions(DEMO_MODEL_NAME)}"
        )
        return 0
    manifest = build_demo_model(repository, tolerance=args.tolerance)
    print(
        f"{manifest.name} version {manifest.version} written to "
        f"{settings.model_dir / manifest.name / str(manifest.version)} "
        f"(parity max |Δp| = {manifest.parity.max_abs_diff:.3g} on {manifest.parity.rows} rows)"
    )
    return 0


def _models(_args: argparse.Namespace, settings: Settings) -> int:
    repository = ModelRepository(settings.model_dir)
    for name in repository.names():
        versions = repository.versions(name)
        print(f"{name}\tversions={versions}\tdefault={repository.default_version(name)}")
    return 0


def _run(_args: argparse.Namespace, settings: Settings) -> int:
    from onnxq.local_stack import LocalStack

    configure_logging(settings.log_level, process="run")
    return LocalStack(settings).run()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="onnxq", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser("demo-model", help="train and export the breast-cancer demo model")
    demo.add_argument("--if-missing", action="store_true", help="do nothing if it exists")
    demo.add_argument("--tolerance", type=float, default=1e-5, help="parity tolerance")
    demo.set_defaults(handler=_demo_model)

    models = commands.add_parser("models", help="list models and versions")
    models.set_defaults(handler=_models)

    run = commands.add_parser("run", help="run Redis (if needed), gateway and worker here")
    run.set_defaults(handler=_run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = Settings()
    return int(args.handler(args, settings))


if __name__ == "__main__":
    sys.exit(main())
