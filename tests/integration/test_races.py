"""Races on one name: concurrent saves, deletes, transfers and reads, by
threads and processes at once, on PostgreSQL, Redis and moto's S3 server,
with DeleteLocal removing local copies as transfers finish.

No call is delayed or arranged: churners (tests/integration/churn.py) hammer
four names for a while, each writing a journal of what its calls returned;
the invariants are then checked against the journals and the real state of
the ledger, the local directory and the bucket.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import subprocess
import sys
import threading
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from storage_hooks import Status
from storage_hooks.models import StoredFile
from tests import services

from . import churn
from .config import Deployment
from .harness import ALIAS, close_shared_cache
from .workers import ROOT, wait_for

pytestmark = pytest.mark.integration

NAMES = ["a.bin", "b.bin", "dir/c.bin", "dir/d.bin"]
_runs = itertools.count(1)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def race(
    token: str,
    integration_db: str,
    s3_endpoint: str,
    redis_client: Any,
    settings: Any,
    tmp_path: Path,
    django_db_blocker: Any,
) -> Iterator[dict[str, Any]]:
    """One storage (FS -> moto S3, DeleteLocal) shared by this process and
    the churning processes: same database, Redis cache, bucket, directory."""
    number = next(_runs)
    deployment = Deployment(
        token=token,
        db_name=integration_db,
        redis_url="redis://127.0.0.1:6379/0",
        endpoint=s3_endpoint,
        bucket=f"race-{token}-{number}",
        local_dir=str(tmp_path / "local"),
    )
    services.s3_client(s3_endpoint).create_bucket(Bucket=deployment.bucket)
    options = deployment.s3_options()
    options.pop("client_config")
    cache = {**deployment.cache(), "KEY_PREFIX": f"{deployment.prefix}race{number}"}
    config = {
        "database": deployment.database(),
        "cache": cache,
        "s3": options,
        "local_dir": deployment.local_dir,
        "key": f"race-{number}",
        "names": NAMES,
        "journal_dir": str(tmp_path / "journals"),
        "seconds": float(os.environ.get("STORAGE_HOOKS_RACE_SECONDS", "12")),
    }
    Path(config["journal_dir"]).mkdir()
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
        "shared": cache,
    }
    settings.STORAGE_HOOKS = {
        "RUNNER": "immediate",
        "RETRIES": 2,
        "CACHE": "shared",
        "DATABASE": ALIAS,
    }
    with django_db_blocker.unblock():
        try:
            yield config
        finally:
            close_shared_cache()


def journal(config: dict[str, Any]) -> list[dict[str, Any]]:
    entries = []
    for path in Path(config["journal_dir"]).glob("*.jsonl"):
        entries += [json.loads(line) for line in path.read_text().splitlines()]
    return sorted(entries, key=lambda e: e["start"])


def test_concurrent_save_delete_transfer_of_a_few_names_lose_nothing(
    race: dict[str, Any],
) -> None:
    storage = churn.build_storage(race)
    config_file = Path(race["journal_dir"]).parent / "churn.json"
    config_file.write_text(json.dumps(race))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.integration.churn", str(config_file), str(seed)],
            cwd=ROOT,
            env=env,
            preexec_fn=services.die_with_parent,
        )
        for seed in (101, 102)
    ]
    threads = [
        threading.Thread(
            target=churn.churn,
            args=(
                storage,
                NAMES,
                race["seconds"],
                Path(race["journal_dir"]) / f"t{seed}.jsonl",
                seed,
            ),
        )
        for seed in (1, 2, 3)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for process in processes:
        assert process.wait(timeout=race["seconds"] + 120) == 0

    check_invariants(storage, journal(race), race["s3"]["endpoint_url"], race["s3"]["bucket_name"])


def test_a_batch_delivered_to_several_workers_at_once_transfers_each_file_once(
    race: dict[str, Any], settings: Any
) -> None:
    """Three deliveries of one batch message (in three orders, so that their
    claims of eight names at a time overlap differently), each transferring
    eight files at a time, on PostgreSQL and moto: every file is claimed,
    proven, recorded and cleaned up (DeleteLocal) exactly once, and ends
    REMOTE with its bytes."""
    from django.core.files.base import ContentFile
    from django.db import connections, transaction

    from storage_hooks import signals
    from storage_hooks.batching import BatchResult, run_batch

    from ..testapp.storages import recording

    settings.STORAGE_HOOKS = {**settings.STORAGE_HOOKS, "RUNNER": "tests.test_batching.Collecting"}
    storage = churn.build_storage(race)
    contents = {f"batch/{i:02d}.bin": os.urandom(2000) + bytes([i]) for i in range(40)}
    with transaction.atomic(using=ALIAS):
        names = [storage.save(name, ContentFile(data)) for name, data in contents.items()]
    assert all(storage.status(name) == Status.QUEUED for name in names)

    results: list[BatchResult] = []

    def deliver(order: list[str]) -> None:
        try:
            results.append(run_batch(storage.key, order, threads=8))
        finally:
            connections.close_all()

    orders = [names, names[::-1], names[1::2] + names[::2]]
    with recording(storage, signals.transferred, signals.local_deleted) as events:
        deliveries = [threading.Thread(target=deliver, args=(order,)) for order in orders]
        for thread in deliveries:
            thread.start()
        for thread in deliveries:
            thread.join()

    assert all(result.error is None and not result.unreachable for result in results)
    kinds = [outcome.kind for result in results for _, outcome in result.outcomes]
    assert kinds.count("done") == len(names)
    assert kinds.count("skipped") == 2 * len(names)
    for signal in ("transferred", "local_deleted"):
        assert sorted(kw["name"] for event, kw in events if event == signal) == sorted(names)
    s3 = services.s3_client(race["s3"]["endpoint_url"])
    for name, data in zip(names, contents.values(), strict=True):
        assert storage.status(name) == Status.REMOTE
        body = s3.get_object(Bucket=race["s3"]["bucket_name"], Key=name)["Body"].read()
        assert body == data
        assert not storage.local.exists(name)


def check_invariants(
    storage: Any, entries: list[dict[str, Any]], endpoint: str, bucket: str
) -> None:
    """What must hold after any churn: no file lost or mixed up."""
    unexpected = [e for e in entries if not e["ok"] and e["error"] not in churn.EXPECTED_ERRORS]
    assert not unexpected, unexpected[0].get("traceback")
    saves = [e for e in entries if e["op"] == "save" and e["ok"]]
    deletes = defaultdict(list)
    for entry in entries:
        if entry["op"] == "delete" and entry["ok"]:
            deletes[entry["name"]].append(entry)
    assert len(saves) > 20, "too little churn"
    assert sum(map(len, deletes.values())) > 10, "too little churn"

    s3 = services.s3_client(endpoint)
    rows = {
        row.name: row for row in StoredFile.objects.using(ALIAS).filter(storage_key=storage.key)
    }
    # Every save() that returned reads back its own bytes, unless a delete()
    # of its name ran after it began (which may have removed it).
    by_sha = {e["sha"]: e for e in saves}
    for save in saves:
        name = save["name"]
        if any(d["end"] > save["start"] for d in deletes[name]):
            continue
        assert name in rows, f"{name!r} saved at {save['start']} is not in the ledger"
        with storage.open(name) as fh:
            assert sha256(fh.read()) == save["sha"], f"{name!r} serves other bytes"
    # Every row serves the bytes of its checksum, and those are the bytes a
    # save of that very name returned with (nothing mixed up).
    for name, row in rows.items():
        assert row.status not in (Status.DELETING, Status.LOST), row
        with storage.open(name) as fh:
            served = sha256(fh.read())
        assert served == row.checksum, f"{name!r}: row says {row.checksum}, serves {served}"
        assert by_sha[row.checksum]["name"] == name
        if row.status == Status.REMOTE:
            body = s3.get_object(Bucket=bucket, Key=name)["Body"].read()
            assert sha256(body) == row.checksum, f"REMOTE {name!r} has other bytes on S3"
        else:
            assert row.status in (Status.QUEUED, Status.FAILED), row
            assert storage.local.exists(name)


@pytest.mark.skipif(
    not os.environ.get("STORAGE_HOOKS_SOAK"),
    reason="the soak runs on demand: STORAGE_HOOKS_SOAK=1 (see docs/guarantees.rst)",
)
def test_soak_with_celery_workers(site: Any, tmp_path: Path) -> None:
    """The same churn, with the transfers in two Celery worker processes
    (Redis broker) instead of the saving thread, for
    STORAGE_HOOKS_RACE_SECONDS (default 120 here); then, once the queue is
    drained, the same invariants."""
    from django.core.management import call_command

    seconds = float(os.environ.get("STORAGE_HOOKS_RACE_SECONDS", "120"))
    site.start_workers(2)
    journals = tmp_path / "journals"
    journals.mkdir()
    threads = [
        threading.Thread(
            target=churn.churn,
            args=(site.storage, NAMES, seconds, journals / f"t{seed}.jsonl", seed),
        )
        for seed in (1, 2, 3, 4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    def drained() -> bool:
        pending = StoredFile.objects.using(ALIAS).filter(
            storage_key=site.storage.key, status__in=[Status.QUEUED, Status.TRANSFERRING]
        )
        if pending.exists():
            call_command("storage_hooks", "retry", "--stuck-after", "30", verbosity=0)
            return False
        return True

    wait_for(drained, "the queue to drain", timeout=300, on_timeout=site.logs)
    entries = []
    for path in journals.glob("*.jsonl"):
        entries += [json.loads(line) for line in path.read_text().splitlines()]
    check_invariants(site.storage, entries, site.deployment.endpoint, site.deployment.bucket)
