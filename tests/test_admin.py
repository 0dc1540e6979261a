"""The ledger's admin (storage_hooks.admin): read-only rows and the two
actions, run against real file-system storages and the immediate runner.
(The browser test of the gallery example logs in to the real admin.)"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.contrib.admin import AdminSite
from django.contrib.messages.storage.cookie import CookieStorage
from django.core.files.base import ContentFile
from django.core.files.storage import FileSystemStorage
from django.http import HttpRequest
from django.test import RequestFactory

from storage_hooks import Status
from storage_hooks.admin import StoredFileAdmin
from storage_hooks.models import StoredFile
from storage_hooks.storage import QueuedStorage

from .conftest import unique_key

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def model_admin() -> StoredFileAdmin:
    return StoredFileAdmin(StoredFile, AdminSite())


@pytest.fixture
def request_(django_user_model: Any) -> HttpRequest:
    request = RequestFactory().post("/admin/storage_hooks/storedfile/")
    request.user = django_user_model.objects.create_superuser("root", "root@localhost", "pw")
    request._messages = CookieStorage(request)  # type: ignore[attr-defined]
    return request


def messages_of(request: HttpRequest) -> list[tuple[str, str]]:
    return [(m.level_tag, m.message) for m in request._messages]  # type: ignore[attr-defined]


@pytest.fixture
def no_retries(settings: Any) -> None:
    settings.STORAGE_HOOKS = {"RUNNER": "immediate", "RETRIES": 0}


@pytest.fixture
def broken(local_dir: Path, tmp_path: Path, no_retries: None) -> tuple[QueuedStorage, Path]:
    """A storage whose remote cannot be written yet: its root is a file."""
    blocker = tmp_path / "remote-root"
    blocker.write_bytes(b"a file where the remote's directory should be")
    storage = QueuedStorage(
        local=FileSystemStorage(location=local_dir),
        remote=FileSystemStorage(location=blocker),
        key=unique_key("admin-broken"),
    )
    return storage, blocker


def status_of(storage: QueuedStorage, name: str) -> str:
    return StoredFile.objects.get(storage_key=storage.key, name=name).status


def test_the_admin_configuration_passes_django_checks(model_admin: StoredFileAdmin) -> None:
    assert model_admin.check() == []


def test_rows_are_read_only_and_cannot_be_deleted(
    model_admin: StoredFileAdmin, request_: HttpRequest, fs_storage: QueuedStorage
) -> None:
    name = fs_storage.save("a.txt", ContentFile(b"a"))
    row = StoredFile.objects.get(storage_key=fs_storage.key, name=name)

    assert not model_admin.has_add_permission(request_)
    assert not model_admin.has_delete_permission(request_, row)
    assert not model_admin.has_change_permission(request_, row)
    assert model_admin.has_view_permission(request_, row)
    # The list allows the actions, and Django's "delete selected" is gone.
    assert model_admin.has_change_permission(request_)
    assert set(model_admin.get_actions(request_)) == {"retry", "transfer_now"}


def test_retry_requeues_failed_files_only(
    model_admin: StoredFileAdmin,
    request_: HttpRequest,
    broken: tuple[QueuedStorage, Path],
    fs_storage: QueuedStorage,
) -> None:
    storage, blocker = broken
    failed = storage.save("failed.txt", ContentFile(b"failed"))
    done = fs_storage.save("done.txt", ContentFile(b"done"))
    assert status_of(storage, failed) == Status.FAILED
    assert status_of(fs_storage, done) == Status.REMOTE
    blocker.unlink()  # the remote works again

    model_admin.retry(request_, StoredFile.objects.all())

    assert status_of(storage, failed) == Status.REMOTE
    assert storage.remote.exists(failed)
    assert messages_of(request_) == [
        ("success", "Queued 1 transfer."),
        ("warning", "Skipped 1 file: this action queues failed files only."),
    ]


def test_transfer_now_queues_a_delayed_file(
    model_admin: StoredFileAdmin, request_: HttpRequest, local_dir: Path, remote_dir: Path
) -> None:
    storage = QueuedStorage(
        local=FileSystemStorage(location=local_dir),
        remote=FileSystemStorage(location=remote_dir),
        delayed=True,
        key=unique_key("admin-delayed"),
    )
    name = storage.save("later.txt", ContentFile(b"later"))
    assert status_of(storage, name) == Status.LOCAL

    model_admin.transfer_now(request_, StoredFile.objects.filter(storage_key=storage.key))

    assert status_of(storage, name) == Status.REMOTE
    assert (remote_dir / name).read_bytes() == b"later"
    assert messages_of(request_) == [("success", "Queued 1 transfer.")]


def test_a_storage_unknown_to_the_process_is_reported(
    model_admin: StoredFileAdmin, request_: HttpRequest
) -> None:
    StoredFile.objects.create(storage_key="gone", name="x.txt", status=Status.FAILED)

    model_admin.retry(request_, StoredFile.objects.all())

    [(level, text)] = messages_of(request_)
    assert level == "error"
    assert "Could not queue 1 file: no storage with the key 'gone'" in text
    assert StoredFile.objects.get(storage_key="gone").status == Status.FAILED
