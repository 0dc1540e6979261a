"""The Celery task ``storage_hooks.tasks.transfer``, run by real worker
processes (solo pool) on Redis, with the ledger in PostgreSQL and the
remote on moto's S3 server."""

from __future__ import annotations

import psycopg
import pytest
from django.core.files.base import ContentFile

from storage_hooks import Status
from storage_hooks.tasks import transfer

from .harness import bucket_comes_late, ledger_row, wait_for

pytestmark = pytest.mark.integration


def test_safe_defaults_are_on_the_task():
    assert transfer.name == "storage_hooks.transfer"
    assert transfer.acks_late is True
    assert transfer.reject_on_worker_lost is True
    assert transfer.ignore_result is True
    assert transfer.serializer == "json"


def test_autodiscovered_task_transfers_a_saved_file(site):
    """The worker's app only calls ``app.autodiscover_tasks()``."""
    site.start_worker()
    name = site.storage.save("docs/hello.txt", ContentFile(b"hello world"))

    site.wait_status(name, Status.REMOTE)

    assert site.remote_bytes(name) == b"hello world"
    assert not site.local_path(name).exists()
    (run,) = site.events("task_postrun")
    assert run["task"] == "storage_hooks.transfer"
    assert run["queue"] == site.deployment.queue
    assert run["retval"] == "done"
    (started,) = site.events("task_prerun")
    assert started["args"] == [site.deployment.key, name]
    assert [e["name"] for e in site.events("transferred")] == [name]
    assert [e["name"] for e in site.events("local_deleted")] == [name]
    assert site.storage.status(name) == Status.REMOTE
    assert site.storage.url(name) == f"{site.deployment.endpoint}/{site.deployment.bucket}/{name}"


def test_failed_attempts_come_back_after_a_growing_delay(site):
    """RETRY_DELAY 0.4 s: the second attempt waits 0.2-0.4 s, the third
    0.4-0.8 s (exponential, with jitter); then the bucket exists."""

    def save():
        site.start_worker()
        return site.storage.save("later/notes.txt", ContentFile(b"notes"))

    name = bucket_comes_late(site, save)
    assert site.remote_bytes(name) == b"notes"


def test_ledger_out_of_reach_is_retried_without_spending_an_attempt(site):
    """The ledger table locked (the worker's queries time out): the task
    sends itself again with a delay; once the lock is gone the file arrives
    on its first attempt."""
    name = site.storage.save("locked/plan.txt", ContentFile(b"plan"))
    dsn = f"host=127.0.0.1 port=5432 user=postgres dbname={site.deployment.db_name}"
    with psycopg.connect(dsn) as conn:
        conn.execute("LOCK TABLE storage_hooks_storedfile IN ACCESS EXCLUSIVE MODE")
        site.start_worker()
        wait_for(lambda: site.events("task_retry"), "the task to retry", on_timeout=site.logs)
        conn.rollback()
    site.wait_status(name, Status.REMOTE)

    assert "lock timeout" in site.events("task_retry")[0]["reason"]
    assert not site.events("transfer_failed")
    assert ledger_row(site.deployment.key, name).attempts == 1
    assert [e["name"] for e in site.events("transferred")] == [name]


def test_a_message_for_a_transferred_file_is_harmless(site):
    site.start_worker()
    name = site.storage.save("again/once.txt", ContentFile(b"once"))
    site.wait_status(name, Status.REMOTE)

    site.storage.transfer(name)  # no message: already remote
    transfer.apply_async(args=(site.deployment.key, name), queue=site.deployment.queue)
    wait_for(lambda: len(site.events("task_postrun")) == 2, "the second delivery")

    assert [e["retval"] for e in site.events("task_postrun")] == ["done", "skipped"]
    assert [e["name"] for e in site.events("transferred")] == [name]
    assert ledger_row(site.deployment.key, name).attempts == 1
    assert site.remote_bytes(name) == b"once"


def test_unknown_storage_key_fails_the_task_with_advice(site):
    site.start_worker()
    transfer.apply_async(args=("no-such-key", "a.txt"), queue=site.deployment.queue)

    (run,) = wait_for(lambda: site.events("task_postrun"), "the task", on_timeout=site.logs)
    assert "UnknownStorageKey" in run["retval"]
    assert "No QueuedStorage with the key 'no-such-key'" in site.workers[0].log(200)
