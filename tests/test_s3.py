"""Conditional writes to S3 (storage_hooks.s3), on moto's S3 server.

The race these tests cause is real: another client writes the object on
the same server between the transfer's existence check and its upload.
Only the moment is arranged (a botocore event on our client fires the other
writer just before our request leaves), as that timing cannot be had
otherwise.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from boto3.s3.transfer import TransferConfig
from botocore.awsrequest import AWSResponse
from django.core.checks import run_checks
from django.core.files.base import ContentFile
from django.core.files.storage import FileSystemStorage

from storage_hooks import Status, ledger, s3, signals
from storage_hooks.exceptions import FinalTransferError, NameConflict
from storage_hooks.models import StoredFile
from storage_hooks.storage import QueuedStorage

from . import services
from .conftest import forked_child_sends, make_s3, unique_key
from .testapp.storages import recording

pytestmark = pytest.mark.django_db(transaction=True)

MIB = 1024 * 1024


class Setter:
    def __init__(self, settings: Any) -> None:
        self.settings = settings
        self(RUNNER="immediate", RETRIES=1)

    def __call__(self, **changes: Any) -> None:
        # A new dict, so that setting_changed tells the library.
        self.settings.STORAGE_HOOKS = {**getattr(self.settings, "STORAGE_HOOKS", {}), **changes}


@pytest.fixture
def immediate(settings: Any) -> Setter:
    return Setter(settings)


@pytest.fixture
def remote(s3_endpoint: str, s3_bucket: str) -> Any:
    return make_s3(s3_endpoint, s3_bucket)


@pytest.fixture
def storage(local_dir: Path, remote: Any) -> QueuedStorage:
    return QueuedStorage(
        local=FileSystemStorage(location=local_dir), remote=remote, key=unique_key("cw")
    )


def row(storage: QueuedStorage, name: str) -> StoredFile:
    return StoredFile.objects.get(storage_key=storage.key, name=name)


def remote_bytes(endpoint: str, bucket: str, name: str) -> bytes:
    body = services.s3_client(endpoint).get_object(Bucket=bucket, Key=name)["Body"]
    return body.read()  # type: ignore[no-any-return]


@contextmanager
def requests_of(remote: Any) -> Iterator[list[str]]:
    """The S3 operations our client sends while the block runs."""
    sent: list[str] = []

    def count(model: Any, **kwargs: Any) -> None:
        sent.append(model.name)

    events = remote.bucket.meta.client.meta.events
    events.register("before-call.s3", count, unique_id="test-count")
    try:
        yield sent
    finally:
        events.unregister("before-call.s3", unique_id="test-count")


@contextmanager
def another_writer_first(remote: Any, operation: str, key: str, data: bytes) -> Iterator[None]:
    """Just before our client sends ``operation``, another client puts
    ``data`` under ``key`` on the same server."""
    other = services.s3_client(remote.endpoint_url)

    def race(**kwargs: Any) -> None:
        if not other.list_objects_v2(Bucket=remote.bucket_name, Prefix=key).get("KeyCount"):
            other.put_object(Bucket=remote.bucket_name, Key=key, Body=data)

    events = remote.bucket.meta.client.meta.events
    events.register(f"before-send.s3.{operation}", race, unique_id="test-race")
    try:
        yield
    finally:
        events.unregister(f"before-send.s3.{operation}", unique_id="test-race")


def test_s3_remotes_take_the_condition_and_others_do_not(
    storage: QueuedStorage, local_dir: Path, immediate: Setter
) -> None:
    assert s3.conditional_writes(storage.remote)
    assert not s3.conditional_writes(FileSystemStorage(location=local_dir))
    immediate(CONDITIONAL_WRITES=False)
    assert not s3.conditional_writes(storage.remote)


def test_a_foreign_write_in_the_race_window_is_refused(
    storage: QueuedStorage, remote: Any, immediate: Setter
) -> None:
    with (
        another_writer_first(remote, "PutObject", "race.txt", b"theirs"),
        recording(storage, signals.transfer_failed) as events,
    ):
        name = storage.save("race.txt", ContentFile(b"ours"))

    assert name == "race.txt"
    assert [(kw["attempt"], kw["will_retry"]) for _, kw in events] == [(1, False)]
    assert isinstance(events[0][1]["exception"], NameConflict)
    assert remote_bytes(remote.endpoint_url, remote.bucket_name, name) == b"theirs"
    ledger_row = row(storage, name)
    assert ledger_row.status == Status.FAILED
    # The name is not ours: a later retry must not replace the object.
    assert ledger_row.remote_write_started is False
    with storage.open(name, "rb") as fh:
        assert fh.read() == b"ours"


def test_without_the_condition_the_same_race_overwrites(
    storage: QueuedStorage, remote: Any, immediate: Setter
) -> None:
    """What the header prevents (and proof that the race above is real)."""
    immediate(CONDITIONAL_WRITES=False)
    with another_writer_first(remote, "PutObject", "race.txt", b"theirs"):
        name = storage.save("race.txt", ContentFile(b"ours"))
    assert storage.status(name) == Status.REMOTE
    assert remote_bytes(remote.endpoint_url, remote.bucket_name, name) == b"ours"


def test_a_multipart_upload_is_refused_at_completion(
    local_dir: Path, s3_endpoint: str, s3_bucket: str, immediate: Setter
) -> None:
    remote = make_s3(s3_endpoint, s3_bucket)
    remote.transfer_config = TransferConfig(
        multipart_threshold=5 * MIB, multipart_chunksize=5 * MIB, max_concurrency=2
    )
    storage = QueuedStorage(
        local=FileSystemStorage(location=local_dir), remote=remote, key=unique_key("cw")
    )
    data = b"m" * (11 * MIB)
    with (
        requests_of(remote) as sent,
        another_writer_first(remote, "CompleteMultipartUpload", "big.bin", b"theirs"),
    ):
        name = storage.save("big.bin", ContentFile(data))

    assert "UploadPart" in sent  # it really went multipart
    uploads = services.s3_client(s3_endpoint).list_multipart_uploads(Bucket=s3_bucket)
    assert not uploads.get("Uploads")  # the refused upload was aborted
    assert storage.status(name) == Status.FAILED
    assert row(storage, name).last_error.startswith("NameConflict:")
    assert remote_bytes(s3_endpoint, s3_bucket, name) == b"theirs"
    assert (local_dir / name).stat().st_size == len(data)


def test_a_file_that_may_go_multipart_keeps_the_existence_check(
    local_dir: Path, s3_endpoint: str, s3_bucket: str, immediate: Setter
) -> None:
    """The probe tries the condition on PutObject only; a server may ignore
    it on CompleteMultipartUpload (Ceph's radosgw 16 does: see
    tests/integration/test_servers.py), so a big file is checked first (and
    see the next test for where it does not)."""
    remote = make_s3(s3_endpoint, s3_bucket)
    remote.transfer_config = TransferConfig(
        multipart_threshold=5 * MIB, multipart_chunksize=5 * MIB
    )
    storage = QueuedStorage(
        local=FileSystemStorage(location=local_dir), remote=remote, key=unique_key("cw")
    )
    assert s3.probe(remote).honours_if_none_match
    remote.save("big.bin", ContentFile(b"theirs"))
    with requests_of(remote) as sent:
        big = storage.save("big.bin", ContentFile(b"m" * (6 * MIB)))
        small = storage.save("small.bin", ContentFile(b"s"))
    # The big file: the check, then the size of what is there (not ours);
    # the small one: its conditional write alone.
    assert sent == ["HeadObject", "HeadObject", "PutObject"]
    assert storage.status(big) == Status.FAILED
    assert remote_bytes(s3_endpoint, s3_bucket, "big.bin") == b"theirs"
    assert storage.status(small) == Status.REMOTE


def test_an_interrupted_big_upload_never_takes_a_foreign_object_for_its_own(
    local_dir: Path, s3_endpoint: str, s3_bucket: str, immediate: Setter
) -> None:
    """Where the completion would refuse a taken name (moto), the check
    still goes first: found only at the completion, after the whole upload,
    a foreign object would meet an attempt interrupted meanwhile with its
    write flagged, and its retry would delete the object as its own
    unfinished copy."""
    immediate(RETRIES=2)
    remote = make_s3(s3_endpoint, s3_bucket)
    remote.transfer_config = TransferConfig(
        multipart_threshold=5 * MIB, multipart_chunksize=5 * MIB, max_concurrency=1
    )
    storage = QueuedStorage(
        local=FileSystemStorage(location=local_dir), remote=remote, key=unique_key("cw")
    )
    s3.probe(remote)
    services.s3_client(s3_endpoint).put_object(Bucket=s3_bucket, Key="big.bin", Body=b"theirs")
    cut: list[bool] = []

    def cut_once(**kwargs: Any) -> None:
        if not cut:  # the link breaks for good (botocore's retries spent)
            cut.append(True)
            raise RuntimeError("the link broke")

    events = remote.bucket.meta.client.meta.events
    events.register("before-send.s3.UploadPart", cut_once, unique_id="t-cut")
    try:
        with requests_of(remote) as sent:
            name = storage.save("big.bin", ContentFile(b"m" * (6 * MIB)))
            storage.transfer(name)  # the retry
    finally:
        events.unregister("before-send.s3.UploadPart", unique_id="t-cut")
    assert "DeleteObject" not in sent
    assert remote_bytes(s3_endpoint, s3_bucket, "big.bin") == b"theirs"
    assert storage.status(name) == Status.FAILED
    assert row(storage, name).last_error.startswith("NameConflict:")
    assert (local_dir / name).stat().st_size == 6 * MIB


def test_the_existence_check_builds_no_client_in_the_asking_thread(remote: Any) -> None:
    """django-storages' exists() builds a boto3 resource in each thread that
    calls it; the transfer asks through the client writes share, with the
    same answers."""
    remote.save("there.txt", ContentFile(b"x"))
    remote.bucket  # noqa: B018 (the shared client, built here as a worker's first write would)
    found: dict[str, Any] = {}

    def ask() -> None:
        found["there"] = s3.exists(remote, "there.txt")
        found["missing"] = s3.exists(remote, "missing.txt")
        found["built here"] = getattr(remote._connections, "connection", None) is not None

    thread = threading.Thread(target=ask)
    thread.start()
    thread.join()
    assert found == {"there": True, "missing": False, "built here": False}
    assert (remote.exists("there.txt"), remote.exists("missing.txt")) == (True, False)


def test_writes_of_one_object_in_one_process_take_turns(remote: Any) -> None:
    """The write handlers find a write by its bucket and key: a second write
    of the same object (a file claimed again while its first attempt still
    runs) waits, rather than take the first one's condition or ETag."""
    entered: list[str] = []
    first_in, release = threading.Event(), threading.Event()

    def first() -> None:
        with s3.write(remote, "one.txt", exclusive=True, sha256_hex=None):
            entered.append("first")
            first_in.set()
            release.wait(10)

    def second() -> None:
        with s3.write(remote, "one.txt", exclusive=True, sha256_hex=None):
            entered.append("second")

    def other() -> None:
        with s3.write(remote, "other.txt", exclusive=True, sha256_hex=None):
            entered.append("other")

    threads = [threading.Thread(target=f) for f in (first, second, other)]
    threads[0].start()
    assert first_in.wait(10)
    threads[1].start()
    threads[2].start()
    threads[2].join(10)  # another object does not wait
    threads[1].join(0.2)
    assert entered == ["first", "other"]
    release.set()
    for thread in threads:
        thread.join(10)
    assert entered == ["first", "other", "second"]
    assert not s3._writes  # nothing left behind
    assert not s3._keys


