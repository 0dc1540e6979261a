"""Checking that REMOTE files are on the remote (``manage.py storage_hooks verify``).

By listing (the default): the remote's listing and the ledger's REMOTE rows
of each storage, both sorted by name, are walked side by side: on S3 one
ListObjectsV2 request per thousand files, and memory that does not grow
with their number. A file missing from the listing, or listed with another
size than recorded, is a problem.

With ``checksums``, each file is also proven equal to the ledger's SHA-256:
on S3 by the checksum S3 keeps for an object written with one (``HeadObject``
with ``ChecksumMode=ENABLED``; one request per file), else by reading the
copy back and hashing it.
"""

from __future__ import annotations

import base64
import hashlib
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from django.db import transaction
from django.db.models import QuerySet

from .. import ledger, s3
from ..proof import read_back
from ..status import Status
from .common import SCHEMA, Tick, ledger_keys, objects, process_storages
from .listing import ledger_in_order, sized_listing

if TYPE_CHECKING:
    from ..models import StoredFile
    from ..storage import QueuedStorage

#: Bytes read at a time when a copy is read back.
READ_SIZE = 1024 * 1024


@dataclass
class Problem:
    """A REMOTE file that is not on the remote as recorded."""

    key: str
    name: str
    #: "missing", "size" (another size than recorded), "checksum" (other
    #: bytes than recorded), "lost" (marked LOST by an earlier ``--fix``) or
    #: "error" (the remote could not be asked; ``detail`` says why).
    kind: str
    expected_size: int | None
    actual_size: int | None = None
    #: "requeued" (--fix, the local copy exists), "lost" (--fix, no local
    #: copy left: the row is now LOST), or "" (not fixed).
    action: str = ""
    detail: str = ""


@dataclass
class VerifyReport:
    """What :func:`verify_remote` found."""

    checked: int = 0
    #: "listing" or "checksums".
    mode: str = "listing"
    problems: list[Problem] = field(default_factory=list)
    #: REMOTE rows not checked because no storage of this process has their key.
    unknown: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems and not self.unknown

    def as_dict(self) -> dict[str, Any]:
        return {"schema": SCHEMA, "command": "verify", "ok": self.ok, **asdict(self)}


def remote_rows(keys: Iterable[str] | None = None) -> QuerySet[StoredFile]:
    """The ledger's REMOTE rows (of ``keys``, when given)."""
    query = objects().filter(status=Status.REMOTE)
    if keys:
        query = query.filter(storage_key__in=list(keys))
    return query


def verify_remote(
    keys: Iterable[str] | None = None,
    *,
    fix: bool = False,
    checksums: bool = False,
    tick: Tick | None = None,
) -> VerifyReport:
    """Check every REMOTE file of ``keys`` (default: every key).

    With ``fix``, a file that is missing or differs is set QUEUED (attempts
    reset) and handed to the runner if its local copy still exists; else it
    is marked LOST. A remote file that differs is not overwritten by that
    transfer unless it turns out to be ours: it fails with a name conflict,
    and the file is served locally meanwhile. ``tick(n)`` is called as
    files are checked (progress bars).
    """
    report = VerifyReport(mode="checksums" if checksums else "listing")
    storages = process_storages()
    wanted = list(dict.fromkeys(keys or ())) or sorted({*ledger_keys(), *storages})
    unknown: Counter[str] = Counter()
    for key in wanted:
        storage = storages.get(key)
        if storage is None:
            count = remote_rows([key]).count()
            if count:
                unknown[key] = count
            continue
        found = _by_checksum(storage) if checksums else _by_listing(storage)
        broken: list[tuple[StoredFile, Problem]] = []
        for row, problem in found:
            report.checked += 1
            if tick:
                tick(1)
            if problem is not None:
                broken.append((row, problem))
        # Repaired after the ledger was read: no write while its rows stream.
        for row, problem in broken:
            if fix and problem.kind != "error":
                problem.action = _repair(storage, row)
            report.problems.append(problem)
        just_lost = {p.name for _, p in broken if p.action == "lost"}
        report.problems += _lost(storage, fix, skip=just_lost)
    report.unknown = dict(sorted(unknown.items()))
    return report


def _by_listing(storage: QueuedStorage) -> Iterator[tuple[StoredFile, Problem | None]]:
    """Each REMOTE row of ``storage`` with its problem (or None), by a merge
    of the remote's sorted listing with the ledger's sorted rows."""
    listing = sized_listing(storage.remote)
    current = next(listing, None)
    for row in ledger_in_order(storage.key):
        while current is not None and current[0] < row.name:
            current = next(listing, None)
        if current is None or current[0] != row.name:
            yield row, Problem(row.storage_key, row.name, "missing", row.size)
            continue
        size = current[1]
        if size is None and row.size is not None:
            try:
                size = storage.remote.size(row.name)
            except Exception as exc:
                yield row, _unreadable(row, exc)
                continue
        if row.size is not None and size != row.size:
            yield row, Problem(row.storage_key, row.name, "size", row.size, size)
        else:
            yield row, None


