"""QueuedStorage itself: names, bad input, transactions, the shortcuts kept
from django-queued-storage, deconstruction, pickling and derived keys.

The routing of reads and writes by state is in test_contract.py.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured, SuspiciousFileOperation
from django.core.files.base import ContentFile
from django.core.files.storage import FileSystemStorage, storages
from django.db import models, transaction
from django.db.migrations.autodetector import MigrationAutodetector
from django.db.migrations.state import ProjectState
from django.db.migrations.writer import MigrationWriter
from django.test import override_settings

from storage_hooks import QueuedStorage as TopLevelQueuedStorage
from storage_hooks import Status
from storage_hooks.hooks import DeleteLocal, Hook, Thumbnails
from storage_hooks.models import StoredFile
from storage_hooks.resolve import without_secrets
from storage_hooks.storage import (
    DelayedStorage,
    DoubleFilesystemStorage,
    QueuedFileSystemStorage,
    QueuedRemoteStorage,
    QueuedStorage,
    S3Storage,
)

from . import services
from .conftest import unique_key
from .testapp.storages import CountingFileSystemStorage, fs_pair, names_of, recording

pytestmark = pytest.mark.django_db(transaction=True)


def files_under(root: Path) -> list[str]:
    return sorted(
        os.path.relpath(os.path.join(top, f), root) for top, _, fs in os.walk(root) for f in fs
    )


def ledger_names(storage: QueuedStorage) -> list[str]:
    return sorted(StoredFile.objects.filter(storage_key=storage.key).values_list("name", flat=True))


# -- names -------------------------------------------------------------------


def test_save_picks_a_name_free_locally(fs_storage: QueuedStorage) -> None:
    first = fs_storage.save("a.txt", ContentFile(b"1"))
    second = fs_storage.save("a.txt", ContentFile(b"2"))
    assert first == "a.txt"
    assert second != first
    assert second.startswith("a_")
    assert second.endswith(".txt")
    assert ledger_names(fs_storage) == sorted([first, second])


def test_save_avoids_names_the_ledger_knows(local_dir: Path, remote_dir: Path) -> None:
    storage = fs_pair(local_dir, remote_dir, unique_key(), hooks=[DeleteLocal()])
    first = storage.save("photo.jpg", ContentFile(b"first"))
    assert files_under(local_dir) == []  # DeleteLocal removed the local copy
    second = storage.save("photo.jpg", ContentFile(b"second"))
    assert second != first
    assert (remote_dir / first).read_bytes() == b"first"
    assert (remote_dir / second).read_bytes() == b"second"


def test_a_refused_name_is_replaced_within_max_length(local_dir: Path, remote_dir: Path) -> None:
    storage = fs_pair(local_dir, remote_dir, unique_key(), hooks=[DeleteLocal()])
    first = storage.save("photo.jpg", ContentFile(b"first"))
    delayed = fs_pair(local_dir, remote_dir, storage.key, delayed=True)
    # Free locally, so only the ledger's insert refuses it; the copy moves
    # to a name that still fits the field.
    second = delayed.save("photo.jpg", ContentFile(b"second"), max_length=14)
    assert second != first
    assert len(second) <= 14
    assert files_under(local_dir) == [second]
    assert ledger_names(storage) == sorted([first, second])
    with delayed.open(second) as fh:
        assert fh.read() == b"second"


def test_a_save_costs_one_ledger_query(
    fs_storage: QueuedStorage, django_assert_num_queries: Any
) -> None:
    delayed = QueuedStorage(
        local=fs_storage.local, remote=fs_storage.remote, delayed=True, key=unique_key()
    )
    with django_assert_num_queries(1):  # the insert, which refuses a known name itself
        delayed.save("a.txt", ContentFile(b"x"))


def test_by_default_save_asks_the_remote_nothing(local_dir: Path, remote_dir: Path) -> None:
    remote = CountingFileSystemStorage(location=remote_dir)
    (remote_dir / "x.txt").write_bytes(b"someone else's")
    storage = QueuedStorage(
        local=FileSystemStorage(location=local_dir), remote=remote, delayed=True, key=unique_key()
    )
    assert storage.save("x.txt", ContentFile(b"ours")) == "x.txt"
    assert remote.calls == {}


def test_check_remote_costs_one_remote_call_per_save(local_dir: Path, remote_dir: Path) -> None:
    remote = CountingFileSystemStorage(location=remote_dir)
    storage = QueuedStorage(
        local=FileSystemStorage(location=local_dir),
        remote=remote,
        delayed=True,
        check_remote=True,
        key=unique_key(),
    )
    storage.save("free.txt", ContentFile(b"x"))
    assert remote.calls == {"exists": 1}


def test_check_remote_avoids_a_name_taken_on_the_remote(local_dir: Path, remote_dir: Path) -> None:
    (remote_dir / "x.txt").write_bytes(b"someone else's")
    storage = fs_pair(local_dir, remote_dir, unique_key(), check_remote=True)
    name = storage.save("x.txt", ContentFile(b"ours"))
    assert name != "x.txt"
    assert storage.status(name) == Status.REMOTE
    assert (remote_dir / "x.txt").read_bytes() == b"someone else's"
    assert (remote_dir / name).read_bytes() == b"ours"


def test_a_long_name_is_shortened_to_max_length(fs_storage: QueuedStorage) -> None:
    name = fs_storage.save("docs/" + "x" * 60 + ".txt", ContentFile(b"x"), max_length=30)
    assert len(name) <= 30
    assert name.startswith("docs/")
    assert name.endswith(".txt")
    assert fs_storage.status(name) == Status.REMOTE


def test_a_name_that_cannot_fit_max_length_is_refused(
    fs_storage: QueuedStorage, local_dir: Path
) -> None:
    with pytest.raises(SuspiciousFileOperation, match="can not find an available filename"):
        fs_storage.save("d" * 40 + "/b.txt", ContentFile(b"x"), max_length=30)
    assert files_under(local_dir) == []
    assert ledger_names(fs_storage) == []


# -- bad input ---------------------------------------------------------------

BAD_NAMES = ["../x.txt", "a/../../x.txt", "/etc/passwd", "a\x00b.txt", "a/.."]


@pytest.mark.parametrize("bad", BAD_NAMES)
def test_a_bad_name_is_refused_everywhere(
    fs_storage: QueuedStorage, tmp_path: Path, bad: str
) -> None:
    before = files_under(tmp_path)
    with pytest.raises(SuspiciousFileOperation):
        fs_storage.save(bad, ContentFile(b"x"))
    for method in ("open", "exists", "size", "url", "delete", "status", "transfer", "path"):
        with pytest.raises(SuspiciousFileOperation):
            getattr(fs_storage, method)(bad)
    with pytest.raises(SuspiciousFileOperation):
        fs_storage.urls(["fine.txt", bad])
    assert files_under(tmp_path) == before
    assert ledger_names(fs_storage) == []


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    secret = tmp_path / "outside" / "secret.txt"
    secret.parent.mkdir()
    secret.write_bytes(b"not yours")
    return secret


def test_a_symlink_out_of_the_local_root_is_never_read_nor_deleted(
    fs_storage: QueuedStorage, local_dir: Path, outside: Path
) -> None:
    (local_dir / "link.txt").symlink_to(outside)
    for method in ("open", "exists", "size", "path", "delete"):
        with pytest.raises(SuspiciousFileOperation, match="outside the storage's root"):
            getattr(fs_storage, method)("link.txt")
    assert outside.read_bytes() == b"not yours"
    assert (local_dir / "link.txt").is_symlink()


def test_save_never_writes_through_a_symlinked_directory(
    fs_storage: QueuedStorage, local_dir: Path, outside: Path
) -> None:
    (local_dir / "linkdir").symlink_to(outside.parent)
    with pytest.raises(SuspiciousFileOperation, match="outside the storage's root"):
        fs_storage.save("linkdir/new.txt", ContentFile(b"x"))
    assert os.listdir(outside.parent) == ["secret.txt"]
    assert ledger_names(fs_storage) == []


def test_a_saved_file_swapped_for_a_symlink_fails_for_good(
    local_dir: Path, remote_dir: Path, outside: Path
) -> None:
    storage = fs_pair(local_dir, remote_dir, unique_key(), delayed=True)
    name = storage.save("doc.txt", ContentFile(b"mine"))
    (local_dir / name).unlink()
    (local_dir / name).symlink_to(outside)
    storage.transfer(name)
    row = StoredFile.objects.get(storage_key=storage.key, name=name)
    assert (row.status, row.attempts) == (Status.FAILED, 1)
    assert "outside the storage's root" in row.last_error
    assert os.listdir(remote_dir) == []
    assert outside.read_bytes() == b"not yours"


def test_a_hook_that_raises_when_connected_stops_the_storage_being_built(
    local_dir: Path, remote_dir: Path
) -> None:
    class Broken(Hook):
        def connect(self, storage: Any) -> None:
            raise RuntimeError("cannot connect")

    # Hooks are connected when the storage is built: nothing can be saved.
    with pytest.raises(RuntimeError, match="cannot connect"):
        fs_pair(local_dir, remote_dir, unique_key(), hooks=[Broken()])
    assert files_under(local_dir) == []


def test_hooks_given_as_a_string_are_refused() -> None:
    with pytest.raises(ImproperlyConfigured, match=r"write hooks=\['storage_hooks"):
        QueuedStorage("default", "default", hooks="storage_hooks.hooks.DeleteLocal")


# -- transactions ------------------------------------------------------------


class Rollback(Exception):
    pass


def test_a_rolled_back_save_queues_nothing(fs_storage: QueuedStorage, remote_dir: Path) -> None:
    with recording(fs_storage) as events, pytest.raises(Rollback), transaction.atomic():  # noqa: PT012
        name = fs_storage.save("a.txt", ContentFile(b"x"))
        raise Rollback
    assert names_of(events) == ["saved_locally"]
    assert fs_storage.status(name) is None
    assert os.listdir(remote_dir) == []


def test_a_committed_save_is_queued_at_commit(fs_storage: QueuedStorage, remote_dir: Path) -> None:
    with recording(fs_storage) as events:
        with transaction.atomic():
            name = fs_storage.save("a.txt", ContentFile(b"x"))
            assert names_of(events) == ["saved_locally"]
            assert fs_storage.status(name) == Status.QUEUED
            assert os.listdir(remote_dir) == []
        assert names_of(events) == [
            "saved_locally",
            "transfer_queued",
            "transfer_started",
            "transferred",
        ]
    assert fs_storage.status(name) == Status.REMOTE


# -- shortcuts kept from django-queued-storage -------------------------------


def test_queued_remote_storage_is_queued_storage() -> None:
    assert QueuedRemoteStorage is QueuedStorage
    assert TopLevelQueuedStorage is QueuedStorage


def test_queued_file_system_storage(local_dir: Path, remote_dir: Path) -> None:
    storage = QueuedFileSystemStorage(
        remote=FileSystemStorage(location=remote_dir),
        local_options={"location": local_dir},
        key=unique_key(),
    )
    assert type(storage.local) is FileSystemStorage
    name = storage.save("a.txt", ContentFile(b"x"))
    assert (local_dir / name).read_bytes() == b"x"
    assert (remote_dir / name).read_bytes() == b"x"


def test_double_filesystem_storage(local_dir: Path, remote_dir: Path) -> None:
    storage = DoubleFilesystemStorage(
        local_options={"location": local_dir}, remote_options={"location": remote_dir}
    )
    assert type(storage.local) is FileSystemStorage
    assert type(storage.remote) is FileSystemStorage
    name = storage.save("a.txt", ContentFile(b"x"))
    assert storage.status(name) == Status.REMOTE
    assert (remote_dir / name).read_bytes() == b"x"


def test_s3_storage(local_dir: Path, s3_endpoint: str, s3_bucket: str) -> None:
    from storages.backends.s3 import S3Storage as DjangoStoragesS3

    storage = S3Storage(
        local_options={"location": local_dir},
        remote_options=services.s3_options(s3_endpoint, s3_bucket),
    )
    assert type(storage.remote) is DjangoStoragesS3
    name = storage.save("a.txt", ContentFile(b"to s3"))
    assert storage.status(name) == Status.REMOTE
    with storage.remote.open(name, "rb") as fh:
        assert fh.read() == b"to s3"


def test_delayed_storage(local_dir: Path, remote_dir: Path) -> None:
    storage = DelayedStorage(
        FileSystemStorage(location=local_dir), FileSystemStorage(location=remote_dir)
    )
    assert storage.delayed
    name = storage.save("a.txt", ContentFile(b"x"))
    assert storage.status(name) == Status.LOCAL
    storage.transfer(name)
    assert storage.status(name) == Status.REMOTE


def test_legacy_transfer_task_means_no_hook(local_dir: Path, remote_dir: Path) -> None:
    storage = fs_pair(local_dir, remote_dir, unique_key(), task="queued_storage.tasks.Transfer")
    assert storage.hooks == []
    name = storage.save("a.txt", ContentFile(b"x"))
    assert (local_dir / name).exists()


def test_legacy_transfer_and_delete_task_means_delete_local(
    local_dir: Path, remote_dir: Path
) -> None:
    storage = fs_pair(
        local_dir, remote_dir, unique_key(), task="queued_storage.tasks.TransferAndDelete"
    )
    assert storage.hooks == [DeleteLocal()]
    name = storage.save("a.txt", ContentFile(b"x"))
    assert not (local_dir / name).exists()
    assert (remote_dir / name).read_bytes() == b"x"


def test_any_other_legacy_task_points_to_hooks() -> None:
    with pytest.raises(ImproperlyConfigured, match=r"hooks=\[storage_hooks\.hooks\.DeleteLocal"):
        QueuedStorage("default", "default", task="myproject.tasks.TransferAndResize")


# -- deconstruction and pickling ---------------------------------------------


def test_a_file_field_with_a_queued_storage_survives_a_migration(local_dir: Path) -> None:
    storage = QueuedStorage(
        local=FileSystemStorage(location=local_dir, base_url="/media/"),
        remote="django.core.files.storage.InMemoryStorage",
        remote_options={"base_url": "/remote/"},
        hooks=[DeleteLocal(), Thumbnails({"small": (64, 64)}, format="WEBP"), "tests.x.Hook"],
        delayed=True,
        key="documents",
    )
    field = models.FileField(storage=storage, upload_to="docs")
    source, imports = MigrationWriter.serialize(field)
    namespace: dict[str, Any] = {}
    exec("\n".join(sorted(imports)) + f"\nfield = {source}", namespace)
    rebuilt = namespace["field"]

    autodetector = MigrationAutodetector(ProjectState(), ProjectState())
    assert autodetector.deep_deconstruct(rebuilt) == autodetector.deep_deconstruct(field)
    assert isinstance(rebuilt.storage, QueuedStorage)
    assert rebuilt.storage.key == "documents"
    assert rebuilt.storage.local.location == str(local_dir)


def test_pickling_keeps_the_configuration(pair: QueuedStorage) -> None:
    name = pair.save("p.txt", ContentFile(b"pickled"))
    # In a process that has the storage of that key, a pickle is that storage.
    assert pickle.loads(pickle.dumps(pair)) is pair
    # Elsewhere it is built again from the arguments (credentials left out).
    _, restore_args = pair.__reduce__()
    cls, key, args, kwargs = restore_args
    copy = cls(*args, **{**kwargs, "key": key})
    assert type(copy) is type(pair)
    assert copy is not pair
    assert copy.key == pair.key
    assert copy.status(name) == Status.REMOTE
    assert copy.local.deconstruct() == pair.local.deconstruct()
    # Credentials are never pickled: the rebuilt S3 remote has none of its own
    # (it finds them where boto3 looks: environment, instance role, ...).
    path, args, kwargs = pair.remote.deconstruct()
    assert copy.remote.deconstruct() == (path, args, without_secrets(kwargs))
    # Reading through the copy: an InMemoryStorage's files live in the
    # instance, and an unpickled S3Storage instance cannot download (boto3's
    # TransferConfig loses its settings when pickled; see the next test).
    if isinstance(pair.remote, FileSystemStorage):
        with copy.open(name, "rb") as fh:
            assert fh.read() == b"pickled"


def test_pickling_a_storage_configured_by_paths_rebuilds_s3(
    local_dir: Path, s3_endpoint: str, s3_bucket: str
) -> None:
    storage = QueuedStorage(
        local="django.core.files.storage.FileSystemStorage",
        local_options={"location": str(local_dir)},
        remote="storages.backends.s3.S3Storage",
        remote_options=services.s3_options(s3_endpoint, s3_bucket),
        hooks=[DeleteLocal()],
    )
    name = storage.save("p.txt", ContentFile(b"pickled"))
    copy = pickle.loads(pickle.dumps(storage))
    assert copy.key == storage.key
    assert copy.hooks == [DeleteLocal()]
    with copy.open(name, "rb") as fh:
        assert fh.read() == b"pickled"


# -- keys ----------------------------------------------------------------------

MEDIA = {
    "BACKEND": "storage_hooks.QueuedStorage",
    "OPTIONS": {
        "local": "django.core.files.storage.InMemoryStorage",
        "remote": "django.core.files.storage.InMemoryStorage",
    },
}


def test_a_storages_alias_is_the_key() -> None:
    with override_settings(STORAGES={**storages.backends, "media": MEDIA}):
        assert storages["media"].key == "media"
        # The same configuration built by hand is recognised as that alias.
        assert QueuedStorage(**MEDIA["OPTIONS"]).key == "media"


def test_the_documented_storages_form(tmp_path: Path, s3_endpoint: str, s3_bucket: str) -> None:
    configured = {
        "local": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(tmp_path), "base_url": "/media/"},
        },
        "s3": {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": services.s3_options(s3_endpoint, s3_bucket),
        },
        "default": {
            "BACKEND": "storage_hooks.QueuedStorage",
            "OPTIONS": {
                "local": "local",
                "remote": "s3",
                "hooks": ["storage_hooks.hooks.DeleteLocal"],
            },
        },
    }
    with override_settings(STORAGES=configured):
        storage = storages["default"]
        assert storage.key == "default"
        assert storage.local is storages["local"]
        assert storage.remote is storages["s3"]
        name = storage.save("docs/a.txt", ContentFile(b"aliases"))
        assert storage.status(name) == Status.REMOTE
        assert not (tmp_path / name).exists()
        with storages["s3"].open(name, "rb") as fh:
            assert fh.read() == b"aliases"


def test_an_explicit_key_wins() -> None:
    assert QueuedStorage("default", "default", key="mine").key == "mine"


def config(location: Any) -> QueuedStorage:
    return QueuedStorage(
        local=FileSystemStorage(location=location),
        remote="django.core.files.storage.InMemoryStorage",
        remote_options={"base_url": "/r/"},
    )


def test_a_derived_key_depends_on_the_configuration_only() -> None:
    first, second = config("/srv/media"), config(Path("/srv/media"))
    assert first.key == second.key
    assert first.key.startswith("queuedstorage-")
    assert config("/srv/other").key != first.key
    assert DelayedStorage(local="default", remote="default").key != (
        QueuedStorage(local="default", remote="default").key
    )


def test_another_process_derives_the_same_key() -> None:
    code = (
        "import django; django.setup()\n"
        "from tests.test_storage import config\n"
        "print(config('/srv/media').key)\n"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", "PYTHONPATH": os.getcwd()}
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == config("/srv/media").key