@pytest.mark.django_db(transaction=True)
def test_a_file_waits_for_another_write_of_its_name_before_its_check(
    local_dir: Path, remote: Any, immediate: Setter
) -> None:
    """An attempt checks and flags a name only once no other thread of the
    process writes it (an earlier attempt still running): its check cannot
    be overtaken by that write. If its row moved on meanwhile, it stops."""
    from storage_hooks import transfer

    storage = QueuedStorage(  # delayed: saved, not transferred
        local=FileSystemStorage(location=local_dir),
        remote=remote,
        key=unique_key("hold"),
        delayed=True,
    )
    name = storage.save("a.txt", ContentFile(b"a"))
    assert ledger.requeue(storage.key, name, reset_attempts=False)
    first = ledger.claim(storage.key, name)
    assert first is not None
    s3.probe(remote)
    outcome: list[Any] = []
    with requests_of(remote) as sent:
        with s3.hold(remote, name) as waited:  # another write of the name
            assert waited is False
            attempt = threading.Thread(
                target=lambda: outcome.append(transfer.attempt(storage, first))
            )
            attempt.start()
            attempt.join(0.3)
            assert attempt.is_alive()  # it waits
            assert sent == []
            assert ledger.mark_failed(first, "stuck", final=False)  # re-queued meanwhile
            assert ledger.claim(storage.key, name) is not None  # another attempt has it
        attempt.join(10)
    (result,) = outcome
    assert result.kind == "skipped"
    assert sent == []
    assert not remote.exists(name)


