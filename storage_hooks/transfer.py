"""The transfer: one attempt to copy a saved file to the remote.

It reads as its steps (:func:`run_transfer`): claim the file, run the
storage's preprocessors, send ``transfer_started``, write the copy with its
proof (:func:`attempt`), record it, send ``transferred`` (:func:`settle`).
Every runner calls :func:`run_transfer` and acts on its outcome; the runners
differ only in how they schedule it and its retries. A batch
(:mod:`storage_hooks.batching`) makes the same steps, claiming and recording
many files per statement.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from django.core.exceptions import SuspiciousFileOperation
from django.core.files import File
from django.core.files.base import ContentFile
from django.db import transaction

from . import ledger, proof, s3, signals
from .conf import conf
from .errors import redact
from .exceptions import (
    FileDeleted,
    FinalTransferError,
    LocalFileMissing,
    NameConflict,
    TransferError,
    VerificationError,
    failure_kind,
)
from .hooks.preprocess import Preprocess
from .localfiles import HashingFile, open_for_reading, sha256_of
from .registry import get_storage
from .status import Status

if TYPE_CHECKING:
    from .models import StoredFile
    from .storage import QueuedStorage


@dataclass(frozen=True)
class Outcome:
    #: done: proven on the remote; skipped: nothing to do (not queued, or
    #: another worker has it); retry: failed, try again after a delay;
    #: failed: failed for good (status FAILED).
    kind: Literal["done", "skipped", "retry", "failed"]
    attempt: int = 0
    host: str = ""

    @property
    def retry(self) -> bool:
        return self.kind == "retry"


@dataclass
class Copy:
    """What one attempt wrote: how it was proven, and what identifies the
    remote copy (so that only this copy is ever deleted)."""

    proof: str
    identity: str


@dataclass
class Proven:
    """An attempt whose copy is written and proven, not recorded yet."""

    row: StoredFile
    copy: Copy
    #: Seconds the copy took (not the preprocessing).
    duration: float


def run_transfer(key: str, name: str) -> Outcome:
    """Make one attempt at transferring ``name`` of the storage ``key``."""
    storage = get_storage(key)
    # Hooks first: a hook that cannot be built must fail before the file is
    # claimed, or it would stay TRANSFERRING.
    storage.connect_hooks()
    row = ledger.claim(key, name)
    if row is None:
        return Outcome("skipped")
    proven = attempt(storage, row)
    if isinstance(proven, Outcome):
        return proven
    return settle(storage, proven, recorded=ledger.mark_remote(row, proven.copy.identity))


def attempt(storage: QueuedStorage, row: StoredFile) -> Proven | Outcome:
    """The attempt at a claimed ``row`` up to its record: preprocess, send
    ``transfer_started``, write and prove the copy. A failure is recorded
    (its outcome returned); a proven copy is returned for the caller to
    record (:func:`~storage_hooks.ledger.mark_remote`, or with others) and
    :func:`settle`."""
    try:
        preprocessed = preprocess(storage, row)
        signals.send(signals.transfer_started, storage, name=row.name, attempt=row.attempts)
        # A receiver may have replaced the local copy, and a long preprocessing
        # may have outlived the row: read it again. With neither, the row is
        # as claimed (a change by another process is caught by the record).
        touched = preprocessed or signals.transfer_started.has_receivers_for(storage)
        if touched and not ledger.refresh(row):
            raise FileDeleted(f"{row.name!r} was deleted or taken by another attempt meanwhile.")
        started = time.monotonic()  # the copy's duration, not the preprocessing's
        copy = copy_to_remote(storage, row)
    except Exception as exc:
        return _failed(storage, row, exc)
    return Proven(row, copy, time.monotonic() - started)


def settle(storage: QueuedStorage, proven: Proven, *, recorded: bool) -> Outcome:
    """After the record of a proven copy: ``transferred`` if it was
    recorded; else the attempt lost its row meanwhile, and its copy is
    removed if nothing else may own it (:func:`clean_up`)."""
    row, copy = proven.row, proven.copy
    if not recorded:
        clean_up(storage, row, copy.identity)
        return Outcome("skipped", row.attempts, row.host)
    signals.send(
        signals.transferred,
        storage,
        name=row.name,
        size=row.size,
        checksum=row.checksum,
        duration=proven.duration,
        proof=copy.proof,
    )
    return Outcome("done", row.attempts, row.host)


# -- preprocessing -----------------------------------------------------------


def preprocess(storage: QueuedStorage, row: StoredFile) -> bool:
    """Run the storage's preprocessors on the local copy, in the order of
    its hooks, each on what the one before returned; then replace the local
    copy with the result and record its size and SHA-256. Once per file: a
    retry after the chain succeeded does not run it again. Whether any ran."""
    chain = [hook for hook in storage.hooks if isinstance(hook, Preprocess)]
    if not chain or row.preprocessed:
        return False
    current: File | None = None
    try:
        for hook in chain:
            source = current or File(storage.open_local(row.name), row.name)
            try:
                source.seek(0)
                result = hook.process(storage, row.name, source)
                if result is source or result is getattr(source, "file", None):
                    result = None  # the file it was given: unchanged
            finally:
                if source is not current:
                    source.close()
            if result is not None:
                if current is not None and current is not result:
                    current.close()
                current = _as_file(result, row.name)
        if current is not None:
            current.seek(0)
            size, checksum = storage._replace_local(row.name, current, pk=row.pk)
            row.size, row.checksum = size, checksum
    finally:
        if current is not None:
            current.close()
    ledger.mark_preprocessed(row)
    return True


def _as_file(result: Any, name: str) -> File:
    if isinstance(result, (bytes, bytearray)):
        return ContentFile(bytes(result), name)
    if isinstance(result, File):
        return result
    if hasattr(result, "read"):
        return File(result, name)
    raise TypeError(
        f"A preprocessor returned {type(result).__name__}; return a File, ContentFile, bytes "
        "or None."
    )


# -- failing -----------------------------------------------------------------


def _failed(storage: QueuedStorage, row: StoredFile, exc: Exception) -> Outcome:
    final = isinstance(exc, FinalTransferError) or row.attempts >= conf.RETRIES + 1
    error = describe(storage, exc)
    signals.logger.warning("Transfer of %r (attempt %s) failed: %s", row.name, row.attempts, error)
    if not ledger.mark_failed(row, error, final=final, kind=failure_kind(exc)):
        return Outcome("skipped", row.attempts, row.host)
    signals.send(
        signals.transfer_failed,
        storage,
        name=row.name,
        exception=exc,
        attempt=row.attempts,
        will_retry=not final,
    )
    return Outcome("failed" if final else "retry", row.attempts, row.host)


def describe(storage: QueuedStorage, exc: BaseException) -> str:
    """The text recorded in the ledger for ``exc`` (staff only): local root
    paths made relative, credentials and signatures taken out of URLs."""
    roots = [location] if (location := getattr(storage.local, "location", None)) else []
    text = f"{type(exc).__name__}: {exc}"
    remote_s3 = s3.as_s3(storage.remote)
    if remote_s3 is not None and s3.error_code(exc) == "NoSuchBucket":
        endpoint = getattr(remote_s3, "endpoint_url", None) or "the default AWS endpoint"
        text += (
            f" -- The bucket {remote_s3.bucket_name!r} does not exist at {endpoint}: create it "
            "(see 'The bucket' in the getting-started docs), or fix bucket_name; the transfer "
            "is retried, and `manage.py storage_hooks retry` starts a failed one again."
        )
    return redact(text, roots=roots)


# -- copying -----------------------------------------------------------------


#: From the first read of at least this many bytes (a multipart part, read
#: whole) the bytes are hashed by a thread of their own, behind the upload.
HASH_APART_FROM = 1 << 20
#: How many reads that thread may be behind (memory: parts it still holds).
HASH_BEHIND = 2


class _Sent(HashingFile):
    """The local copy as the remote reads it: hashed (SHA-256, and the MD5s
    S3 puts in its ETag) as it goes.

    A big file is hashed behind the upload, not in its way: its reads are
    handed to a hashing thread (hashlib lets go of the GIL) while they are
    sent, at most ``HASH_BEHIND`` reads behind. The digests are complete
    when :meth:`hexdigest` returns, which is before the copy is proven."""

    def __init__(self, file: Any, name: str, parts: s3.PartHasher | None) -> None:
        super().__init__(file, name)
        self.parts = parts
        self._behind: queue.Queue[bytes | None] | None = None
        self._hasher: threading.Thread | None = None

    def _fresh(self, data: bytes) -> None:
        if self._behind is None and len(data) < HASH_APART_FROM:
            self._hash(data)
            return
        if self._behind is None:
            self._behind = queue.Queue(maxsize=HASH_BEHIND)
            self._hasher = threading.Thread(target=self._hash_behind, daemon=True)
            self._hasher.start()
        self._behind.put(data)

    def _hash(self, data: bytes) -> None:
        super()._fresh(data)
        if self.parts is not None:
            self.parts.update(data)

    def _hash_behind(self) -> None:
        assert self._behind is not None
        while (data := self._behind.get()) is not None:
            self._hash(data)

    def _caught_up(self) -> None:
        """Wait until every byte read so far is hashed."""
        if self._hasher is None:
            return  # nothing handed to a thread, or caught up already
        assert self._behind is not None
        self._behind.put(None)
        self._hasher.join()
        self._hasher = None

    def hexdigest(self) -> str | None:
        self._caught_up()
        return super().hexdigest()

    def close(self) -> None:
        self._caught_up()
        super().close()


def copy_to_remote(storage: QueuedStorage, row: StoredFile) -> Copy:
    """Stream the local copy to the remote under the same name, never over
    a file this library did not write, and prove the copy."""
    name, remote = row.name, storage.remote
    remote_s3 = s3.as_s3(remote)
    parts = None
    if remote_s3 is not None and not s3.gzips(remote_s3, name):
        parts = s3.PartHasher(remote_s3, row.size or 0)
    exclusive = remote_s3 is not None and s3.conditional_writes(remote)
    validated = False
    if exclusive and conf.CONDITIONAL_WRITES is True:
        capabilities = s3.probe(remote_s3)
        # An upload that may go multipart keeps the existence check: a server
        # may ignore the condition on CompleteMultipartUpload (Ceph's radosgw
        # 16 does), and where it does not, a name another writer holds would
        # be found only after the whole upload; an attempt interrupted
        # meanwhile leaves its write flagged, and its retry would take the
        # other writer's object for its own unfinished copy.
        single = parts is not None and not parts.multipart
        skip_check = capabilities.honours_if_none_match and single
        validated = capabilities.validates_checksums
    else:
        skip_check = exclusive and conf.CONDITIONAL_WRITES == "only"
    try:
        source = open_for_reading(storage.local, name)
    except FileNotFoundError:
        raise LocalFileMissing(
            f"The local copy of {name!r} is gone, so it cannot be transferred. Restore it "
            "and run storage.transfer(name), or delete the file through the storage."
        ) from None
    except SuspiciousFileOperation as exc:
        raise FinalTransferError(str(exc)) from None
    multipart = parts is not None and parts.multipart
    with source, _multipart_turn(multipart) as turn, _held(remote_s3, name) as waited:
        # A big file waits for its turn, and any file for another write of
        # its name in this process to end, before anything is checked or
        # flagged; meanwhile its row may have gone to another attempt
        # (re-queued after STUCK_AFTER) or its local copy been replaced.
        if turn.waited or waited:
            claimed = (row.size, row.checksum)
            if not ledger.refresh(row):
                raise FileDeleted(
                    f"{name!r} was deleted or taken by another attempt while it waited for "
                    "its turn (MULTIPART_UPLOADS) or for another write of its name."
                )
            if (row.size, row.checksum) != claimed:
                raise TransferError(
                    f"The local copy of {name!r} was replaced while it waited for its turn; "
                    "it is sent again."
                )
        if (row.remote_write_started or not skip_check) and (
            s3.exists(remote_s3, name) if remote_s3 is not None else remote.exists(name)
        ):
            if _same_file(storage, row):
                return Copy("readback", "")  # a copy that was finished but not recorded
            if not row.remote_write_started:
                raise NameConflict(
                    f"The remote already holds a different file named {name!r}, which this "
                    "library did not write; it is not overwritten. The local copy is kept. "
                    "Rename one of them, or delete the remote one, then transfer it again."
                )
            remote.delete(name)  # the unfinished copy of one of our earlier attempts
        ledger.mark_remote_write_started(row)
        sent = _Sent(source, name, parts)
        saved, write = _write(
            storage, row, sent, exclusive=exclusive, parts=parts, parts_sent=turn.release
        )
        sent_sha256 = sent.hexdigest()  # before the file closes
    if saved is None:
        return Copy("readback", "")  # an identical copy by another writer was adopted
    if saved != name:
        # The remote picks another name only when the name is taken at the
        # moment of writing: another writer got there first.
        remote.delete(saved)
        raise NameConflict(
            f"The remote stored {name!r} as {saved!r}, as another writer took the name "
            "meanwhile; that copy was removed and the other file is not touched. Rename one "
            "of them, or delete the remote one, then transfer it again."
        )
    checksum = sent_sha256 or sha256_of(storage.local, name)
    if checksum != row.checksum:
        raise VerificationError(
            f"The local copy of {name!r} changed since it was saved (SHA-256 {checksum}, "
            f"recorded {row.checksum})."
        )
    how, identity = proof.prove(
        remote,
        row,
        write=write,
        sent_etag=parts.etag() if parts is not None and sent_sha256 else None,
        validated=validated,
    )
    return Copy(how, identity)


#: (MULTIPART_UPLOADS, its semaphore): this process's turns for big files.
_turns: list[tuple[int, threading.BoundedSemaphore]] = []
_turns_lock = threading.Lock()


def _after_fork() -> None:
    """A forked child's uploads are its own (and its locks free)."""
    global _turns_lock
    _turns.clear()
    _turns_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)


