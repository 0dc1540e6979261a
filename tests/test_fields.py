"""Model fields (storage_hooks.fields): files that know their transfer, on
the models of tests/testapp (their storages have fixed keys)."""

from __future__ import annotations

import io
from io import StringIO
from typing import Any

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import FileSystemStorage
from django.core.management import call_command
from django.db.migrations.autodetector import MigrationAutodetector
from django.db.migrations.state import ProjectState
from PIL import Image

from storage_hooks import Status
from storage_hooks.fields import QueuedFieldFile, QueuedFileField, RemoteFileField

from .testapp.models import Document, Draft, Photo, draft_storage, field_storage

pytestmark = pytest.mark.django_db(transaction=True)


def test_remote_file_field_is_queued_file_field() -> None:
    assert RemoteFileField is QueuedFileField


def test_a_saved_file_knows_its_status() -> None:
    doc = Document.objects.create(file=ContentFile(b"contract", name="a.txt"))
    assert doc.file.name == "docs/a.txt"
    assert doc.file.status == Status.REMOTE
    assert field_storage.remote.exists("docs/a.txt")
    doc.file.transfer()  # harmless once on the remote
    fetched = Document.objects.get(pk=doc.pk)
    assert fetched.file.status == Status.REMOTE
    with fetched.file.open("rb") as fh:
        assert fh.read() == b"contract"


def test_transfer_queues_a_delayed_file() -> None:
    draft = Draft.objects.create(file=ContentFile(b"draft", name="d.txt"))
    assert draft.file.status == Status.LOCAL
    assert not draft_storage.remote.exists(draft.file.name)
    Draft.objects.get(pk=draft.pk).file.transfer()
    assert draft.file.status == Status.REMOTE
    assert draft_storage.remote.exists(draft.file.name)


def test_an_image_field_file_knows_its_status_and_size() -> None:
    png = io.BytesIO()
    Image.new("RGB", (30, 20), "teal").save(png, format="PNG")
    photo = Photo.objects.create(image=ContentFile(png.getvalue(), name="p.png"))
    assert photo.width == 30
    assert photo.image.status == Status.REMOTE
    fetched = Photo.objects.get(pk=photo.pk)
    assert (fetched.image.width, fetched.image.height) == (30, 20)


def test_an_empty_field_has_no_status_and_nothing_to_transfer() -> None:
    doc = Document()
    assert doc.file.status is None
    with pytest.raises(ValueError, match="This field has no file"):
        doc.file.transfer()


def test_a_field_on_another_storage_says_so(tmp_path: Any) -> None:
    field = QueuedFileField(storage=FileSystemStorage(location=tmp_path))
    file = QueuedFieldFile(None, field, "a.txt")
    with pytest.raises(TypeError, match="is FileSystemStorage, not a QueuedStorage"):
        assert file.status
    with pytest.raises(TypeError, match="nothing to transfer"):
        file.transfer()


def test_makemigrations_writes_the_fields_and_they_come_back_equal() -> None:
    out = StringIO()
    call_command("makemigrations", "testapp", dry_run=True, verbosity=3, stdout=out)
    source = out.getvalue().split("Full migrations file '0001_initial.py':\n", 1)[1]
    namespace: dict[str, Any] = {}
    exec(compile(source, "0001_initial.py", "exec"), namespace)
    written = {
        (op.name, name): field
        for op in namespace["Migration"].operations
        for name, field in op.fields
    }
    detector = MigrationAutodetector(ProjectState(), ProjectState())
    for model in (Document, Photo, Draft):
        for field in model._meta.local_fields:
            rebuilt = written[(model.__name__, field.name)]
            assert detector.deep_deconstruct(rebuilt) == detector.deep_deconstruct(field)
    assert written[("Draft", "file")].storage.key == "testapp-drafts"


def test_prefetch_statuses_makes_a_page_of_urls_free(django_assert_num_queries: Any) -> None:
    from django.core.cache import caches

    from storage_hooks import ledger
    from storage_hooks.fields import prefetch_statuses

    for i in range(5):
        Document.objects.create(file=ContentFile(b"x", name=f"p{i}.txt"))
    Draft.objects.create(file=ContentFile(b"y", name="d.txt"))
    caches["default"].clear()
    ledger.clear_memory()  # as in a process that has seen none of them
    docs = list(Document.objects.all())
    with django_assert_num_queries(1):  # one query for the five documents
        prefetch_statuses(docs, "file")
    with django_assert_num_queries(0):
        urls = [doc.file.url for doc in docs]
    assert urls == [field_storage.remote.url(doc.file.name) for doc in docs]
