"""``manage.py storage_hooks status | retry | sync | verify | rekey | purge``.

A thin face: the work is done by :mod:`storage_hooks.ops`, one module per
operation; this module parses options and prints reports.

Exit codes: 0 all is well; 1 something needs attention (verify found a
problem, rows of an unknown storage key were left alone, sync could not
adopt a file, a file is LOST); 2 the command could not run as asked (an
unknown ``--storage`` key, a bad option value, an unsafe local root).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from ...ops.common import (
    Tick,
    estimate,
    is_postgresql,
    process_storages,
    unknown_key_message,
    unknown_keys,
)
from ...ops.purge import purge_rejected
from ...ops.rekey import RekeyRefused, in_flight, rekey_storage
from ...ops.retry import retry_stuck
from ...ops.status import status_summary
from ...ops.sync import MIN_AGE, UnsafeRoot, sync_storage
from ...ops.verify import remote_rows, verify_remote
from ...status import Status
from ..text import BarOutput, describe, n, seconds, status_lines, sync_lines

OK, ATTENTION, USAGE = 0, 1, 2


class Command(BaseCommand):
    help = (
        "Inspect and repair the transfers of QueuedStorages: status, retry (re-queue "
        "failed and stuck transfers), sync (adopt files the ledger does not know), "
        "verify (check that remote files are really there), rekey (move the rows of a "
        "storage key to another), purge (delete rejected files)."
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

        status = add("status", "Counts by status per storage key, and the oldest pending file.")
        status.add_argument(
            "--exact",
            action="store_true",
            help="Count REMOTE files exactly (reads all their rows); by default PostgreSQL's "
            "estimate is shown, marked with ~.",
        )
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
            "verify",
            "Check that every REMOTE file is on the remote with its size, by listing the remote.",
            progress=True,
        )
        verify.add_argument(
            "--fix",
            action="store_true",
            help="Re-queue the files that are not, from their local copy; mark those without "
            "one LOST.",
        )
        verify.add_argument(
            "--checksums",
            action="store_true",
            help="Also prove each file's SHA-256 (S3: the checksum S3 stored; else the copy is "
            "read back): one request per file.",
        )
        rekey = add(
            "rekey", "Move the ledger rows of storage key OLD to NEW (after a key changed)."
        )
        rekey.add_argument("old", metavar="OLD")
        rekey.add_argument("new", metavar="NEW")
        rekey.add_argument("--dry-run", action="store_true", help="Report; change nothing.")
        purge = add(
            "purge", "Delete files through their storage: those refused for good.", progress=True
        )
        purge.add_argument(
            "--rejected",
            action="store_true",
            required=True,
            help="Delete the files a preprocessor refused (FAILED, failure 'rejected').",
        )
        purge.add_argument("--dry-run", action="store_true", help="Report; change nothing.")

    def handle(self, *args: Any, **options: Any) -> None:
        unknown = unknown_keys(options.get("storage") or ())
        if unknown:
            raise CommandError(unknown_key_message(unknown), returncode=USAGE)
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
        with tqdm(total=total, desc=what, unit="file", file=BarOutput(self.stderr)) as bar:
            yield bar.update

    # -- status ------------------------------------------------------------

    def handle_status(self, options: dict[str, Any]) -> int:
        summary = status_summary(options["storage"], exact=options["exact"])
        if options["json"]:
            self.emit(summary)
            return OK
        for line in status_lines(summary):
            self.stdout.write(line)
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
        if report.rejected_left and not options["json"]:
            self.stdout.write(
                "Files refused for good (rejected) are left alone; "
                "'storage_hooks purge --rejected' deletes them."
            )
        problems = []
        if report.deleted and not options["json"]:
            self.stdout.write(f"Finished {n(len(report.deleted), 'interrupted delete')}.")
            if options["verbosity"] >= 2:
                for row in report.deleted:
                    self.stdout.write(f"  {row['key']}: {row['name']} (deleted)")
        if report.delete_errors:
            why = "; ".join(
                f"{row['key']}: {row['name']} ({row['error']})" for row in report.delete_errors
            )
            message = (
                f"Could not finish {n(len(report.delete_errors), 'interrupted delete')}: "
                f"{why}. The rows stay DELETING (the files read as deleted); fix the cause "
                "and run 'storage_hooks retry' again."
            )
            self.stderr.write(message)
            problems.append(message)
        if report.lost:
            lost = ", ".join(f"{key!r} ({n(c, 'file')})" for key, c in report.lost.items())
            message = (
                f"Cannot re-queue LOST files: {lost}. Neither the remote nor the local copy "
                "exists; restore them from a backup to the local storage, then run "
                "'storage_hooks verify --fix'."
            )
            self.stderr.write(message)
            problems.append(message)
        if report.unknown:
            problems.append(self._unknown_message(report.unknown, "re-queued"))
        if problems:
            return self.attention(" ".join(problems))
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

    def _storages(self, keys: list[str] | None) -> list[Any]:
        mine = process_storages()
        if not keys:
            return list(mine.values())
        missing = [key for key in keys if key not in mine]
        if missing:
            raise CommandError(unknown_key_message(missing), returncode=USAGE)
        return [mine[key] for key in dict.fromkeys(keys)]

    def handle_sync(self, options: dict[str, Any]) -> int:
        reports = []
        for storage in self._storages(options["storage"]):
            with self.progress(options, None, f"sync {storage.key}") as tick:
                try:
                    report = sync_storage(
                        storage,
                        remote=options["remote"],
                        dry_run=options["dry_run"],
                        min_age=options["min_age"],
                        tick=tick,
                    )
                except UnsafeRoot as exc:
                    raise CommandError(str(exc), returncode=USAGE) from None
                reports.append(report)
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
                for line in sync_lines(report, options["remote"], options["verbosity"]):
                    self.stdout.write(line)
        if problems:
            return self.attention(f"sync could not adopt {n(len(problems), 'file')} (see above).")
        return OK

    # -- verify ------------------------------------------------------------

    def handle_verify(self, options: dict[str, Any]) -> int:
        keys = options["storage"]
        total = None
        if not options["no_progress"] and self.stderr.isatty():
            # The bar's total: PostgreSQL's estimate rather than a count of
            # every remote row.
            rows = remote_rows(keys)
            total = estimate(rows) if is_postgresql() else rows.count()
        with self.progress(options, total, "verify") as tick:
            report = verify_remote(
                keys, fix=options["fix"], checksums=options["checksums"], tick=tick
            )
        if options["json"]:
            self.emit(report.as_dict())
        else:
            self.stdout.write(
                f"Checked {n(report.checked, 'remote file')}"
                f"{' by checksum' if report.mode == 'checksums' else ''}: "
                f"{n(len(report.problems), 'problem')}."
            )
            for problem in report.problems:
                self.stdout.write("  " + describe(problem))
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

    # -- rekey -------------------------------------------------------------

    def handle_rekey(self, options: dict[str, Any]) -> int:
        try:
            report = rekey_storage(options["old"], options["new"], dry_run=options["dry_run"])
        except RekeyRefused as exc:
            raise CommandError(str(exc), returncode=USAGE) from None
        if options["json"]:
            self.emit(report.as_dict())
        total = sum(report.counts.values())
        if report.conflicts:
            listed = "\n".join(f"  {name}" for name in report.conflicts)
            more = report.conflict_count - len(report.conflicts)
            message = (
                f"Refused: the key {report.new!r} already has {n(report.conflict_count, 'file')} "
                f"of the same name as {report.old!r}'s; nothing moved. Resolve them first "
                f"(delete one of each pair through its storage):\n{listed}"
                + (f"\n  ... and {more} more" if more > 0 else "")
            )
            self.stderr.write(message)
            return self.attention(
                f"rekey refused: {n(report.conflict_count, 'name')} in both keys."
            )
        if not options["json"]:
            verb = "Would move" if report.dry_run else "Moved"
            counts = ", ".join(f"{c} {state}" for state, c in sorted(report.counts.items()))
            self.stdout.write(
                f"{verb} {n(total, 'row')} from {report.old!r} to {report.new!r} ({counts})."
            )
            if in_flight(report) and not report.dry_run:
                self.stdout.write(
                    "Queued transfers still carry the old key: run 'storage_hooks retry "
                    "--stuck-after 0' once the workers know the new key."
                )
        return OK

    # -- purge -------------------------------------------------------------

    def handle_purge(self, options: dict[str, Any]) -> int:
        with self.progress(options, None, "purge") as tick:
            report = purge_rejected(options["storage"], dry_run=options["dry_run"], tick=tick)
        if options["json"]:
            self.emit(report.as_dict())
        else:
            verb = "Would delete" if report.dry_run else "Deleted"
            self.stdout.write(f"{verb} {n(len(report.deleted), 'rejected file')}.")
            if options["verbosity"] >= 2:
                for entry in report.deleted:
                    self.stdout.write(f"  {entry['key']}: {entry['name']} ({entry['reason']})")
            for entry in report.errors:
                self.stderr.write(
                    f"  could not delete {entry['key']}: {entry['name']}: {entry['error']}"
                )
        if report.unknown:
            self._unknown_message(report.unknown, "deleted")
        if not report.ok:
            return self.attention(
                f"purge left {n(len(report.errors) + sum(report.unknown.values()), 'file')}."
            )
        return OK
