"""The transfer: one attempt to copy a saved file to the remote.

Every runner calls :func:`run_transfer` and acts on its outcome; the
runners differ only in how they schedule it and its retries.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from django.core.exceptions import SuspiciousFileOperation
from django.core.files import File

from . import conditional, ledger, signals
from .conf import conf
from .exceptions import (
    FinalTransferError,
    LocalFileMissing,
    NameConflict,
    VerificationError,
)
from .localfiles import HashingFile, sha256_of
from .registry import get_storage

if TYPE_CHECKING:
    from .models import StoredFile
    from .storage import QueuedStorage


@dataclass(frozen=True)
class Outcome:
    #: done: verified on the remote; skipped: nothing to do (not queued, or
    #: another worker has it); retry: failed, try again after a delay;
    #: failed: failed for good (status FAILED).
    kind: Literal["done", "skipped", "retry", "failed"]
    attempt: int = 0
    host: str = ""

    @property
    def retry(self) -> bool:
        return self.kind == "retry"


def run_transfer(key: str, name: str) -> Outcome:
    """Make one attempt at transferring ``name`` of the storage ``key``."""
    storage = get_storage(key)
    # Hooks first: a hook that cannot be built must fail before the file is
    # claimed, or it would stay TRANSFERRING.
    storage.hooks  # noqa: B018  (connect hooks before the first signal)
    row = ledger.claim(key, name)
    if row is None:
        return Outcome("skipped")
    try:
        signals.send(signals.transfer_started, storage, name=name, attempt=row.attempts)
        started = time.monotonic()  # the copy's duration, not the preprocessing's
        copy_to_remote(storage, row)
    except Exception as exc:
        return _failed(storage, row, exc)
    duration = time.monotonic() - started
    if not ledger.mark_remote(row):
        if not ledger.still_exists(row):
            # Deleted while we copied: don't leave a copy nobody knows.
            storage.remote.delete(name)
        return Outcome("skipped", row.attempts, row.host)
    signals.send_robust(
        signals.transferred,
        storage,
        name=name,
        size=row.size,
        checksum=row.checksum,
        duration=duration,
    )
    return Outcome("done", row.attempts, row.host)


def _failed(storage: QueuedStorage, row: StoredFile, exc: Exception) -> Outcome:
    final = isinstance(exc, FinalTransferError) or row.attempts >= conf.RETRIES + 1
    error = f"{type(exc).__name__}: {exc}"
    signals.logger.warning("Transfer of %r (attempt %s) failed: %s", row.name, row.attempts, error)
    if not ledger.mark_failed(row, error, final=final):
        return Outcome("skipped", row.attempts, row.host)
    signals.send_robust(
        signals.transfer_failed,
        storage,
        name=row.name,
        exception=exc,
        attempt=row.attempts,
        will_retry=not final,
    )
    return Outcome("failed" if final else "retry", row.attempts, row.host)


def copy_to_remote(storage: QueuedStorage, row: StoredFile) -> None:
    """Stream the local copy to the remote under the same name and verify it."""
    name, remote = row.name, storage.remote
    try:
        source = storage.open_local(name)
    except FileNotFoundError:
        raise LocalFileMissing(
            f"The local copy of {name!r} is gone, so it cannot be transferred. Restore it "
            "and run storage.transfer(name), or delete the file through the storage."
        ) from None
    except SuspiciousFileOperation as exc:
        raise FinalTransferError(str(exc)) from None
    # With the remote refusing to overwrite (conditional.py), the existence
    # check is only needed before replacing a copy of an earlier attempt.
    check_first = row.remote_write_started or not conditional.replaces_existence_check(remote)
    with source:
        if check_first and remote.exists(name):
            if _same_file(storage, row):
                return  # a copy that was finished but not recorded
            if not row.remote_write_started:
                raise NameConflict(
                    f"The remote already holds a different file named {name!r}, which this "
                    "library did not write; it is not overwritten. The local copy is kept. "
                    "Rename one of them, or delete the remote one, then transfer it again."
                )
            remote.delete(name)  # the unfinished copy of one of our earlier attempts
        ledger.mark_remote_write_started(row)
        sent = HashingFile(source, name)
        saved = _write(storage, row, sent)
    if saved != name:
        # The remote picks another name only when the name is taken at the
        # moment of writing: another writer got there first.
        remote.delete(saved)
        raise NameConflict(
            f"The remote stored {name!r} as {saved!r}, as another writer took the name "
            "meanwhile; that copy was removed and the other file is not touched. Rename one "
            "of them, or delete the remote one, then transfer it again."
        )
    checksum = sent.hexdigest() or sha256_of(storage.local, name)
    if checksum != row.checksum:
        raise VerificationError(
            f"The local copy of {name!r} changed since it was saved (SHA-256 {checksum}, "
            f"recorded {row.checksum})."
        )
    size = remote.size(name)
    if size != row.size:
        raise VerificationError(f"The remote copy of {name!r} has {size} bytes, not {row.size}.")


def _write(storage: QueuedStorage, row: StoredFile, content: File) -> str:
    """Write ``content`` to the remote under ``row.name``, refused by the
    remote if the name is taken meanwhile (where it can refuse)."""
    name, remote = row.name, storage.remote
    condition = conditional.Exclusive(None)
    try:
        with conditional.exclusive(remote, name) as condition:
            # _save, not save: save() would pick another name if this one is
            # taken, and the copy must have exactly the same name.
            saved: str = remote._save(name, content)  # type: ignore[attr-defined]
    except Exception as exc:
        if not condition:
            raise
        if conditional.name_taken(exc):
            # Nothing of ours was written: the name is another writer's.
            ledger.forget_remote_write(row)
            if _same_file(storage, row):
                return name  # the same bytes: nothing to overwrite
            raise NameConflict(
                f"The remote already holds a different file named {name!r} (another writer "
                "created it), and refused to overwrite it. The local copy is kept. "
                "Rename one of them, or delete the remote one, then transfer it again."
            ) from exc
        if conditional.not_supported(exc):
            ledger.forget_remote_write(row)
            raise FinalTransferError(
                f"The remote does not implement conditional writes (If-None-Match), so "
                f"{name!r} was not written. Set STORAGE_HOOKS['CONDITIONAL_WRITES'] = False "
                "and retry the transfer."
            ) from exc
        raise
    if condition and not condition.applied:
        signals.logger.warning(
            "The conditional write of %r was not applied: django-storages wrote it under "
            "another key than %r expected.",
            name,
            condition.target,
        )
    return saved


def _same_file(storage: QueuedStorage, row: StoredFile) -> bool:
    """Whether the remote file under the name is byte for byte ours (a copy
    that was finished but not recorded)."""
    remote = storage.remote
    if remote.size(row.name) != row.size:
        return False
    with remote.open(row.name, "rb") as fh:
        reader = HashingFile(File(fh), row.name)
        for _ in reader.chunks():
            pass
    return reader.hexdigest() == row.checksum
