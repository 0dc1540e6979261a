"""Nothing is lost under faults: a killed worker, S3 down, retries
exhausted, a lost message, duplicate delivery, a flushed cache.

Each test runs real worker processes against Redis, PostgreSQL and moto's
S3 server, and checks the end state: every file on S3 with the right bytes,
its ledger row REMOTE, its local copy deleted exactly once.
"""

from __future__ import annotations

import hashlib
import json
import os

import pytest
from django.core.files.base import ContentFile

from storage_hooks import Status, ledger
from tests import services

from .config import ACCESS_KEY, SECRET_KEY
from .harness import ledger_row, wait_for

pytestmark = pytest.mark.integration

MiB = 1024 * 1024


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def names_of(events: list[dict]) -> list[str]:
    return sorted(e["name"] for e in events)


def test_worker_killed_mid_transfer(site):
    """SIGKILL during the upload of a 64 MiB file: the file stays local and
    TRANSFERRING; ``retry --stuck-after 0`` and a new worker finish it."""
    data = os.urandom(64 * MiB)
    # 16 MiB/s: the upload takes four seconds, the kill lands inside it.
    site.start_worker(throttle=16 * MiB)
    name = site.storage.save("big/video.bin", ContentFile(data))

    def uploading() -> bool:
        listing = site.s3().list_multipart_uploads(Bucket=site.deployment.bucket)
        return bool(listing.get("Uploads"))

    wait_for(uploading, "the multipart upload to start", on_timeout=site.logs)
    site.workers[0].kill()

    assert site.status(name) == Status.TRANSFERRING
    assert site.remote_names() == []
    assert site.local_path(name).stat().st_size == len(data)
    with site.storage.open(name) as fh:  # still served, from the local copy
        assert sha256(fh.read()) == sha256(data)

    # The killed attempt's message is not acknowledged; whenever the broker
    # gives it out again, the ledger says TRANSFERRING and it is skipped.
    # The operator's repair, while a new worker starts:
    worker = site.start_worker(wait=False)
    result = site.manage("storage_hooks", "retry", "--stuck-after", "0")
    assert "Re-queued 1 file (0 failed, 1 unchanged" in result.stdout
    site.wait_ready(worker)
    site.wait_status(name, Status.REMOTE, timeout=60)

    assert (
        sha256(site.remote_bytes(name))
        == sha256(data)
        == ledger_row(site.deployment.key, name).checksum
    )
    assert not site.local_path(name).exists()
    assert names_of(site.events("transferred")) == [name]
    assert names_of(site.events("local_deleted")) == [name]
    assert ledger_row(site.deployment.key, name).attempts == 2


def test_s3_down(site):
    """S3 unreachable: every attempt fails with ``will_retry=True``, the
    files stay local and are served from there, and all arrive, once each,
    when S3 is back."""
    port = services.free_port()
    # Enough retries (each 0.25-0.5 s apart) to outlast a slow moto start.
    site.configure(endpoint=f"http://127.0.0.1:{port}", retries=200)
    site.start_worker()
    files = {f"down/{i}.txt": f"file {i}".encode() * 1000 for i in range(3)}
    names = {site.storage.save(name, ContentFile(data)): data for name, data in files.items()}
    assert list(names) == list(files)

    for name in names:
        wait_for(
            lambda name=name: site.events("transfer_failed", name=name, will_retry=True),
            f"a failed attempt at {name}",
            on_timeout=site.logs,
        )
    failure = site.events("transfer_failed")[0]
    assert "Could not connect" in failure["exception"], failure
    for name, data in names.items():
        assert site.storage.status(name) in (Status.QUEUED, Status.TRANSFERRING)
        assert site.storage.url(name) == f"/media/{name}"
        with site.storage.open(name) as fh:
            assert fh.read() == data

    with services.moto_server(port):
        site.create_bucket()
        for name in names:
            site.wait_status(name, Status.REMOTE)
        assert site.remote_names() == sorted(names)
        for name, data in names.items():
            assert site.remote_bytes(name) == data
            assert not site.local_path(name).exists()
            assert site.storage.url(name).startswith(site.deployment.endpoint)
    assert names_of(site.events("transferred")) == sorted(names)
    assert names_of(site.events("local_deleted")) == sorted(names)
    assert not site.events("transfer_failed", will_retry=False)


def test_retries_exhausted(site):
    """RETRIES + 1 failed attempts: FAILED, the local copy kept and served,
    ``status`` shows it, ``retry`` starts it again and it arrives."""
    site.configure(bucket=site.deployment.bucket + "-later", retries=2)
    site.start_worker()
    name = site.storage.save("fail/report.txt", ContentFile(b"quarterly numbers"))

    site.wait_status(name, Status.FAILED)
    failures = site.events("transfer_failed", name=name)
    assert [(e["attempt"], e["will_retry"]) for e in failures] == [(1, True), (2, True), (3, False)]
    assert "NoSuchBucket" in ledger_row(site.deployment.key, name).last_error
    assert site.storage.status(name) == Status.FAILED
    with site.storage.open(name) as fh:
        assert fh.read() == b"quarterly numbers"

    shown = site.command("storage_hooks", "status").splitlines()
    assert shown[0].split() == ["storage", *Status.values, "total"]
    # local, queued, transferring, remote, failed, deleting, lost, total:
    expected = [site.deployment.key, "0", "0", "0", "0", "1", "0", "0", "1"]
    assert expected in [line.split() for line in shown]
    oldest = f"Oldest pending in {site.deployment.key}: {name} (failed, 3 attempts), saved "
    assert any(line.startswith(oldest) for line in shown)
    summary = json.loads(site.command("storage_hooks", "status", "--json"))
    (entry,) = [s for s in summary["storages"] if s["key"] == site.deployment.key]
    assert entry["counts"]["failed"] == 1

    site.create_bucket()
    assert "Re-queued 1 file (1 failed" in site.command("storage_hooks", "retry")
    site.wait_status(name, Status.REMOTE)
    assert site.remote_bytes(name) == b"quarterly numbers"
    assert names_of(site.events("transferred")) == [name]
    assert names_of(site.events("local_deleted")) == [name]
    assert ledger_row(site.deployment.key, name).attempts == 1  # counted afresh