def _write_in_child(remote: Any, pipe: Any) -> None:
    with s3.hold(remote, "held.txt") as waited:
        pipe.send((waited, dict(s3._writes), set(s3._keys)))


def test_a_forked_child_writes_none_of_its_parents_objects(remote: Any) -> None:
    """A child forked while a thread of the parent writes an object (its
    lock held) neither blocks on that lock nor sees the parent's write."""
    with s3.write(remote, "held.txt", exclusive=True, sha256_hex=None):
        assert s3._writes
        child_saw = forked_child_sends(partial(_write_in_child, remote), s3._lock)
    assert child_saw == (False, {}, {(remote.bucket_name, s3.object_key(remote, "held.txt"))})


def test_a_storage_with_an_exists_of_its_own_is_asked_through_it(remote: Any) -> None:
    class Answering(type(remote)):  # type: ignore[misc]
        def exists(self, name: str) -> bool:
            return name == "yes.txt"

    answering = Answering(**services.s3_options(remote.endpoint_url, remote.bucket_name))
    assert s3.exists(answering, "yes.txt") is True
    assert s3.exists(answering, "no.txt") is False


def queued_on_5mib_parts(
    local_dir: Path, endpoint: str, bucket: str, files: dict[str, bytes]
) -> tuple[Any, QueuedStorage, list[str]]:
    """A storage whose remote uploads from 5 MiB in 5 MiB parts, with
    ``files`` saved and QUEUED (no message sent): the remote, the storage
    and the names."""
    remote = make_s3(endpoint, bucket)
    remote.transfer_config = TransferConfig(
        multipart_threshold=5 * MIB, multipart_chunksize=5 * MIB
    )
    storage = QueuedStorage(
        local=FileSystemStorage(location=local_dir), remote=remote, key=unique_key("parts")
    )
    delayed = QueuedStorage(local=storage.local, remote=remote, delayed=True, key=storage.key)
    names = [delayed.save(name, ContentFile(data)) for name, data in files.items()]
    for name in names:
        assert ledger.requeue(storage.key, name, reset_attempts=False)
    return remote, storage, names


