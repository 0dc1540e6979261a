"""QueuedStorage behaviours that mutation testing found unpinned by the
selected tests (storage_hooks.storage): naming with an overwriting local
storage, content given as a plain file object, ``open(name, "w")``,
``replace_local``, reads that route by state (also with a cache left stale
by another process), queueing, and preprocessing."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import FileSystemStorage, InMemoryStorage
from django.test import override_settings

from storage_hooks import Status, ledger, statecache
from storage_hooks.conf import hostname
from storage_hooks.hooks import DeleteLocal, Preprocess
from storage_hooks.localfiles import TEMP_PREFIX
from storage_hooks.models import StoredFile
from storage_hooks.storage import AlreadyTransferred, DelayedStorage, QueuedStorage

from ..conftest import unique_key
from ..test_runners import RecordingRunner
from ..test_statecache import unreachable_cache
from ..testapp.storages import CountingFileSystemStorage, fs_pair, recording

pytestmark = pytest.mark.django_db(transaction=True)


def row_of(storage: QueuedStorage, name: str) -> StoredFile:
    return StoredFile.objects.get(storage_key=storage.key, name=name)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def overwriting(local_dir: Path, remote: Any, **kwargs: Any) -> QueuedStorage:
    """A QueuedStorage whose local FileSystemStorage has ``allow_overwrite``."""
    return QueuedStorage(
        local=FileSystemStorage(location=local_dir, allow_overwrite=True),
        remote=remote,
        key=unique_key("ow"),
        **kwargs,
    )


# -- names -------------------------------------------------------------------


def test_names_are_cleaned_and_varied_by_the_local_storage(fs_storage: QueuedStorage) -> None:
    assert fs_storage.get_valid_name("my photo!.jpg") == "my_photo.jpg"
    alternative = fs_storage.get_alternative_name("docs/report", ".pdf")
    assert alternative.startswith("docs/report_")
    assert alternative.endswith(".pdf")


def test_repr_shows_the_class_and_the_key(local_dir: Path, remote_dir: Path) -> None:
    storage = DelayedStorage(
        FileSystemStorage(location=local_dir), FileSystemStorage(location=remote_dir), key="docs"
    )
    assert repr(storage) == "<DelayedStorage key='docs'>"


def test_an_overwriting_local_storage_keeps_the_name_and_transfers_the_new_content(
    local_dir: Path, remote_dir: Path
) -> None:
    storage = overwriting(local_dir, FileSystemStorage(location=remote_dir))
    assert storage.save("a.txt", ContentFile(b"one")) == "a.txt"
    assert (remote_dir / "a.txt").read_bytes() == b"one"
    assert storage.save("a.txt", ContentFile(b"two")) == "a.txt"
    assert (local_dir / "a.txt").read_bytes() == b"two"
    assert (remote_dir / "a.txt").read_bytes() == b"two"
    row = row_of(storage, "a.txt")
    assert (row.status, row.checksum) == (Status.REMOTE, sha256(b"two"))
    assert StoredFile.objects.filter(storage_key=storage.key).count() == 1


def test_an_overwriting_storage_never_takes_the_name_of_a_foreign_remote_file(
    local_dir: Path, remote_dir: Path
) -> None:
    (remote_dir / "x.txt").write_bytes(b"someone else's")
    storage = overwriting(local_dir, FileSystemStorage(location=remote_dir), check_remote=True)
    name = storage.save("x.txt", ContentFile(b"ours"))
    assert name != "x.txt"
    assert name.endswith(".txt")
    assert (remote_dir / "x.txt").read_bytes() == b"someone else's"
    assert (remote_dir / name).read_bytes() == b"ours"


def test_an_overwriting_storage_asks_the_remote_nothing_by_default(
    local_dir: Path, remote_dir: Path
) -> None:
    (remote_dir / "x.txt").write_bytes(b"someone else's")
    remote = CountingFileSystemStorage(location=remote_dir)
    storage = overwriting(local_dir, remote, delayed=True)
    assert storage.save("x.txt", ContentFile(b"one")) == "x.txt"
    assert storage.save("x.txt", ContentFile(b"two")) == "x.txt"
    assert remote.calls == {}


# -- content ---------------------------------------------------------------


def test_save_takes_a_plain_file_object(fs_storage: QueuedStorage) -> None:
    name = fs_storage.save("raw.bin", io.BytesIO(b"raw bytes"))
    small = fs_storage.save_derivative(name, "raw-small.bin", io.BytesIO(b"small"), variant="s")
    assert fs_storage.derivatives(name) == {"s": small}
    for saved, data in ((name, b"raw bytes"), (small, b"small")):
        with fs_storage.open(saved, "rb") as fh:
            assert fh.read() == data
        assert row_of(fs_storage, saved).checksum == sha256(data)


# -- open(name, "w") -----------------------------------------------------------


@pytest.mark.parametrize(("mode", "text"), [("wb", b"written"), ("xb", b"written"), ("w", "text")])
def test_open_for_writing_a_new_name_records_and_transfers_it_on_close(
    fs_storage: QueuedStorage, local_dir: Path, remote_dir: Path, mode: str, text: Any
) -> None:
    data = text if isinstance(text, bytes) else text.encode()
    with recording(fs_storage) as events, fs_storage.open("new.txt", mode) as fh:
        fh.write(text)
        assert fs_storage.status("new.txt") is None  # nothing recorded before close()
    assert [(n, kw["name"]) for n, kw in events][:2] == [
        ("saved_locally", "new.txt"),
        ("transfer_queued", "new.txt"),
    ]
    row = row_of(fs_storage, "new.txt")
    assert (row.status, row.size, row.checksum) == (Status.REMOTE, len(data), sha256(data))
    assert (local_dir / "new.txt").read_bytes() == data
    assert (remote_dir / "new.txt").read_bytes() == data


def test_open_for_writing_on_a_local_storage_that_is_not_a_file_system(
    remote_dir: Path,
) -> None:
    storage = QueuedStorage(
        local=InMemoryStorage(),
        remote=FileSystemStorage(location=remote_dir),
        delayed=True,
        key=unique_key(),
    )
    with storage.open("memo.bin", "wb") as fh:
        fh.write(b"in memory")
    assert storage.status("memo.bin") == Status.LOCAL
    with storage.open("memo.bin", "rb") as fh:
        assert fh.read() == b"in memory"
    storage.transfer("memo.bin")
    assert (remote_dir / "memo.bin").read_bytes() == b"in memory"


def test_open_for_writing_refuses_a_recorded_name(
    fs_storage: QueuedStorage, local_dir: Path
) -> None:
    name = fs_storage.save("kept.txt", ContentFile(b"recorded"))
    # The message names the ways to change a recorded file.
    with pytest.raises(PermissionError, match=r"save\(\).*allow_overwrite.*replace_local\(\)"):
        fs_storage.open(name, "wb")
    assert (local_dir / name).read_bytes() == b"recorded"
    assert row_of(fs_storage, name).checksum == sha256(b"recorded")


def test_appending_to_an_unrecorded_local_file_writes_it_as_the_local_storage_would(
    fs_storage: QueuedStorage, local_dir: Path
) -> None:
    (local_dir / "log.txt").write_bytes(b"one\n")
    with fs_storage.open("log.txt", "ab") as fh:
        fh.write(b"two\n")
    assert (local_dir / "log.txt").read_bytes() == b"one\ntwo\n"
    assert fs_storage.status("log.txt") is None


# -- replace_local ---------------------------------------------------------------


class Chunked:
    """Content offered only as ``chunks()``, as a streamed upload may be."""

    def __init__(self, *parts: bytes) -> None:
        self.parts = parts

    def chunks(self) -> Iterator[bytes]:
        yield from self.parts


#: Each kind of content ``save`` takes, made afresh for each test.
CONTENT_KINDS = {
    "bytes": lambda: b"new bytes",
    "file-object": lambda: io.BytesIO(b"new bytes"),
    "File": lambda: ContentFile(b"new bytes"),
    "chunks": lambda: Chunked(b"new ", b"bytes"),
}


@pytest.mark.parametrize("kind", CONTENT_KINDS)
def test_replace_local_takes_content_as_save_does(
    local_dir: Path, remote_dir: Path, kind: str
) -> None:
    storage = fs_pair(local_dir, remote_dir, unique_key(), delayed=True)
    name = storage.save("r.txt", ContentFile(b"old"))
    storage.replace_local(name, CONTENT_KINDS[kind]())
    assert (local_dir / name).read_bytes() == b"new bytes"
    row = row_of(storage, name)
    assert (row.size, row.checksum) == (len(b"new bytes"), sha256(b"new bytes"))
    storage.transfer(name)
    assert (remote_dir / name).read_bytes() == b"new bytes"


def test_replace_local_refuses_a_file_on_the_remote_or_unknown(
    fs_storage: QueuedStorage, local_dir: Path
) -> None:
    name = fs_storage.save("sent.txt", ContentFile(b"sent"))
    with pytest.raises(AlreadyTransferred):
        fs_storage.replace_local(name, b"too late")
    with pytest.raises(FileNotFoundError, match=r"nope\.txt"):
        fs_storage.replace_local("nope.txt", b"unknown")
    assert (local_dir / name).read_bytes() == b"sent"
    assert not (local_dir / "nope.txt").exists()
    assert sorted(p.name for p in local_dir.iterdir()) == [name]  # no private file left


# -- reads -------------------------------------------------------------------------


def test_using_local_until_the_transfer_then_remote(local_dir: Path, remote_dir: Path) -> None:
    storage = fs_pair(local_dir, remote_dir, unique_key(), delayed=True)
    name = storage.save("u.txt", ContentFile(b"u"))
    assert (storage.using_local(name), storage.using_remote(name)) == (True, False)
    storage.transfer(name)
    assert (storage.using_local(name), storage.using_remote(name)) == (False, True)


def test_file_times_are_those_of_the_copy_that_serves_reads(
    local_dir: Path, remote_dir: Path
) -> None:
    storage = fs_pair(local_dir, remote_dir, unique_key(), delayed=True)
    name = storage.save("t.txt", ContentFile(b"t"))
    for method in ("get_accessed_time", "get_created_time", "get_modified_time"):
        assert getattr(storage, method)(name) == getattr(storage.local, method)(name)
    storage.transfer(name)
    for method in ("get_accessed_time", "get_created_time", "get_modified_time"):
        assert getattr(storage, method)(name) == getattr(storage.remote, method)(name)


@pytest.mark.parametrize("top", ["", None])
def test_listdir_lists_both_storages_without_private_files(
    fs_storage: QueuedStorage, local_dir: Path, remote_dir: Path, top: Any
) -> None:
    (local_dir / "a.txt").write_bytes(b"a")
    (local_dir / f"{TEMP_PREFIX}0123abcd").write_bytes(b"being written")
    (local_dir / "sub").mkdir()
    (remote_dir / "b.txt").write_bytes(b"b")
    assert fs_storage.listdir(top) == (["sub"], ["a.txt", "b.txt"])


def test_a_transferred_file_is_read_from_the_remote(local_dir: Path, remote_dir: Path) -> None:
    remote = CountingFileSystemStorage(location=remote_dir)
    storage = QueuedStorage(
        local=FileSystemStorage(location=local_dir), remote=remote, key=unique_key()
    )
    name = storage.save("r.txt", ContentFile(b"sent"))
    assert (local_dir / name).exists()  # a local copy is kept, but not read
    opened = remote.calls["_open"]
    with storage.open(name, "rb") as fh:
        assert fh.read() == b"sent"
    assert remote.calls["_open"] == opened + 1


def test_a_local_storage_that_is_not_a_file_system_serves_reads_until_the_transfer(
    remote_dir: Path,
) -> None:
    storage = QueuedStorage(
        local=InMemoryStorage(),
        remote=FileSystemStorage(location=remote_dir),
        delayed=True,
        key=unique_key(),
    )
    name = storage.save("m.txt", ContentFile(b"memory"))
    with storage.open(name, "rb") as fh:
        assert fh.read() == b"memory"
    assert storage.size(name) == len(b"memory")


@pytest.fixture
def transferred_elsewhere(remote_dir: Path, settings: Any) -> Any:
    """A file whose transfer (and deletion of the local copy) another process
    finished while the cache could not be told: the cache here still says
    LOCAL. The local storage is not a file system."""
    storage = QueuedStorage(
        local=InMemoryStorage(),
        remote=FileSystemStorage(location=remote_dir),
        delayed=True,
        hooks=[DeleteLocal()],
        key=unique_key(),
    )
    name = storage.save("later.txt", ContentFile(b"moved on"))
    assert storage.status(name) == Status.LOCAL
    with override_settings(
        CACHES={**settings.CACHES, "down": unreachable_cache()},
        STORAGE_HOOKS={"RUNNER": "immediate", "CACHE": "down"},
    ):
        storage.transfer(name)
    ledger.clear_memory()  # the other process's memory, not ours
    assert statecache.get(storage.key, name) == Status.LOCAL
    assert not storage.local.exists(name)
    return storage, name


def test_exists_finds_a_file_transferred_elsewhere_despite_a_stale_cache(
    transferred_elsewhere: Any,
) -> None:
    storage, name = transferred_elsewhere
    assert storage.exists(name)


def test_open_in_text_mode_reads_a_file_transferred_elsewhere_despite_a_stale_cache(
    transferred_elsewhere: Any,
) -> None:
    storage, name = transferred_elsewhere
    with storage.open(name, "r") as fh:
        assert fh.read() == "moved on"


# -- errors --------------------------------------------------------------------------


def test_transfer_of_an_unknown_name_says_which(fs_storage: QueuedStorage) -> None:
    with pytest.raises(FileNotFoundError, match=r"'nope\.txt' was not saved through"):
        fs_storage.transfer("nope.txt")


# -- queueing ------------------------------------------------------------------------


def test_a_saved_file_is_handed_to_the_runner_at_once_for_its_host(
    fs_storage: QueuedStorage, settings: Any
) -> None:
    settings.STORAGE_HOOKS = {"RUNNER": "tests.test_runners.RecordingRunner"}
    RecordingRunner.calls.clear()
    name = fs_storage.save("q.txt", ContentFile(b"q"))
    assert RecordingRunner.calls == [(fs_storage.key, name, hostname(), 0)]
    assert fs_storage.status(name) == Status.QUEUED


def test_a_runner_that_cannot_take_a_transfer_is_logged_with_the_way_to_recover(
    fs_storage: QueuedStorage, settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
    settings.STORAGE_HOOKS = {"RUNNER": "tests.test_runners.BrokenRunner", "STUCK_AFTER": 600}
    name = fs_storage.save("stuck.txt", ContentFile(b"s"))  # saved all the same
    assert fs_storage.status(name) == Status.QUEUED
    [record] = [r for r in caplog.records if "Could not queue" in r.getMessage()]
    message = record.getMessage()
    assert "'stuck.txt'" in message
    assert "retry --stuck-after 0" in message
    assert "STUCK_AFTER (600s)" in message


# -- preprocessing ---------------------------------------------------------------------


class ReplacedMeanwhile(Preprocess):
    """While its result is computed, the file is deleted and a new one is
    saved under the same name (by a user, in another request)."""

    def process(self, storage: QueuedStorage, name: str, file: Any) -> bytes:
        storage.delete(name)
        assert storage.save(name, ContentFile(b"the newer file")) == name
        return b"processed older file"


def test_a_preprocessed_result_never_replaces_a_newer_file_of_the_same_name(
    local_dir: Path, remote_dir: Path
) -> None:
    storage = fs_pair(
        local_dir, remote_dir, unique_key(), delayed=True, hooks=[ReplacedMeanwhile()]
    )
    name = storage.save("p.txt", ContentFile(b"the older file"))
    storage.transfer(name)
    assert (local_dir / name).read_bytes() == b"the newer file"
    row = row_of(storage, name)
    assert (row.status, row.checksum) == (Status.LOCAL, sha256(b"the newer file"))
