"""`onnxq predict-file MODEL INPUT --out OUTPUT`: a file of rows in, a file of results out.

INPUT is a .parquet, .arrows (Arrow IPC stream), .csv (header row) or .npy (2-D, feature order)
file; OUTPUT is .parquet, .arrows, .csv or .json. The job goes through onnxq.client (its retries,
its idempotent submit, its waiting polls); progress is drawn on stderr: the upload, the job's
state while it waits, the download.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid
from pathlib import Path
from typing import TextIO

from onnxq.client import Client, ClientError
from onnxq.settings import Settings

BAR = 30


class ProgressLine:
    """One line on a terminal, redrawn in place (plain lines when stderr is not a terminal)."""

    def __init__(self, stream: TextIO | None = None):
        self.stream = stream or sys.stderr
        self.redraw = self.stream.isatty()
        self.started = time.monotonic()

    def show(self, text: str, done: bool = False) -> None:
        elapsed = f"{time.monotonic() - self.started:6.1f} s"
        if self.redraw:
            self.stream.write(f"\r\033[K{elapsed}  {text}" + ("\n" if done else ""))
        elif done:
            self.stream.write(f"{elapsed}  {text}\n")
        self.stream.flush()

    def upload(self, sent: int, total: int) -> None:
        filled = BAR * sent // max(total, 1)
        self.show(f"upload [{'#' * filled}{'.' * (BAR - filled)}] {sent / 1e6:,.1f} / "
                  f"{total / 1e6:,.1f} MB", done=sent == total)  # fmt: skip


def _predict_file(args: argparse.Namespace, settings: Settings) -> int:
    url = args.url or f"http://{settings.gateway_host}:{settings.gateway_port}"
    line = ProgressLine()
    try:
        with Client(url, api_key=os.environ.get("ONNXQ_API_KEY"), timeout=args.timeout) as client:
            job = client.model(args.model, args.version).submit(
                Path(args.input), idempotency_key=uuid.uuid4().hex, progress=line.upload
            )
            line.show(f"job {job.id}: {job.status}", done=True)
            deadline = time.monotonic() + args.timeout
            while not job.ended:
                if time.monotonic() > deadline:
                    print(f"error: job {job.id} still {job.status} after {args.timeout:g} s",
                          file=sys.stderr)  # fmt: skip
                    return 1
                job.refresh(wait=1.0)  # a waiting poll: answered at once when the job ends
                line.show(f"job {job.id}: {job.status}, {job.document.get('rows', 0):,} rows")
            line.show(f"job {job.id}: {job.status}", done=True)
            written = job.download(args.out, timeout=args.timeout)
    except (ClientError, OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    line.show(f"wrote {args.out} ({written / 1e6:,.2f} MB)", done=True)
    return 0


def add_predict_file_command(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    command = commands.add_parser(
        "predict-file", help="run a job on a file of rows and write its results to a file"
    )
    command.add_argument("model")
    command.add_argument("input", help=".parquet, .arrows (Arrow IPC stream), .csv or .npy")
    command.add_argument("--out", required=True, help=".parquet, .arrows, .csv or .json")
    command.add_argument("--version", type=int, help="a model version (default: the default)")
    command.add_argument("--url", help="the gateway (default: ONNXQ_GATEWAY_HOST and _PORT)")
    command.add_argument("--timeout", type=float, default=600.0, help="seconds for the job")
    command.set_defaults(handler=_predict_file)