@contextmanager
def _held(remote_s3: Any | None, name: str) -> Iterator[bool]:
    """:func:`s3.hold` on an S3 remote (yields whether it waited); nothing
    elsewhere."""
    if remote_s3 is None:
        yield False
        return
    with s3.hold(remote_s3, name) as waited:
        yield waited


class _Turn:
    """One upload's turn (:func:`_multipart_turn`): given back once, by
    :meth:`release`, as soon as its last part has been sent (the server
    then assembles the parts while the next upload starts), or at the end
    of the block."""

    def __init__(self, semaphore: threading.BoundedSemaphore | None, waited: bool) -> None:
        self._semaphore, self.waited = semaphore, waited
        self._lock = threading.Lock()

    def release(self) -> None:
        # Called by the thread that completes the upload, or by the block.
        with self._lock:
            semaphore, self._semaphore = self._semaphore, None
        if semaphore is not None:
            semaphore.release()


@contextmanager
def _multipart_turn(multipart: bool) -> Iterator[_Turn]:
    """Wait for a turn to send a multipart upload (``MULTIPART_UPLOADS`` at
    once in this process); the turn says whether it waited for one. The
    threads of a batch of big files would otherwise all upload at once, each
    with its parts in memory, and slow one another down on a small machine."""
    count = int(conf.MULTIPART_UPLOADS or 0)
    if not multipart or count <= 0:
        yield _Turn(None, waited=False)
        return
    with _turns_lock:
        if not _turns or _turns[0][0] != count:
            _turns[:] = [(count, threading.BoundedSemaphore(count))]
        semaphore = _turns[0][1]
    waited = not semaphore.acquire(blocking=False)
    if waited:
        semaphore.acquire()
    turn = _Turn(semaphore, waited)
    try:
        yield turn
    finally:
        turn.release()


