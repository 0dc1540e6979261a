"""The request path: a model row and its 64 KiB upload, saved in one
transaction, through three storages in turn.

``QueuedStorage`` (local file + ledger row + Celery message on Redis at
commit) against plain ``FileSystemStorage`` and against django-storages'
``S3Storage`` writing straight to the S3 server. The three run interleaved
in rounds so that drift of the machine hits them alike; the median request
time is compared.
"""

from __future__ import annotations

import base64
import json
import time

import redis
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import models, transaction
from django.test import override_settings

from benchmarks.benchapp.models import PlainUpload, QueuedUpload, S3Upload
from benchmarks.context import Context
from benchmarks.report import Row, Section, median, ms
from storage_hooks.runners.celery import publisher

SIZE = 64 * 1024
QUEUE = "bench_requests"  # nobody consumes it; dropped at the end
VARIANTS: dict[str, type[models.Model]] = {
    "FileSystemStorage": PlainUpload,
    "QueuedStorage": QueuedUpload,
    "S3Storage": S3Upload,
}


def files_in(messages: list[bytes]) -> int:
    """How many files the Celery messages (Redis transport, JSON) name."""
    count = 0
    for raw in messages:
        body = json.loads(base64.b64decode(json.loads(raw)["body"]))
        args = body[0]  # protocol 2: [args, kwargs, embed]
        count += len(args[1]) if isinstance(args[1], list) else 1
    return count


def one_request(model: type[models.Model], name: str, data: bytes) -> float:
    """Seconds for one 'request': a row and its upload, in one transaction."""
    upload = SimpleUploadedFile(name, data, content_type="application/octet-stream")
    start = time.perf_counter()
    with transaction.atomic():
        model.objects.create(title=name, file=upload)  # type: ignore[attr-defined]
    return time.perf_counter() - start


def measure(count: int, data: bytes) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {label: [] for label in VARIANTS}
    rounds = 10
    for model in VARIANTS.values():  # warm up connections and caches
        for i in range(10):
            one_request(model, f"warm-{i}.bin", data)
    for r in range(rounds):
        for label, model in VARIANTS.items():
            for i in range(count // rounds):
                times[label].append(one_request(model, f"r{r}-{i}.bin", data))
            # What the publisher thread still holds is sent now, untimed,
            # not during the next storage's round (it would slow that one).
            publisher.drain(30)
    return times


def run(ctx: Context) -> Section:
    count = ctx.size(600, 200)
    data = (bytes(range(256)) * (SIZE // 256))[:SIZE]
    hooks = {**settings.STORAGE_HOOKS, "RUNNER": "celery", "QUEUE": QUEUE}
    with override_settings(STORAGE_HOOKS=hooks):
        times = measure(count, data)
        publisher.drain(30)
    broker = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    messages = broker.lrange(QUEUE, 0, -1)
    queued_messages, queued_files = len(messages), files_in(messages)
    broker.delete(QUEUE)
    broker.close()
    med = {label: median(values) for label, values in times.items()}
    ours, plain, s3 = med["QueuedStorage"], med["FileSystemStorage"], med["S3Storage"]
    ctx.measures["request"] = ours
    ctx.measures["request.plain"] = plain
    expected = count + 10
    note = (
        f"median of {count} requests each, PostgreSQL, 64 KiB; {queued_messages} Celery "
        f"messages for {queued_files} files were on Redis afterwards (expected {expected} "
        "files; the publisher thread sends saves that arrive while it is busy together)"
    )
    return Section(
        "Request path: model row + 64 KiB upload in one transaction",
        [
            Row(
                "request time, QueuedStorage / FileSystemStorage",
                ms(ours),
                ms(plain),
                ours / plain,
                ("<=", 2.0),
                note=note,
                extra_pass=queued_files == expected,
            ),
            Row(
                "speed-up of QueuedStorage over S3Storage (S3 time / ours)",
                ms(ours),
                ms(s3),
                s3 / ours,
                (">=", 10),
                note="S3Storage writes straight to moto's server on loopback (no network "
                "latency: real S3 is tens of ms away, so this understates the gain)",
            ),
        ],
    )
