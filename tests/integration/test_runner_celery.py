"""The Celery runner: when and where messages go (seen in Redis), host-affine
queues with real workers, and the visibility-timeout check W001."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.core import checks
from django.core.files.base import ContentFile
from django.db import transaction

from storage_hooks import Status
from storage_hooks.checks import check_settings

from .harness import ALIAS, ledger_row, wait_for


@pytest.mark.integration
def test_the_message_is_sent_when_the_transaction_commits(site):
    queue = site.deployment.queue
    with transaction.atomic(using=ALIAS):
        name = site.storage.save("tx/kept.txt", ContentFile(b"kept"))
        assert site.broker.raw_messages(queue) == []
    (message,) = site.broker.messages(queue)
    assert message["decoded"][0] == [site.deployment.key, name]

    def save_and_roll_back() -> None:
        with transaction.atomic(using=ALIAS):
            site.storage.save("tx/rolled-back.txt", ContentFile(b"gone"))
            raise RuntimeError("roll back")

    with pytest.raises(RuntimeError):
        save_and_roll_back()
    assert len(site.broker.raw_messages(queue)) == 1
    assert site.storage.status("tx/rolled-back.txt") is None


@pytest.mark.integration
def test_the_saves_of_one_transaction_travel_together(site):
    """Twenty saves in one transaction are four messages of at most
    BATCH_SIZE names; a real worker transfers, proves and cleans up each
    file on its own (DeleteLocal), with one transfer_started and one
    transferred per file. A lone save still goes alone, at once."""
    site.configure(batch_size=6, batch_threads=4)
    queue = site.deployment.queue
    site.broker.drop_queue(queue)  # what earlier tests left
    with transaction.atomic(using=ALIAS):
        names = [
            site.storage.save(f"batch/{i:02d}.bin", ContentFile(b"%02d" % i * 512))
            for i in range(20)
        ]
        assert site.broker.raw_messages(queue) == []
    messages = site.broker.messages(queue)
    assert [m["headers"]["task"] for m in messages] == ["storage_hooks.transfer_batch"] * 4
    sent = [name for m in messages for name in m["decoded"][0][1]]
    assert sorted(sent) == sorted(names)
    assert [len(m["decoded"][0][1]) for m in messages] == [6, 6, 6, 2]

    lone = site.storage.save("batch/lone.bin", ContentFile(b"alone"))
    assert site.broker.messages(queue)[-1]["decoded"][0] == [site.deployment.key, lone]

    site.start_worker()
    for name in [*names, lone]:
        site.wait_status(name, Status.REMOTE)
    for i, name in enumerate(names):
        assert site.remote_bytes(name) == b"%02d" % i * 512
        assert not site.local_path(name).exists()  # DeleteLocal ran for each
    for event in ("transfer_started", "transferred"):
        done = [e["name"] for e in site.events(event)]
        assert sorted(done) == sorted([*names, lone]), event


def upload_from_threads(site: Any, celery_client: Any, folder: str, count: int = 40) -> list[str]:
    """``count`` uploads from eight threads at once, each in its own
    transaction (requests of a threaded server); their names, in order."""
    from concurrent.futures import ThreadPoolExecutor

    from django.db import connections

    def upload(i: int) -> str:
        try:
            with transaction.atomic(using=ALIAS):
                return site.storage.save(f"{folder}/{i:02d}.bin", ContentFile(b"%02d" % i * 64))
        finally:
            connections.close_all()

    # The test process's Celery app is current in its main thread only
    # (how threads find a project's app is tests/test_runners.py's).
    with ThreadPoolExecutor(8, initializer=celery_client.set_current) as pool:
        return list(pool.map(upload, range(count)))


@pytest.mark.integration
def test_saves_of_separate_requests_each_reach_the_broker_once(site, celery_client):
    """Forty uploads from eight threads at once, each in its own
    transaction (requests of a threaded server): the publisher thread sends
    every name exactly once, those that arrived while it was busy together,
    and a real worker transfers each."""
    site.configure(batch_size=50, batch_threads=4)
    queue = site.deployment.queue
    site.broker.drop_queue(queue)
    names = upload_from_threads(site, celery_client, "burst")
    messages = site.broker.messages(queue)
    sent = []
    for message in messages:
        key, carried = message["decoded"][0]
        assert key == site.deployment.key
        sent += carried if isinstance(carried, list) else [carried]
    assert sorted(sent) == sorted(names)  # each once
    site.start_worker()
    for i, name in enumerate(names):
        site.wait_status(name, Status.REMOTE)
        assert site.remote_bytes(name) == b"%02d" % i * 64


@pytest.mark.integration
def test_a_new_rows_stale_entry_never_outlives_the_workers_change(site, celery_client):
    """The publisher thread deletes the stale cache entry of a new row's
    name after the request; with a worker already consuming, that delete
    may come before or after the worker's REMOTE, but never leaves a value
    that sends reads to the local copy (which DeleteLocal removed). Eight
    threads upload forty files at once, each name asked about first (as a
    page that checks a name before the upload would), so each starts with a
    stale "unknown name" in the shared Redis cache."""
    from django.core.cache import caches

    from storage_hooks import statecache
    from storage_hooks.runners.celery import publisher

    site.configure(batch_size=4, batch_threads=2)
    site.broker.drop_queue(site.deployment.queue)
    for i in range(40):
        assert site.storage.status(f"race/{i:02d}.bin") is None  # caches "unknown"
    site.start_worker()
    names = upload_from_threads(site, celery_client, "race")
    for name in names:
        site.wait_status(name, Status.REMOTE)
    assert publisher.drain(10)  # every stale entry deleted by now
    cache = caches["shared"]
    entries = {name: cache.get(statecache.cache_key(site.deployment.key, name)) for name in names}
    assert set(entries.values()) <= {str(Status.REMOTE), None}, entries
    statecache.clear_memory()  # as another process: the cache, then the ledger
    assert {site.storage.url(name).startswith("/media/") for name in names} == {False}


@pytest.mark.integration
def test_host_queues(site):
    """HOST_QUEUES: the message, and every retry, go to "<QUEUE>.<host>";
    the worker on that host's queue runs them, a shared worker does not."""
    site.configure(host_queues=True, hostname="web-7", bucket=site.deployment.bucket + "-later")
    shared_queue = site.deployment.queue
    host_queue = f"{shared_queue}.web-7"
    name = site.storage.save("hosted/upload.txt", ContentFile(b"from web-7"))

    assert ledger_row(site.deployment.key, name).host == "web-7"
    (message,) = site.broker.messages(host_queue)
    assert message["decoded"][0] == [site.deployment.key, name]
    assert site.broker.raw_messages(shared_queue) == []

    shared = site.start_worker(wait=False)
    on_host = site.start_worker(queues=[host_queue], wait=False)
    site.wait_ready(shared, on_host)
    wait_for(
        lambda: site.events("transfer_failed", will_retry=True),
        "a failed first attempt (no bucket yet)",
        on_timeout=site.logs,
    )
    site.create_bucket()
    site.wait_status(name, Status.REMOTE)

    runs = site.events("task_prerun")
    assert len(runs) >= 2
    assert {run["queue"] for run in runs} == {host_queue}
    assert {run["pid"] for run in runs} == {on_host.pid}
    assert site.remote_bytes(name) == b"from web-7"