def _write(
    storage: QueuedStorage,
    row: StoredFile,
    content: File,
    *,
    exclusive: bool,
    parts: s3.PartHasher | None,
    parts_sent: Callable[[], None] | None = None,
) -> tuple[str | None, s3.Write | None]:
    """Write ``content`` to the remote under ``row.name``: on S3 refused by
    the remote if the name is taken meanwhile, and carrying the ledger's
    SHA-256 for a single-request upload. Returns the name written and what
    the server answered; no name when the remote refused the write but
    holds identical bytes (adopted)."""
    name, remote = row.name, storage.remote
    remote_s3 = s3.as_s3(remote)
    if remote_s3 is None:
        # _save, not save: save() would pick another name if this one is
        # taken, and the copy must have exactly the same name.
        return remote._save(name, content), None  # type: ignore[attr-defined]
    single = parts is not None and not parts.multipart
    try:
        with s3.write(
            remote_s3,
            name,
            exclusive=exclusive,
            sha256_hex=row.checksum if single else None,
            parts_sent=parts_sent,
        ) as write:
            if single and s3.saves_as_s3storage(remote_s3):
                saved: str = s3.put_small(remote_s3, name, content)
            else:
                saved = remote._save(name, content)  # type: ignore[attr-defined]
    except Exception as exc:
        if s3.name_taken(exc):
            # Nothing of ours was written: the name is another writer's.
            ledger.forget_remote_write(row)
            if _same_file(storage, row):
                return None, None  # the same bytes: nothing to overwrite
            raise NameConflict(
                f"The remote already holds a different file named {name!r} (another writer "
                "created it), and refused to overwrite it. The local copy is kept. "
                "Rename one of them, or delete the remote one, then transfer it again."
            ) from exc
        if s3.not_supported(exc):
            ledger.forget_remote_write(row)
            raise FinalTransferError(
                f"The remote does not implement conditional writes (If-None-Match), so "
                f"{name!r} was not written. Set STORAGE_HOOKS['CONDITIONAL_WRITES'] = False "
                "and retry the transfer."
            ) from exc
        if s3.checksum_refused(exc):
            raise VerificationError(
                f"The remote refused {name!r}: the bytes it received do not have the ledger's "
                "SHA-256 (the local copy changed, or the bytes were damaged on the way)."
            ) from exc
        raise
    if exclusive and not write.conditioned:
        signals.logger.warning(
            "The conditional write of %r was not applied: django-storages wrote it under "
            "another key than %r expected.",
            name,
            write.target,
        )
    return saved, write