def test_lost_message(site):
    """The message never reaches a worker (deleted from Redis): the file
    waits QUEUED until ``retry --stuck-after`` sends it again."""
    name = site.storage.save("lost/letter.txt", ContentFile(b"dear reader"))
    assert site.broker.drop_queue(site.deployment.queue) == 1
    site.start_worker()
    assert site.status(name) == Status.QUEUED
    assert not site.events("task_prerun")

    # Younger than STUCK_AFTER (900 s): not touched.
    assert "Re-queued 0 files" in site.command("storage_hooks", "retry")
    result = site.command("storage_hooks", "retry", "--stuck-after", "0")
    assert "Re-queued 1 file (0 failed, 1 unchanged" in result
    site.wait_status(name, Status.REMOTE)
    assert site.remote_bytes(name) == b"dear reader"
    assert names_of(site.events("transferred")) == [name]
    assert names_of(site.events("local_deleted")) == [name]


def test_duplicate_delivery_at_once(site):
    """The same message delivered twice, to two workers at the same time:
    one copy, one ``transferred``, one ``local_deleted``."""
    data = os.urandom(1 * MiB)
    name = site.storage.save("twice/photo.raw", ContentFile(data))
    queue = site.deployment.queue
    (raw,) = site.broker.raw_messages(queue)
    site.broker.drop_queue(queue)

    # 1 MiB/s: a copy takes seconds (botocore reads the body several times).
    workers = site.start_workers(2, throttle=1 * MiB)
    # Both workers wait on the queue: each takes one copy (same task id).
    site.broker.client.lpush(site.broker.queue_key(queue), raw, raw)
    wait_for(lambda: len(site.events("task_postrun")) == 2, "both deliveries", on_timeout=site.logs)
    site.wait_status(name, Status.REMOTE)

    runs = site.events("task_postrun")
    assert sorted(e["retval"] for e in runs) == ["done", "skipped"]
    assert {e["pid"] for e in runs} == {w.pid for w in workers}
    skipped = next(i for i, e in enumerate(site.events()) if e.get("retval") == "skipped")
    done = next(i for i, e in enumerate(site.events()) if e["event"] == "transferred")
    assert skipped < done, "the duplicate ran while the first copy was in progress"
    assert site.remote_names() == [name]
    assert sha256(site.remote_bytes(name)) == sha256(data)
    assert names_of(site.events("transferred")) == [name]
    assert names_of(site.events("local_deleted")) == [name]
    assert ledger_row(site.deployment.key, name).attempts == 1


def test_flushed_cache(site):
    """Every key of the shared Redis cache deleted: ``status`` and ``url``
    answer as before, from the ledger, without a call to S3."""
    site.start_worker()
    sent = site.storage.save("cache/sent.txt", ContentFile(b"sent"))
    site.wait_status(sent, Status.REMOTE)
    site.workers[0].kill()  # idle: nothing to lose
    waiting = site.storage.save("cache/waiting.txt", ContentFile(b"waiting"))
    names = [sent, waiting, "cache/never-saved.txt"]

    def answers() -> list[object]:
        return [(site.storage.status(n), site.storage.url(n)) for n in names]

    before = answers()
    assert before[0] == (
        Status.REMOTE,
        f"{site.deployment.endpoint}/{site.deployment.bucket}/{sent}",
    )
    assert before[1] == (Status.QUEUED, f"/media/{waiting}")
    assert before[2] == (None, "/media/cache/never-saved.txt")
    calls: list[str] = []
    client = site.storage.remote.connection.meta.client
    client.meta.events.register("before-send", lambda **kw: calls.append(kw["request"].url))

    assert site.broker.delete_prefixed(site.deployment.cache_prefix) >= len(names)
    # And this process's own memory of remote files, as in a process that
    # starts after the flush: every answer must then come from the ledger.
    ledger.clear_memory()
    assert answers() == before
    assert calls == []
    assert len(site.broker.cache_keys()) >= len(names)  # cached again, from the ledger

    # The worker's change reaches this process through the shared cache,
    # where "waiting" is cached as QUEUED right now.
    site.start_worker()
    site.wait_status(waiting, Status.REMOTE)
    assert site.storage.status(waiting) == Status.REMOTE
    assert calls == []


def test_broker_message_holds_no_secret_and_no_path(site):
    """The message as it waits in Redis: the storage key and the file name,
    JSON, and nothing of the storage's configuration."""
    name = site.storage.save("private/contract.pdf", ContentFile(b"%PDF-1.7 ..."))
    (raw,) = site.broker.raw_messages(site.deployment.queue)
    (message,) = site.broker.messages(site.deployment.queue)

    assert message["content-type"] == "application/json"
    assert message["headers"]["task"] == "storage_hooks.transfer"
    args, kwargs, _embed = message["decoded"]
    assert args == [site.deployment.key, name]
    assert kwargs == {}
    body = json.dumps(message["decoded"])
    everything = raw.decode() + body
    secrets = [SECRET_KEY, ACCESS_KEY, site.deployment.local_dir, site.deployment.endpoint]
    for secret in [*secrets, str(site.local_path(name)), site.deployment.bucket]:
        assert secret not in everything
    assert not any(str(arg).startswith("/") for arg in args)