@pytest.mark.django_db(transaction=True, databases=["default", "ops_pg"])
@pytest.mark.parametrize(("at_once", "most"), [(1, 1), (2, 2), (0, 3)])
def test_a_worker_sends_multipart_uploads_in_turns(
    local_dir: Path,
    s3_endpoint: str,
    s3_bucket: str,
    immediate: Setter,
    ops_pg: str,
    at_once: int,
    most: int,
) -> None:
    """MULTIPART_UPLOADS: the big files of a batch take turns (each keeps
    its parts in memory while it goes); small files do not wait. 0: all at
    once. (On PostgreSQL: the batch's threads write at once.)"""
    from storage_hooks import batching

    immediate(MULTIPART_UPLOADS=at_once, DATABASE="ops_pg")
    files = {f"big{i}.bin": bytes([i]) * (6 * MIB) for i in range(3)} | {"small.bin": b"s"}
    remote, storage, names = queued_on_5mib_parts(local_dir, s3_endpoint, s3_bucket, files)
    open_uploads: list[int] = [0, 0]
    lock = threading.Lock()
    overlapped = threading.Event()

    def started(**kwargs: Any) -> None:
        with lock:
            open_uploads[0] += 1
            open_uploads[1] = max(open_uploads)
            if open_uploads[0] > 1:
                overlapped.set()
        if at_once != 1:
            overlapped.wait(10)  # where two may go at once, they do

    def parts_sent(**kwargs: Any) -> None:
        with lock:
            open_uploads[0] -= 1

    events = remote.bucket.meta.client.meta.events
    done_event = "before-parameter-build.s3.CompleteMultipartUpload"
    events.register("before-call.s3.CreateMultipartUpload", started, unique_id="t-start")
    # First: before the library gives the turn back as the completion starts.
    events.register_first(done_event, parts_sent, unique_id="t-done")
    try:
        result = batching.run_batch(storage.key, names, threads=4)
    finally:
        events.unregister("before-call.s3.CreateMultipartUpload", unique_id="t-start")
        events.unregister(done_event, unique_id="t-done")
    assert result.error is None
    assert [outcome.kind for _, outcome in result.outcomes] == ["done"] * 4
    assert open_uploads[1] <= most
    assert (open_uploads[1] > 1) is (at_once != 1)
    for i in range(3):
        assert remote_bytes(s3_endpoint, s3_bucket, f"big{i}.bin") == bytes([i]) * (6 * MIB)