def _same_file(storage: QueuedStorage, row: StoredFile) -> bool:
    """Whether the remote file under the name is byte for byte ours (a copy
    that was finished but not recorded, or identical bytes by another
    writer)."""
    remote = storage.remote
    if remote.size(row.name) != row.size:
        return False
    checksum, _ = proof.read_back(remote, row.name)
    return checksum == row.checksum


# -- cleaning up after an attempt that lost its row ---------------------------


def clean_up(storage: QueuedStorage, row: StoredFile, identity: str) -> None:
    """The copy was written but the attempt's row changed meanwhile (the
    file was deleted, or re-queued and claimed again). Delete the copy only
    if it is provably the one this attempt wrote, and only while no other
    row of the name may own what is on the remote."""
    if not identity:
        return
    key, name = row.storage_key, row.name
    with transaction.atomic(using=ledger.db_alias()):
        held, other = ledger.hold_name(key, name)
        if held:
            proof.delete_if_ours(storage.remote, name, identity)
            placeholder = ledger.get(key, name)
            if placeholder is not None:
                ledger.finish_delete(placeholder)
            return
        if other is None:
            return
        if other.pk == row.pk and other.status != Status.DELETING:
            return  # re-claimed: that attempt may replace our copy itself
        if other.pk != row.pk and (other.status == Status.REMOTE or other.remote_write_started):
            return  # a newer file of that name may own what is there
        proof.delete_if_ours(storage.remote, name, identity)