def _by_checksum(storage: QueuedStorage) -> Iterator[tuple[StoredFile, Problem | None]]:
    """Each REMOTE row of ``storage`` with its problem, proven per file."""
    remote_s3 = s3.as_s3(storage.remote)
    for row in ledger_in_order(storage.key):
        try:
            if remote_s3 is not None:
                size, digest = _s3_checksum(remote_s3, row)
            else:
                digest, size = read_back(storage.remote, row.name)
        except FileNotFoundError:
            yield row, Problem(row.storage_key, row.name, "missing", row.size)
            continue
        except Exception as exc:
            yield row, _unreadable(row, exc)
            continue
        if row.size is not None and size != row.size:
            yield row, Problem(row.storage_key, row.name, "size", row.size, size)
        elif row.checksum and digest != row.checksum:
            detail = f"SHA-256 {digest} on the remote, {row.checksum} recorded"
            yield row, Problem(row.storage_key, row.name, "checksum", row.size, size, detail=detail)
        else:
            yield row, None


def _s3_checksum(s3_storage: Any, row: StoredFile) -> tuple[int, str]:
    """Size and SHA-256 (hex) of an S3 object: the checksum S3 stored with
    it when there is a full-object one, else the bytes read back."""
    # The key django-storages writes the name under comes from its private
    # _normalize_name (through s3.object_key, which says why and for which
    # versions); the client is the storage's own boto3 client.
    client = s3.client(s3_storage)
    key = s3.object_key(s3_storage, row.name)
    bucket = s3_storage.bucket_name
    try:
        head = client.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
    except Exception as exc:
        if s3.is_missing(exc):
            raise FileNotFoundError(row.name) from exc
        raise
    stored = head.get("ChecksumSHA256") or ""
    # A multipart object's checksum may be of its parts ("...-3"): not the
    # file's SHA-256, so read the bytes back instead.
    if stored and "-" not in stored and head.get("ChecksumType", "FULL_OBJECT") == "FULL_OBJECT":
        return int(head["ContentLength"]), base64.b64decode(stored).hex()
    # One GET, streamed (django-storages' open() would ask HEAD again).
    body = client.get_object(Bucket=bucket, Key=key)["Body"]
    sha = hashlib.sha256()
    size = 0
    for chunk in body.iter_chunks(READ_SIZE):
        sha.update(chunk)
        size += len(chunk)
    return size, sha.hexdigest()


def _lost(storage: QueuedStorage, fix: bool, skip: set[str]) -> list[Problem]:
    """The LOST files of ``storage`` (found by an earlier ``--fix``); with
    ``fix``, those whose local copy was restored are queued again."""
    problems = []
    lost = objects().filter(storage_key=storage.key, status=Status.LOST).order_by("name")
    for row in lost.only("pk", "storage_key", "name", "size", "host"):
        if row.name in skip:  # reported above, marked LOST by this run
            continue
        problem = Problem(
            row.storage_key,
            row.name,
            "lost",
            row.size,
            detail="no remote copy and no local copy; restore the local copy from a backup",
        )
        if fix and storage.local.exists(row.name):
            with transaction.atomic(using=ledger.db_alias()):
                if ledger.requeue_remote(row.storage_key, row.pk, row.name):
                    storage.enqueue_on_commit(row.name, host=row.host)
                    problem.action = "requeued"
        problems.append(problem)
    return problems


def _unreadable(row: StoredFile, exc: Exception) -> Problem:
    detail = f"{type(exc).__name__}: {exc}"
    return Problem(row.storage_key, row.name, "error", row.size, detail=detail)


def _repair(storage: QueuedStorage, row: StoredFile) -> str:
    """Queue a REMOTE file again from its local copy ("requeued"), or mark
    it LOST when no local copy is left ("lost")."""
    with transaction.atomic(using=ledger.db_alias()):
        if not storage.local.exists(row.name):
            reason = "verify: the remote copy is missing or differs, and no local copy is left"
            return "lost" if ledger.mark_lost(row.storage_key, row.pk, row.name, reason) else ""
        if not ledger.requeue_remote(row.storage_key, row.pk, row.name):
            return ""  # deleted or changed meanwhile: not ours to touch
        storage.enqueue_on_commit(row.name, host=row.host)
    return "requeued"
