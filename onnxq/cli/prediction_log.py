"""`onnxq log`: the prediction log's rows as JSON lines, for people and for jq, grep or pandas.

The log itself is Arrow (drift/log_segments.py, docs/prediction-log.md); this prints each row as
one JSON object in the columns' order, the float32 values as their shortest round-trip decimals.
"""

from __future__ import annotations

import argparse
import sys
from datetime import date

import orjson

from drift.log_segments import read_segment, segment_files
from onnxq.settings import Settings


def _print_log(args: argparse.Namespace, settings: Settings) -> int:
    if args.day is not None and args.model is None:
        print("error: --day needs --model", file=sys.stderr)
        return 2
    day = {"first": args.day, "last": args.day} if args.day is not None else {}
    paths = segment_files(settings.prediction_log_dir, args.model, args.version, **day)
    out = sys.stdout.buffer
    cut = 0
    for path in paths:
        read = read_segment(path)
        for batch in read.batches:
            for line in batch.lines():
                out.write(orjson.dumps(line, option=orjson.OPT_APPEND_NEWLINE))
        cut += read.truncated
    out.flush()
    if cut:
        print(f"{cut} segment(s) end in the middle of a batch (a writer was killed)",
              file=sys.stderr)  # fmt: skip
    return 0


def add_log_commands(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    log = commands.add_parser(
        "log", help="print the prediction log's rows as JSON lines (ONNXQ_PREDICTION_LOG_DIR)"
    )
    log.add_argument("--model", help="only this model's rows")
    log.add_argument("--version", type=int, help="only this version's (with --model)")
    log.add_argument("--day", type=date.fromisoformat, help="only this UTC day's, YYYY-MM-DD")
    log.set_defaults(handler=_print_log)
