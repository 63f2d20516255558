"""`onnxq drift-profile` and `onnxq drift`: build a reference profile, run a drift check now."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

import numpy as np
import pandas as pd

from drift import build_profile
from drift.log_reader import Progress
from drift.psi import FeatureReport
from onnxq.cli.repository import served_repository
from onnxq.errors import OnnxqError
from onnxq.models.manifest import Manifest
from onnxq.models.tensors import tensor_records
from onnxq.settings import Settings
from onnxq.telemetry.drift_check import check_model, unprofiled_inputs
from onnxq.telemetry.logs import configure_logging

PROGRESS_MIN_BYTES = 1024 * 1024  # a smaller log is read before a progress line would help


def read_training_data(path: Path) -> pd.DataFrame:
    """A CSV or Parquet file (by extension) as a DataFrame."""
    if path.suffix.lower() in {".parquet", ".pq"}:
        try:
            return pd.read_parquet(path)
        except ImportError as exc:
            raise SystemExit(f"reading Parquet needs pyarrow: {exc}") from None
    return pd.read_csv(path)


def _drift_profile(args: argparse.Namespace, settings: Settings) -> int:
    try:
        repository = served_repository(settings)
        model = repository.get(args.name, args.version)
    except OnnxqError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 2
    manifest = model.manifest
    if not manifest.tabular and (args.data is not None or args.held_out is None):
        print(
            "error: a tensor model has no feature columns to profile: pass --held-out inputs "
            "(.npz) to profile its outputs, and no --data",
            file=sys.stderr,
        )
        return 2
    if manifest.tabular and args.data is None:
        print(
            "error: --data (the training data) is needed to profile the features", file=sys.stderr
        )
        return 2
    names = manifest.feature_names
    frames = {"--data": args.data, "--held-out": args.held_out if manifest.tabular else None}
    read: dict[str, pd.DataFrame] = {"--data": pd.DataFrame()}
    for option, path in frames.items():
        if path is None:
            continue
        frame = read_training_data(path)
        absent = [name for name in names if name not in frame.columns]
        if absent:
            print(f"error: {path} ({option}) lacks the model's features: {absent}", file=sys.stderr)
            return 2
        read[option] = frame[names]  # manifest order: the log matches rows by position
    outputs = None
    held_out_rows = 0
    if args.held_out is not None and not args.no_outputs:
        batch = (
            read["--held-out"].to_numpy(dtype=np.float32)
            if manifest.tabular
            else held_out_records(args.held_out, manifest)
        )
        held_out_rows = len(batch)
        outputs = model.predict(batch).profile_outputs()  # keyed as the prediction log's fields
    elif not args.no_outputs:
        print(
            "note: model outputs not profiled: pass --held-out with rows the model was not "
            "trained on (its predictions on its own training rows would show drift for good)",
            file=sys.stderr,
        )
    profile = build_profile(
        read["--data"],
        outputs=outputs,
        outputs_source="held-out" if outputs is not None else None,
        bins=args.bins or settings.drift_bins,
        categorical=[c for c in (args.categorical or "").split(",") if c],
        model=model.name,
        version=model.version,
        skipped=unprofiled_inputs(manifest),
    )
    # Saved atomically beside the manifest: a drift check may be reading the previous one.
    path = profile.save(repository.paths(model.name, model.version).profile)
    size = path.stat().st_size
    outputs_line = (
        f"outputs from {held_out_rows} held-out rows"
        if profile.outputs_source
        else "no output profile"
    )
    print(
        f"{path}: {len(profile.features)} features, {profile.rows} rows, {outputs_line}, "
        f"{size:,} bytes"
    )
    for name, reason in profile.skipped.items():
        print(f"not profiled: {name}: {reason}")
    return 0


def held_out_records(path: Path, manifest: Manifest) -> np.ndarray:
    """A tensor model's held-out inputs (.npz by input name) as its batch of records."""
    from onnxq.registry.export_dir import read_sample

    inputs, _, _ = read_sample(path, [])
    return tensor_records(manifest, inputs)


class ProgressLine:
    """A one-line progress bar on stderr, updated after every chunk of a large log."""

    def __init__(self, stream: TextIO = sys.stderr, enabled: bool = True):
        self.stream = stream
        self.enabled = enabled
        self.last_tenth = -1

    def __call__(self, progress: Progress) -> None:
        if not self.enabled or progress.total_bytes < PROGRESS_MIN_BYTES:
            return
        width = 30
        done = int(progress.fraction * width)
        line = (
            f"reading log [{'#' * done}{'.' * (width - done)}] {progress.fraction:6.1%} "
            f"{progress.bytes_read / 1e6:,.0f}/{progress.total_bytes / 1e6:,.0f} MB, "
            f"{progress.rows:,} rows"
        )
        if self.stream.isatty():
            end = "\n" if progress.bytes_read >= progress.total_bytes else ""
            self.stream.write(f"\r{line}{end}")
        elif int(progress.fraction * 10) > self.last_tenth:  # a file: one line per 10 %
            self.last_tenth = int(progress.fraction * 10)
            self.stream.write(line + "\n")
        self.stream.flush()


