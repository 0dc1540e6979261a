"""``manage.py storage_hooks status | retry | sync | verify``.

Exit codes: 0 all is well; 1 something needs attention (verify found a
problem, rows of an unknown storage key were left alone, sync could not
adopt a file); 2 the command could not run as asked (an unknown
``--storage`` key, a bad option value).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.core.management.base import BaseCommand, CommandError, OutputWrapper

from ...exceptions import UnknownStorageKey
from ...maintenance import Tick, retry_stuck, status_summary
from ...registry import configured_storages, get_storage, known_storages
from ...status import Status
from ..sync import MIN_AGE, sync_storage
from ..verify import remote_rows, verify_remote

OK, ATTENTION, USAGE = 0, 1, 2


def seconds(value: str) -> float:
    """argparse type: a number of seconds, >= 0."""
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number of seconds") from None
    if number < 0:
        raise argparse.ArgumentTypeError(f"{value!r} is negative")
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


class _BarOutput:
    """Lets tqdm write to the command's stderr without added newlines."""

    def __init__(self, out: OutputWrapper) -> None:
        self.out = out

    def write(self, text: str) -> None:
        self.out.write(text, style_func=lambda x: x, ending="")

    def flush(self) -> None:
        self.out.flush()


class Command(BaseCommand):
    help = (
        "Inspect and repair the transfers of QueuedStorages: status, retry (re-queue "
        "failed and stuck transfers), sync (adopt files the ledger does not know), "
        "verify (check that remote files are really there)."
    )

    def add_arguments(self, parser: Any) -> None:
        commands = parser.add_subparsers(dest="subcommand", required=True, metavar="SUBCOMMAND")

        def add(name: str, text: str, *, progress: bool = False) -> Any:
            sub = commands.add_parser(name, help=text, description=text)
            sub.add_argument(
                "--storage",
                action="append",
                metavar="KEY",
                help="Only this storage key (repeat for more). Default: every one.",
            )
            sub.add_argument(
                "--json", action="store_true", help="Print one JSON document on stdout."
            )
            # Also after the subcommand ("retry -v 2"); unset unless given, so
            # it doesn't hide a -v given before the subcommand.
            sub.add_argument(
                "-v",
                "--verbosity",
                type=int,
                choices=[0, 1, 2, 3],
                default=argparse.SUPPRESS,
                help="Verbosity; 2 lists every file.",
            )
            if progress:
                sub.add_argument(
                    "--no-progress",
                    action="store_true",
                    help="No progress bar (one is shown on a terminal when tqdm is installed).",
                )
            return sub

        add("status", "Counts by status per storage key, and the oldest pending file.")
        retry = add("retry", "Re-queue failed transfers and those stuck after a lost message.")
        retry.add_argument(
            "--stuck-after",
            type=seconds,
            metavar="SECONDS",
            help="Re-queue QUEUED/TRANSFERRING files whose ledger row has not changed for "
            "this long (default: STORAGE_HOOKS['STUCK_AFTER'], 900).",
        )
        sync = add("sync", "Record and queue local files the ledger does not know.", progress=True)
        sync.add_argument(
            "--remote",
            action="store_true",
            help="Also record the names already on the remote as REMOTE.",
        )
        sync.add_argument("--dry-run", action="store_true", help="Report; change nothing.")
        sync.add_argument(
            "--min-age",
            type=seconds,
            default=MIN_AGE,
            metavar="SECONDS",
            help=f"Leave files modified less than this long ago (default {MIN_AGE}): they may "
            "be uploads in progress.",
        )
        verify = add(
            "verify", "Check that every REMOTE file is on the remote with its size.", progress=True
        )
        verify.add_argument(
            "--fix",
            action="store_true",
            help="Re-queue the files that are not, from their local copy.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        handler = getattr(self, f"handle_{options['subcommand']}")
        code = handler(options)
        if code:
            raise CommandError(self._failure, returncode=code)

    _failure = ""

    def attention(self, message: str) -> int:
        self._failure = message
        return ATTENTION

    def emit(self, document: dict[str, Any]) -> None:
        self.stdout.write(json.dumps(document, indent=2, sort_keys=True))

    @contextmanager
    def progress(
        self, options: dict[str, Any], total: int | None, what: str
    ) -> Iterator[Tick | None]:
        """A tqdm bar on a terminal's stderr, or None (no tqdm, not a
        terminal, or --no-progress)."""
        if options.get("no_progress") or not self.stderr.isatty():
            yield None
            return
        try:
            from tqdm import tqdm
        except ImportError:
            yield None
            return
        with tqdm(total=total, desc=what, unit="file", file=_BarOutput(self.stderr)) as bar:
            yield bar.update

    # -- status ------------------------------------------------------------

    def handle_status(self, options: dict[str, Any]) -> int:
        summary = status_summary(options["storage"])
        if options["json"]:
            self.emit(summary)
            return OK
        states = [str(state) for state in Status]
        table = [["storage", *states, "total"]]
        for entry in summary["storages"]:
            label = entry["key"] + ("" if entry["known"] else "*")
            counts = [*(entry["counts"][state] for state in states), entry["total"]]
            table.append([label, *map(str, counts)])
        widths = [max(len(line[i]) for line in table) for i in range(len(table[0]))]
        for line in table:
            cells = [line[0].ljust(widths[0])]
            cells += [cell.rjust(width) for cell, width in zip(line[1:], widths[1:], strict=True)]
            self.stdout.write("  ".join(cells))
        if any(not entry["known"] for entry in summary["storages"]):
            self.stdout.write("* no storage with this key exists in this process")
        pending = [e["oldest_pending"] for e in summary["storages"] if e["oldest_pending"]]
        for row in pending:
            self.stdout.write(
                f"Oldest pending in {row['key']}: {row['name']} ({row['status']}, "
                f"{row['attempts']} attempts), saved {age(row['age_seconds'])} ago"
            )
        if not pending:
            self.stdout.write("Nothing is pending.")
        return OK

    # -- retry -------------------------------------------------------------

    def handle_retry(self, options: dict[str, Any]) -> int:
        report = retry_stuck(options["stuck_after"], options["storage"])
        if options["json"]:
            self.emit(report.as_dict())
        else:
            failed = sum(1 for r in report.requeued if r["status"] == Status.FAILED)
            stuck = len(report.requeued) - failed
            self.stdout.write(
                f"Re-queued {n(len(report.requeued), 'file')} ({failed} failed, {stuck} unchanged "
                f"for {report.stuck_after:g}s or more)."
            )
            if options["verbosity"] >= 2:
                for row in report.requeued:
                    self.stdout.write(f"  {row['key']}: {row['name']} (was {row['status']})")
        if report.unknown:
            return self.attention(self._unknown_message(report.unknown, "re-queued"))
        return OK

    def _unknown_message(self, unknown: dict[str, int], verb: str) -> str:
        keys = ", ".join(f"{key!r} ({n(count, 'file')})" for key, count in unknown.items())
        message = (
            f"Not {verb}: rows of storage keys no storage of this process has: {keys}. "
            "Define the storage in settings.STORAGES or give it that key where it is built."
        )
        self.stderr.write(message)
        return message

    # -- sync --------------------------------------------------------------

    def _sync_storages(self, keys: list[str] | None) -> list[Any]:
        if keys:
            try:
                return [get_storage(key) for key in dict.fromkeys(keys)]
            except UnknownStorageKey as exc:
                raise CommandError(str(exc), returncode=USAGE) from None
        found: dict[str, Any] = {}
        for storage in [*configured_storages().values(), *known_storages()]:
            found.setdefault(storage.key, storage)
        return [found[key] for key in sorted(found)]

    def handle_sync(self, options: dict[str, Any]) -> int:
        reports = []
        for storage in self._sync_storages(options["storage"]):
            with self.progress(options, None, f"sync {storage.key}") as tick:
                reports.append(
                    sync_storage(
                        storage,
                        remote=options["remote"],
                        dry_run=options["dry_run"],
                        min_age=options["min_age"],
                        tick=tick,
                    )
                )
        problems = [
            skip for report in reports for skip in report.skipped if skip["kind"] != "recent"
        ]
        if options["json"]:
            document = {
                "schema": 1,
                "command": "sync",
                "ok": not problems,
                "storages": [report.as_dict() for report in reports],
            }
            self.emit(document)
        else:
            for report in reports:
                self._print_sync(report, options)
        if problems:
            return self.attention(f"sync could not adopt {n(len(problems), 'file')} (see above).")
        return OK

    def _print_sync(self, report: Any, options: dict[str, Any]) -> None:
        would = "would be " if report.dry_run else ""
        line = (
            f"{report.key}: {n(report.seen_local, 'local file')}, {len(report.adopted)} "
            f"{would}adopted ({report.status})"
        )
        if options["remote"]:
            line += (
                f"; {n(report.seen_remote, 'remote file')}, {len(report.recorded_remote)} "
                f"{would}recorded as remote"
            )
        if report.skipped:
            line += f"; {len(report.skipped)} skipped"
        self.stdout.write(line + ".")
        for skip in report.skipped:
            self.stdout.write(f"  skipped {skip['name']}: {skip['reason']}")
        if options["verbosity"] >= 2:
            for name in report.adopted:
                self.stdout.write(f"  {would}adopted {name}")
            for name in report.recorded_remote:
                self.stdout.write(f"  {would}recorded as remote {name}")

    # -- verify ------------------------------------------------------------

    def handle_verify(self, options: dict[str, Any]) -> int:
        keys = options["storage"]
        total = None
        if not options["no_progress"] and self.stderr.isatty():
            total = remote_rows(keys).count()
        with self.progress(options, total, "verify") as tick:
            report = verify_remote(keys, fix=options["fix"], tick=tick)
        if options["json"]:
            self.emit(report.as_dict())
        else:
            self.stdout.write(
                f"Checked {n(report.checked, 'remote file')}: {n(len(report.problems), 'problem')}."
            )
            for problem in report.problems:
                self.stdout.write("  " + self._describe(problem))
        if report.unknown:
            self._unknown_message(report.unknown, "checked")
        if report.problems or report.unknown:
            lost = sum(1 for p in report.problems if p.action == "lost")
            text = f"verify found {n(len(report.problems), 'problem')}"
            if lost:
                text += f"; {n(lost, 'file')} lost (no local copy to send again)"
            if report.unknown:
                text += f"; {n(sum(report.unknown.values()), 'file')} could not be checked"
            return self.attention(text + ".")
        return OK

    @staticmethod
    def _describe(problem: Any) -> str:
        where = f"{problem.key}: {problem.name}"
        if problem.kind == "missing":
            text = f"{where} is missing on the remote"
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
