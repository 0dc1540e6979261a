"""What ``manage.py storage_hooks`` prints, and how it reads numbers: the
text side of the command, apart from the work (:mod:`storage_hooks.ops`)."""

from __future__ import annotations

import argparse
import math
from typing import Any

from django.core.management.base import OutputWrapper

from ..status import Status

#: The longest duration accepted (a century): longer ones overflow dates.
MAX_SECONDS = 100 * 365 * 86400


def seconds(value: str) -> float:
    """argparse type: a finite number of seconds, 0 to a century."""
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number of seconds") from None
    if math.isnan(number) or math.isinf(number):
        raise argparse.ArgumentTypeError(f"{value!r} is not a finite number of seconds")
    if number < 0:
        raise argparse.ArgumentTypeError(f"{value!r} is negative")
    if number > MAX_SECONDS:
        raise argparse.ArgumentTypeError(
            f"{value!r} is more than a century ({MAX_SECONDS} seconds)"
        )
    return number


def n(count: int, noun: str) -> str:
    """``n(1, "file")`` -> ``"1 file"``, ``n(2, "file")`` -> ``"2 files"``."""
    return f"{count} {noun}{'' if count == 1 else 's'}"


def age(total: float) -> str:
    """``3725`` -> ``"1h 2m"``: an age for people (two units at most)."""
    days, rest = divmod(int(total), 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [(days, "d"), (hours, "h"), (minutes, "m"), (secs, "s")]
    first = next((i for i, (n, _) in enumerate(parts) if n), len(parts) - 1)
    shown = [f"{n}{unit}" for n, unit in parts[first : first + 2] if n]
    return " ".join(shown) or "0s"


class BarOutput:
    """Lets tqdm write to the command's stderr without added newlines."""

    def __init__(self, out: OutputWrapper) -> None:
        self.out = out

    def write(self, text: str) -> None:
        self.out.write(text, style_func=lambda x: x, ending="")

    def flush(self) -> None:
        self.out.flush()


def status_lines(summary: dict[str, Any]) -> list[str]:
    """The text of ``status``: a table of counts, then notes."""
    lines: list[str] = []
    states = [str(state) for state in Status]
    estimated = summary["remote_estimated"]
    table = [["storage", *states, "total"]]
    for entry in summary["storages"]:
        label = entry["key"] + ("" if entry["known"] else "*")
        counts = [str(entry["counts"][state]) for state in states]
        total = str(entry["total"])
        if estimated:
            counts[states.index(Status.REMOTE)] = "~" + counts[states.index(Status.REMOTE)]
            total = "~" + total
        table.append([label, *counts, total])
    widths = [max(len(line[i]) for line in table) for i in range(len(table[0]))]
    for line in table:
        cells = [line[0].ljust(widths[0])]
        cells += [cell.rjust(width) for cell, width in zip(line[1:], widths[1:], strict=True)]
        lines.append("  ".join(cells))
    if any(not entry["known"] for entry in summary["storages"]):
        lines.append("* no storage with this key exists in this process")
    if estimated:
        lines.append(
            "~ estimated from PostgreSQL's statistics (--exact counts them); the other "
            "states are exact."
        )
    pending = [e["oldest_pending"] for e in summary["storages"] if e["oldest_pending"]]
    for row in pending:
        lines.append(
            f"Oldest pending in {row['key']}: {row['name']} ({row['status']}, "
            f"{row['attempts']} attempts), saved {age(row['age_seconds'])} ago"
        )
    if not pending:
        lines.append("Nothing is pending.")
    lost = summary["totals"][Status.LOST]
    if lost:
        lines.append(
            f"{n(lost, 'file')} LOST: verify found no remote and no local copy; only a "
            "backup can bring them back."
        )
    return lines


def sync_lines(report: Any, remote: bool, verbosity: int) -> list[str]:
    """The text of ``sync`` for one storage."""
    would = "would be " if report.dry_run else ""
    line = (
        f"{report.key}: {n(report.seen_local, 'local file')}, {len(report.adopted)} "
        f"{would}adopted ({report.status})"
    )
    if remote:
        line += (
            f"; {n(report.seen_remote, 'remote file')}, {len(report.recorded_remote)} "
            f"{would}recorded as remote"
        )
    if report.skipped:
        line += f"; {len(report.skipped)} skipped"
    lines = [line + "."]
    lines += [f"  skipped {skip['name']}: {skip['reason']}" for skip in report.skipped]
    if verbosity >= 2:
        lines += [f"  {would}adopted {name}" for name in report.adopted]
        lines += [f"  {would}recorded as remote {name}" for name in report.recorded_remote]
    return lines


def describe(problem: Any) -> str:
    """One line about a problem ``verify`` found."""
    where = f"{problem.key}: {problem.name}"
    if problem.kind == "missing":
        text = f"{where} is missing on the remote"
    elif problem.kind == "lost":
        text = f"{where} is LOST: {problem.detail}"
    elif problem.kind == "checksum":
        text = f"{where} holds other bytes on the remote ({problem.detail})"
    elif problem.kind == "size":
        text = (
            f"{where} has {problem.actual_size} bytes on the remote, "
            f"{problem.expected_size} recorded"
        )
    else:
        text = f"{where} could not be checked: {problem.detail}"
    return text + {
        "requeued": " (re-queued from the local copy)",
        "lost": " (LOST: the local copy is gone too)",
    }.get(problem.action, "")