def _cell(value: float | None, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def summary_table(features: list[FeatureReport]) -> str:
    """Feature, verdicts, PSI, alert level, p-value, rows, missing and unseen rates, a line each."""
    header = (
        "feature",
        "verdict",
        "psi",
        "alert at",
        "p-value",
        "rows",
        "missing ref→cur",
        "missing verdict",
        "unseen",
        "unseen verdict",
    )
    lines = [
        (
            f.name,
            f.verdict,
            _cell(f.psi),
            _cell(f.alert_level),
            _cell(f.p_value),
            f"{f.current_rows:,}",
            f"{f.reference_missing_rate:.1%}→{f.current_missing_rate:.1%}",
            f.missing_verdict,
            "-" if f.current_unseen_rate is None else f"{f.current_unseen_rate:.1%}",
            f.unseen_verdict or "-",
        )
        for f in features
    ]
    widths = [max(len(str(row[i])) for row in [header, *lines]) for i in range(len(header))]
    return "\n".join(
        "  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in [header, *lines]
    )


def _drift(args: argparse.Namespace, settings: Settings) -> int:
    configure_logging(settings.log_level, process="cli")
    try:
        served_repository(settings)
        since = datetime.fromisoformat(args.since) if args.since else None
        if since is not None and since.tzinfo is None:
            since = since.replace(tzinfo=UTC)
        check = check_model(
            settings,
            args.name,
            args.version,
            days=args.days,
            since=since,
            progress=ProgressLine(enabled=not args.no_progress),
            alert=not args.no_alert,
        )
    except (OnnxqError, ValueError) as exc:
        print(f"error: {getattr(exc, 'message', exc)}", file=sys.stderr)
        return 2
    report = check.report
    print(
        f"{report.model} version {report.version}: {report.rows:,} rows from "
        f"{report.window_start:%Y-%m-%d %H:%M} to {report.window_end:%Y-%m-%d %H:%M} UTC, "
        f"{report.corrupt_lines:,} corrupt lines skipped"
    )
    if report.features:
        print(summary_table(report.features))
    if report.outputs:
        print("\nmodel outputs")
        print(summary_table(report.outputs))
    for name, reason in report.skipped.items():
        print(f"not profiled: {name}: {reason}")
    drifted = report.drifted
    print(f"\ndrifted: {', '.join(drifted) if drifted else 'none'}")
    print(f"report: {check.files.json}\n        {check.files.html}")
    return 0


def add_drift_commands(commands: argparse._SubParsersAction) -> None:
    """Register `drift-profile` and `drift` on the `onnxq` parser."""
    profile = commands.add_parser(
        "drift-profile", help="build a model version's drift reference profile from training data"
    )
    profile.add_argument("name", help="model name")
    profile.add_argument("--version", type=int, help="model version (default: the default one)")
    profile.add_argument(
        "--data", type=Path, help="training data: .csv or .parquet (not for a tensor model)"
    )
    profile.add_argument("--bins", type=int, help="quantile bins (default ONNXQ_DRIFT_BINS)")
    profile.add_argument("--categorical", help="comma-separated features to treat as categories")
    profile.add_argument(
        "--held-out",
        type=Path,
        help="rows the model was not trained on (.csv or .parquet; .npz of input tensors for a "
        "tensor model): its outputs on them are the output profile (without it the outputs "
        "are not profiled)",
    )
    profile.add_argument(
        "--no-outputs", action="store_true", help="do not profile the model's outputs"
    )
    profile.set_defaults(handler=_drift_profile)

    drift = commands.add_parser("drift", help="run a drift check now and write its report")
    drift.add_argument("name", help="model name")
    drift.add_argument("--version", type=int, help="model version (default: the default one)")
    window = drift.add_mutually_exclusive_group()
    window.add_argument("--days", type=int, help="window in days (default ONNXQ_DRIFT_WINDOW_DAYS)")
    window.add_argument("--since", help="window start, ISO date or time (UTC unless offset)")
    drift.add_argument("--no-progress", action="store_true", help="no progress line on stderr")
    drift.add_argument("--no-alert", action="store_true", help="no drift_alert, no webhook")
    drift.set_defaults(handler=_drift)
