"""How a command reports: warnings and onnxq errors as plain lines on stderr, never a traceback."""

from __future__ import annotations

import argparse
import functools
import sys
import warnings
from collections.abc import Callable

from onnxq.errors import OnnxqError
from onnxq.settings import Settings

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
