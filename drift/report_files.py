"""Where drift reports are kept: the latest per model, plus a timestamped history.

    <state_dir>/drift/<model>/latest.json
    <state_dir>/drift/<model>/latest.html
    <state_dir>/drift/<model>/history/20261130T060000Z.json   (and .html)

Files are written to a temporary name and renamed into place, so a reader (the gateway) sees the
old report or the new one, never half of one. Only the newest ``keep`` history runs are kept.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from drift.atomic_file import write_text_atomically
from drift.psi import DriftReport
from drift.report_html import render_html

LATEST_JSON = "latest.json"
LATEST_HTML = "latest.html"
HISTORY = "history"
DEFAULT_KEEP = 52  # a year of weekly runs


@dataclass(frozen=True)
class ReportFiles:
    """The files one report was written to."""

    json: Path
    html: Path
    history_json: Path
    history_html: Path


def report_directory(state_dir: str | Path, model: str) -> Path:
    """Directory of one model's reports under the state directory."""
    return Path(state_dir) / "drift" / model


def _prune(history: Path, keep: int) -> None:
    stamps = sorted({path.stem for path in history.glob("*.json")})
    for stamp in stamps[: max(0, len(stamps) - keep)]:
        for suffix in (".json", ".html"):
            (history / f"{stamp}{suffix}").unlink(missing_ok=True)


def write_report(
    report: DriftReport, directory: str | Path, keep: int = DEFAULT_KEEP
) -> ReportFiles:
    """Write ``report`` as JSON and HTML: into the history, then as the latest."""
    if keep < 1:
        raise ValueError("keep must be at least 1")
    directory = Path(directory)
    stamp = report.created_at.strftime("%Y%m%dT%H%M%S%fZ")
    document = report.model_dump_json(indent=1) + "\n"
    page = render_html(report)
    files = ReportFiles(
        json=directory / LATEST_JSON,
        html=directory / LATEST_HTML,
        history_json=directory / HISTORY / f"{stamp}.json",
        history_html=directory / HISTORY / f"{stamp}.html",
    )
    write_text_atomically(files.history_json, document)
    write_text_atomically(files.history_html, page)
    write_text_atomically(files.json, document)
    write_text_atomically(files.html, page)
    _prune(directory / HISTORY, keep)
    return files


def history(directory: str | Path) -> list[Path]:
    """The JSON reports in a model's history, oldest first."""
    return sorted((Path(directory) / HISTORY).glob("*.json"))