@pytest.mark.django_db(transaction=True, databases=["default", "ops_pg"])
def test_the_next_big_file_starts_while_the_server_assembles_the_last(
    local_dir: Path, s3_endpoint: str, s3_bucket: str, immediate: Setter, ops_pg: str
) -> None:
    """MULTIPART_UPLOADS bounds the parts in memory: once an upload's last
    part is sent, its turn goes to the next big file, which starts while
    the server completes the first (a completion can take as long as a
    part)."""
    from storage_hooks import batching

    immediate(MULTIPART_UPLOADS=1, DATABASE="ops_pg")
    files = {f"big{i}.bin": bytes([i]) * (6 * MIB) for i in range(2)}
    remote, storage, names = queued_on_5mib_parts(local_dir, s3_endpoint, s3_bucket, files)
    s3.probe(remote)
    creates: list[bool] = []
    second_created = threading.Event()
    seen_during_completion: list[bool] = []

    def created(**kwargs: Any) -> None:
        creates.append(True)
        if len(creates) == 2:
            second_created.set()

    def completing(**kwargs: Any) -> None:
        if not seen_during_completion:  # the first completion waits for the second upload
            seen_during_completion.append(second_created.wait(10))

    events = remote.bucket.meta.client.meta.events
    events.register("before-call.s3.CreateMultipartUpload", created, unique_id="t-create")
    events.register("before-call.s3.CompleteMultipartUpload", completing, unique_id="t-done")
    try:
        result = batching.run_batch(storage.key, names, threads=2)
    finally:
        events.unregister("before-call.s3.CreateMultipartUpload", unique_id="t-create")
        events.unregister("before-call.s3.CompleteMultipartUpload", unique_id="t-done")
    assert seen_during_completion == [True]
    assert result.error is None
    assert [outcome.kind for _, outcome in result.outcomes] == ["done"] * 2
    for i in range(2):
        assert storage.status(f"big{i}.bin") == Status.REMOTE
        assert remote_bytes(s3_endpoint, s3_bucket, f"big{i}.bin") == bytes([i]) * (6 * MIB)


