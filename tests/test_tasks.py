"""The Celery tasks, called in this process (the worker-process tests are in
tests/integration)."""

from __future__ import annotations

import pytest
from django.core.files.base import ContentFile

from storage_hooks import Status
from storage_hooks.models import StoredFile
from storage_hooks.storage import QueuedStorage
from storage_hooks.tasks import retry_stuck, transfer

pytestmark = pytest.mark.django_db(transaction=True)


def test_retry_stuck_requeues_failed_transfers(fs_storage: QueuedStorage) -> None:
    delayed = QueuedStorage(
        local=fs_storage.local, remote=fs_storage.remote, delayed=True, key=fs_storage.key
    )
    name = delayed.save("a.txt", ContentFile(b"x"))
    StoredFile.objects.filter(storage_key=delayed.key, name=name).update(status=Status.FAILED)
    assert retry_stuck() == 1  # the immediate runner of the test settings transfers it
    assert delayed.status(name) == Status.REMOTE
    assert retry_stuck() == 0  # nothing left: harmless to run again


def test_the_transfer_task_reports_what_it_did(fs_storage: QueuedStorage) -> None:
    delayed = QueuedStorage(
        local=fs_storage.local, remote=fs_storage.remote, delayed=True, key=fs_storage.key
    )
    name = delayed.save("a.txt", ContentFile(b"x"))
    assert transfer(delayed.key, name) == "skipped"  # LOCAL: not queued yet
    StoredFile.objects.filter(storage_key=delayed.key, name=name).update(status=Status.QUEUED)
    assert transfer(delayed.key, name) == "done"
    assert fs_storage.remote.exists(name)
