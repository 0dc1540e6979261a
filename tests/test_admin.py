"""The ledger's admin (storage_hooks.admin): read-only rows and the two
actions, run against real file-system storages and the immediate runner.
(The browser test of the gallery example logs in to the real admin.)"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.contrib.admin import AdminSite
from django.contrib.admin.helpers import AdminReadonlyField
from django.contrib.admin.utils import flatten_fieldsets
from django.contrib.messages.storage.cookie import CookieStorage
from django.core.files.base import ContentFile
from django.core.files.storage import FileSystemStorage
from django.db import connection
from django.http import HttpRequest
from django.test import RequestFactory
from django.test.utils import CaptureQueriesContext

from storage_hooks import Status
from storage_hooks import admin as ledger_admin
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
    assert set(model_admin.get_actions(request_)) == {"retry", "transfer_now", "delete_rejected"}


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


# -- the changelist on a big ledger ------------------------------------------


def changelist(model_admin: StoredFileAdmin, user: Any, **params: str) -> Any:
    request = RequestFactory().get("/admin/storage_hooks/storedfile/", params)
    request.user = user
    return model_admin.get_changelist_instance(request)


def many(key: str, count: int, status: str = Status.REMOTE) -> None:
    StoredFile.objects.bulk_create(
        StoredFile(storage_key=key, name=f"dir/{status}-{i:05d}.txt", status=status)
        for i in range(count)
    )


def test_changelist_never_reads_the_whole_table(
    model_admin: StoredFileAdmin, request_: HttpRequest, fs_storage: QueuedStorage, monkeypatch
) -> None:
    monkeypatch.setattr(ledger_admin, "EXACT_COUNT_UP_TO", 50)
    many(fs_storage.key, 120)
    many("only-in-the-ledger", 3, Status.FAILED)

    with CaptureQueriesContext(connection) as queries:
        cl = changelist(model_admin, request_.user)
        list(cl.result_list)
    sql = " ".join(q["sql"].upper() for q in queries.captured_queries)
    assert "DISTINCT" not in sql
    # Counts are capped subqueries (LIMIT); beyond the cap PostgreSQL
    # estimates, other databases count exactly.
    counts = [q["sql"].upper() for q in queries.captured_queries if "COUNT(" in q["sql"].upper()]
    assert "LIMIT 51" in counts[0]
    if connection.vendor == "postgresql":
        assert all("LIMIT" in q for q in counts)
    assert cl.full_result_count is None  # "Show all" without a total
    assert cl.result_count >= 51  # more than the exact range: estimated (or exact off PostgreSQL)

    # The storage filter lists configured storages and the ledger's keys.
    spec = next(f for f in cl.filter_specs if isinstance(f, ledger_admin.StorageKeyFilter))
    keys = [key for key, _ in spec.lookup_choices]
    assert fs_storage.key in keys
    assert "only-in-the-ledger" in keys
    assert "testapp-documents" in keys  # configured, no row yet


def test_changelist_filters_and_search_by_name_prefix(
    model_admin: StoredFileAdmin, request_: HttpRequest, fs_storage: QueuedStorage
) -> None:
    many(fs_storage.key, 30)
    many(fs_storage.key, 4, Status.FAILED)
    many("other-key", 5, Status.FAILED)

    failed = changelist(model_admin, request_.user, status__exact="failed")
    assert failed.result_count == 9
    mine = changelist(model_admin, request_.user, storage_key=fs_storage.key)
    assert mine.result_count == 34
    both = changelist(
        model_admin, request_.user, storage_key=fs_storage.key, status__exact="failed"
    )
    assert both.result_count == 4

    exact = changelist(model_admin, request_.user, q="dir/failed-00003.txt")
    assert sorted(r.storage_key for r in exact.result_list) == sorted(["other-key", fs_storage.key])
    prefix = changelist(model_admin, request_.user, q="dir/remote-0001")
    assert {r.name for r in prefix.result_list} == {
        f"dir/remote-{i:05d}.txt" for i in range(10, 20)
    }
    # A prefix search, not "contains": the middle of a name finds nothing.
    assert changelist(model_admin, request_.user, q="remote-0001").result_count == 0


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's estimate")
def test_a_big_result_count_is_postgresqls_estimate(
    model_admin: StoredFileAdmin, request_: HttpRequest, fs_storage: QueuedStorage, monkeypatch
) -> None:
    monkeypatch.setattr(ledger_admin, "EXACT_COUNT_UP_TO", 10)
    many(fs_storage.key, 200)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE storage_hooks_storedfile")
    with CaptureQueriesContext(connection) as queries:
        cl = changelist(model_admin, request_.user)
    assert any(q["sql"].startswith("EXPLAIN") for q in queries.captured_queries)
    assert 100 <= cl.result_count <= 400


def test_delete_the_rejected_files(
    model_admin: StoredFileAdmin, request_: HttpRequest, fs_storage: QueuedStorage, local_dir: Path
) -> None:
    bad = fs_storage.save("bad.exe", ContentFile(b"virus"))
    good = fs_storage.save("good.txt", ContentFile(b"fine"))
    StoredFile.objects.filter(storage_key=fs_storage.key, name=bad).update(
        status=Status.FAILED, failure="rejected", last_error="EICAR found"
    )
    assert (local_dir / bad).exists()

    model_admin.delete_rejected(request_, StoredFile.objects.filter(storage_key=fs_storage.key))

    assert not (local_dir / bad).exists()
    assert fs_storage.status(bad) is None
    assert fs_storage.status(good) == Status.REMOTE  # left alone
    assert messages_of(request_) == [
        ("success", "Deleted 1 rejected file."),
        (
            "warning",
            "Skipped 1 file: this action deletes rejected files only (failed, failure 'rejected').",
        ),
    ]


def test_deleting_rejected_files_takes_the_delete_permission(
    model_admin: StoredFileAdmin, django_user_model: Any
) -> None:
    staff = django_user_model.objects.create_user("staff", is_staff=True)
    request = RequestFactory().get("/")
    request.user = staff
    assert not model_admin.has_purge_permission(request)
    assert "delete_rejected" not in model_admin.get_actions(request)


def test_the_detail_page_shows_the_size_as_the_list_does(
    model_admin: StoredFileAdmin, request_: HttpRequest, fs_storage: QueuedStorage
) -> None:
    name = fs_storage.save("kb.bin", ContentFile(b"x" * 2048))
    row = StoredFile.objects.get(storage_key=fs_storage.key, name=name)
    fields = flatten_fieldsets(model_admin.get_fieldsets(request_, row))
    assert "file_size" in fields
    assert "size" not in fields
    form = model_admin.get_form(request_, row)(instance=row)
    shown = AdminReadonlyField(form, "file_size", is_first=False, model_admin=model_admin)
    assert shown.field["label"] == "size"
    assert shown.contents() == "2.0\xa0KB"
    assert model_admin.file_size(row) == shown.contents()  # the list's column