# -- W001: retry delays against the broker's visibility timeout --------------


@pytest.fixture
def celery_app() -> Iterator[Any]:
    """A fresh Celery app, current while the test runs (as a project's app
    is once its celery.py is imported)."""
    from celery import Celery, _state

    previous = _state.get_current_app()
    app = Celery("w001", set_as_current=True)
    yield app
    app.close()
    _state._set_current_app(previous)


def w001() -> list[checks.CheckMessage]:
    return [m for m in check_settings() if m.id == "storage_hooks.W001"]


def test_w001_quiet_with_the_defaults(settings, celery_app):
    settings.STORAGE_HOOKS = {"RUNNER": "celery"}  # RETRY_DELAY_MAX 1800 < 3600
    assert w001() == []


def test_w001_when_retry_delay_max_reaches_the_visibility_timeout(settings, celery_app, db):
    settings.STORAGE_HOOKS = {"RUNNER": "celery", "RETRY_DELAY_MAX": 120}
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 120}
    (warning,) = w001()
    assert warning.level == checks.WARNING
    assert "(120s)" in warning.msg
    assert "visibility_timeout" in warning.hint
    # Registered: manage.py check shows it (model checks need the database).
    assert warning in checks.run_checks()

    settings.STORAGE_HOOKS = {"RUNNER": "celery", "RETRY_DELAY_MAX": 119}
    assert w001() == []


def test_w001_reads_the_celery_apps_own_configuration(settings, celery_app):
    celery_app.conf.broker_transport_options = {"visibility_timeout": 600}
    settings.STORAGE_HOOKS = {"RUNNER": "celery"}  # RETRY_DELAY_MAX 1800
    assert len(w001()) == 1
    # The Django setting, when there is one, is what Celery reads.
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 7200}
    assert w001() == []


def test_w001_only_for_the_celery_runner(settings, celery_app):
    settings.STORAGE_HOOKS = {"RUNNER": "immediate", "RETRY_DELAY_MAX": 5000}
    assert w001() == []
