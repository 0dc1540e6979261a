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


def test_a_batch_sends_again_only_the_files_that_could_not_reach_the_ledger(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Files of a batch whose attempt could not reach the ledger (a fault
    stood in for here: the batch reports them) go out again, those and
    only those, in one retry message with the back-off of a failed
    attempt."""
    from celery.exceptions import Retry

    from storage_hooks import tasks
    from storage_hooks.batching import BatchResult
    from storage_hooks.transfer import Outcome

    def run_batch(key: str, names: list[str]) -> BatchResult:
        result = BatchResult()
        result.outcomes = [(names[0], Outcome("done")), (names[1], Outcome("skipped"))]
        result.unreachable = names[2:]
        return result

    monkeypatch.setattr(tasks, "run_batch", run_batch)
    task = tasks.transfer_batch._get_current_object()  # type: ignore[attr-defined]
    sent_again: list[dict[str, object]] = []

    def retry(**options: object) -> Retry:
        sent_again.append(options)
        return Retry("sent again")

    monkeypatch.setattr(task, "retry", retry)
    names = ["a.txt", "b.txt", "c.txt", "d.txt"]
    with pytest.raises(Retry):
        task("media", names)
    (options,) = sent_again
    assert options["args"] == ("media", ["c.txt", "d.txt"])
    assert options["exc"] is None
    assert options["max_retries"] == 5
    countdown = options["countdown"]
    assert isinstance(countdown, float)
    assert 30 <= countdown <= 60  # RETRY_DELAY 60, jittered
    assert "transferring 2 files ('c.txt', ...); trying again later (1 of 5)" in caplog.text