def test_a_free_turn_is_not_a_wait(immediate: Setter) -> None:
    """Only a big file that really waited for its turn reads its row again
    (the row cannot have moved on while nothing was waited for)."""
    from storage_hooks import transfer

    immediate(MULTIPART_UPLOADS=1)
    with transfer._multipart_turn(True) as turn:
        assert turn.waited is False
        seen: list[bool] = []

        def second() -> None:
            with transfer._multipart_turn(True) as second_turn:
                seen.append(second_turn.waited)

        thread = threading.Thread(target=second)
        thread.start()
        thread.join(0.2)
        assert thread.is_alive()  # it waits while the turn is taken
    thread.join(10)
    assert seen == [True]
    with transfer._multipart_turn(True) as turn:
        turn.release()  # as the upload completes: the next one may go
        with transfer._multipart_turn(True) as next_turn:
            assert next_turn.waited is False
        turn.release()  # given back once only (a retried completion)
    assert transfer._turns[0][1]._value == 1  # type: ignore[attr-defined]
    with transfer._multipart_turn(False) as turn:
        assert turn.waited is False  # a single upload takes no turn


def test_a_big_file_whose_row_moved_on_while_it_waited_sends_nothing(
    local_dir: Path, s3_endpoint: str, s3_bucket: str, immediate: Setter
) -> None:
    """A big file waits for its turn (MULTIPART_UPLOADS) before it checks,
    flags or writes anything; if its row went to another attempt meanwhile
    (re-queued after STUCK_AFTER and claimed again), it stops there."""
    from storage_hooks import transfer

    immediate(MULTIPART_UPLOADS=1)
    files = {"waits.bin": b"w" * (6 * MIB)}
    remote, storage, (name,) = queued_on_5mib_parts(local_dir, s3_endpoint, s3_bucket, files)
    first = ledger.claim(storage.key, name)
    assert first is not None
    s3.probe(remote)  # (what the server honours: learnt once, before)
    outcome: list[Any] = []
    with requests_of(remote) as sent:
        with transfer._multipart_turn(True):  # another upload has the turn
            waiting = threading.Thread(
                target=lambda: outcome.append(transfer.attempt(storage, first))
            )
            waiting.start()
            turn = transfer._turns[0][1]
            for _ in range(500):  # until it waits for the turn
                if turn._cond._waiters:  # type: ignore[attr-defined]
                    break
                threading.Event().wait(0.01)
            assert ledger.mark_failed(first, "stuck", final=False)  # retry re-queued it
            assert ledger.claim(storage.key, name) is not None  # another attempt has it
        waiting.join(10)
    (result,) = outcome
    assert result.kind == "skipped"
    assert sent == []
    assert row(storage, name).remote_write_started is False
    assert not remote.exists(name)


def test_only_mode_sends_one_request_per_file(
    storage: QueuedStorage, remote: Any, immediate: Setter
) -> None:
    immediate(CONDITIONAL_WRITES="only")
    with requests_of(remote) as sent:
        name = storage.save("one.txt", ContentFile(b"one"))
    assert storage.status(name) == Status.REMOTE
    # The write is its own existence check (If-None-Match) and its own proof
    # (the ETag it answers is the MD5 of what the server received).
    assert sent == ["PutObject"]
    assert row(storage, name).remote_etag.strip('"') == hashlib.md5(b"one").hexdigest()


def test_by_default_a_server_that_honours_the_condition_gets_one_request_per_file(
    storage: QueuedStorage, remote: Any, immediate: Setter
) -> None:
    s3.forget_capabilities()
    found = s3.probe(remote)  # once per process and bucket
    assert found == s3.Capabilities(validates_checksums=False, honours_if_none_match=True)
    with requests_of(remote) as sent:
        for i in range(3):
            storage.save(f"{i}.txt", ContentFile(b"one"))
    assert sent == ["PutObject"] * 3
    assert (
        not services.s3_client(remote.endpoint_url)
        .list_objects_v2(Bucket=remote.bucket_name, Prefix=".storage_hooks-probe")
        .get("KeyCount")
    )


@contextmanager
def ignoring_if_none_match(remote: Any) -> Iterator[None]:
    """The client drops If-None-Match before sending, as if the server
    ignored it (npm's s3rver does): only the probe can tell."""

    def drop(request: Any, **kwargs: Any) -> None:
        request.headers.pop("If-None-Match", None)

    events = remote.bucket.meta.client.meta.events
    events.register("before-send.s3.PutObject", drop, unique_id="test-drop")
    try:
        yield
    finally:
        events.unregister("before-send.s3.PutObject", unique_id="test-drop")


def test_a_server_that_ignores_the_condition_keeps_the_existence_check(
    storage: QueuedStorage, remote: Any, immediate: Setter
) -> None:
    s3.forget_capabilities()
    try:
        with ignoring_if_none_match(remote):
            assert not s3.probe(remote).honours_if_none_match
            remote.save("taken.txt", ContentFile(b"theirs"))
            with requests_of(remote) as sent:
                name = storage.save("one.txt", ContentFile(b"one"))
                taken = storage.save("taken.txt", ContentFile(b"ours!!"))
    finally:
        s3.forget_capabilities()
    assert sent[:2] == ["HeadObject", "PutObject"]
    assert storage.status(name) == Status.REMOTE
    assert storage.status(taken) == Status.FAILED  # the HEAD saw the foreign file
    assert remote_bytes(remote.endpoint_url, remote.bucket_name, "taken.txt") == b"theirs"


def test_only_mode_still_never_overwrites_a_foreign_file(
    storage: QueuedStorage, remote: Any, immediate: Setter
) -> None:
    immediate(CONDITIONAL_WRITES="only")
    remote.save("taken.txt", ContentFile(b"theirs!"))
    with recording(storage, signals.transfer_failed) as events:
        name = storage.save("taken.txt", ContentFile(b"ours!!!"))
    assert [(kw["attempt"], kw["will_retry"]) for _, kw in events] == [(1, False)]
    assert isinstance(events[0][1]["exception"], NameConflict)
    assert remote_bytes(remote.endpoint_url, remote.bucket_name, name) == b"theirs!"

    # The operator's retry meets the same refusal: the object is not ours.
    storage.transfer(name)
    assert storage.status(name) == Status.FAILED
    assert remote_bytes(remote.endpoint_url, remote.bucket_name, name) == b"theirs!"


def test_only_mode_adopts_an_identical_remote_copy(
    storage: QueuedStorage, remote: Any, immediate: Setter
) -> None:
    immediate(CONDITIONAL_WRITES="only")
    remote.save("same.txt", ContentFile(b"same bytes"))
    with recording(storage, signals.transferred) as done:
        name = storage.save("same.txt", ContentFile(b"same bytes"))
    assert storage.status(name) == Status.REMOTE
    assert row(storage, name).attempts == 1
    # Adopted: proven by reading the remote copy back, not by a write.
    assert [kw["proof"] for _, kw in done] == ["readback"]


def test_a_retry_replaces_its_own_copy_under_the_condition(
    local_dir: Path, remote: Any, settings: Any
) -> None:
    """Attempt 1 writes, then fails verification (the local file changed);
    attempt 2 deletes its own copy and writes again, conditionally."""
    settings.STORAGE_HOOKS = {"RUNNER": "immediate", "RETRIES": 0, "CONDITIONAL_WRITES": "only"}
    storage = QueuedStorage(
        local=FileSystemStorage(location=local_dir), remote=remote, delayed=True, key=unique_key()
    )
    name = storage.save("edit.txt", ContentFile(b"original"))
    (local_dir / name).write_bytes(b"tampered")
    storage.transfer(name)
    assert storage.status(name) == Status.FAILED
    assert row(storage, name).remote_write_started is True

    (local_dir / name).write_bytes(b"original")
    with requests_of(remote) as sent:
        storage.transfer(name)
    assert storage.status(name) == Status.REMOTE
    assert remote_bytes(remote.endpoint_url, remote.bucket_name, name) == b"original"
    # Same size, so it compares the bytes before deleting its own copy.
    assert "GetObject" in sent
    assert sent.index("GetObject") < sent.index("DeleteObject") < sent.index("PutObject")


def test_a_server_without_conditional_writes_gets_a_clear_final_error(
    storage: QueuedStorage, remote: Any, immediate: Setter
) -> None:
    """Such a server answers 501 NotImplemented; moto implements the
    feature, so the answer is made up at the transport."""

    def not_implemented(request: Any, **kwargs: Any) -> AWSResponse | None:
        if "If-None-Match" not in request.headers:
            return None
        body = (
            b"<Error><Code>NotImplemented</Code><Message>A header you provided implies "
            b"functionality that is not implemented</Message></Error>"
        )

        class Raw:
            def stream(self, **kwargs: Any) -> Iterator[bytes]:
                yield body

        return AWSResponse(request.url, 501, {}, Raw())

    events = remote.bucket.meta.client.meta.events
    events.register("before-send.s3.PutObject", not_implemented, unique_id="test-501")
    try:
        with recording(storage, signals.transfer_failed) as failed:
            name = storage.save("old-server.txt", ContentFile(b"data"))
    finally:
        events.unregister("before-send.s3.PutObject", unique_id="test-501")

    (event,) = failed
    assert isinstance(event[1]["exception"], FinalTransferError)
    assert "CONDITIONAL_WRITES" in str(event[1]["exception"])
    assert row(storage, name).remote_write_started is False
    assert storage.status(name) == Status.FAILED

    immediate(CONDITIONAL_WRITES=False)
    storage.transfer(name)
    assert storage.status(name) == Status.REMOTE


@pytest.mark.parametrize("value", ["yes", 1, None])
def test_a_bad_setting_value_is_a_check_error(settings: Any, value: Any) -> None:
    settings.STORAGE_HOOKS = {"CONDITIONAL_WRITES": value}
    errors = [e for e in run_checks() if "CONDITIONAL_WRITES" in e.msg]
    assert [e.id for e in errors] == ["storage_hooks.E010"]


def test_the_condition_follows_the_storages_location(
    local_dir: Path, s3_endpoint: str, s3_bucket: str, immediate: Setter
) -> None:
    remote = make_s3(s3_endpoint, s3_bucket)
    remote.location = "media"
    storage = QueuedStorage(
        local=FileSystemStorage(location=local_dir), remote=remote, key=unique_key("cw")
    )
    with another_writer_first(remote, "PutObject", "media/race.txt", b"theirs"):
        name = storage.save("race.txt", ContentFile(b"ours"))
    assert storage.status(name) == Status.FAILED
    assert remote_bytes(s3_endpoint, s3_bucket, "media/race.txt") == b"theirs"


def test_a_missing_bucket_is_named_with_its_fix(
    local_dir: Path, s3_endpoint: str, immediate: Setter
) -> None:
    storage = QueuedStorage(
        local=FileSystemStorage(location=local_dir),
        remote=make_s3(s3_endpoint, "no-such-bucket-here"),
        key=unique_key("nb"),
    )
    immediate(RETRIES=0)
    name = storage.save("a.txt", ContentFile(b"x"))
    error = row(storage, name).last_error
    assert "The bucket 'no-such-bucket-here' does not exist at http://127.0.0.1:" in error
    assert "create it" in error
