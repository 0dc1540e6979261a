"""django-queued-storage 0.8's side of the benchmarks (runs on Python 3.8).

Measures what ``bench_request``, ``bench_transfer`` and ``bench_url``
measure for storage_hooks, the same way, and writes the numbers as JSON.
Called by ``bench_legacy.py`` with the BENCH_* environment set.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)
os.environ["DJANGO_SETTINGS_MODULE"] = "benchmarks.legacy.dqs_settings"

from benchmarks import env  # noqa: E402
from benchmarks.legacy.dqs_celery import app  # noqa: E402

SIZE = 64 * 1024


def setup() -> None:
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", run_syncdb=True, verbosity=0)


def request_path(count: int) -> dict:
    """Median seconds of a row + 64 KiB upload in one transaction."""
    from django.core.files.uploadedfile import SimpleUploadedFile
    from django.db import transaction

    from benchmarks.legacy.dqsapp.models import PlainUpload, QueuedUpload, queued

    data = (bytes(range(256)) * (SIZE // 256))[:SIZE]
    field_error = ""
    try:  # what a project would write first
        with transaction.atomic():
            QueuedUpload.objects.create(title="field", file=SimpleUploadedFile("f.bin", data))
    except (AttributeError, TypeError) as exc:  # it is not a django Storage
        field_error = f"{type(exc).__name__}: {exc}"

    def with_field(name: str) -> None:
        upload = SimpleUploadedFile(name, data, content_type="application/octet-stream")
        with transaction.atomic():
            PlainUpload.objects.create(title=name, file=upload)

    def with_storage(name: str) -> None:
        # The field cannot call this storage's save() (see field_error), so
        # the view saves the file and stores its name, in one transaction.
        upload = SimpleUploadedFile(name, data, content_type="application/octet-stream")
        with transaction.atomic():
            saved = queued.save("uploads/" + name, upload)
            QueuedUpload.objects.create(title=name, file=saved)

    variants = {"plain": with_field, "queued": with_storage}
    times = {label: [] for label in variants}  # type: dict
    for fn in variants.values():
        for i in range(10):
            fn(f"warm-{i}.bin")
    rounds = 10
    for r in range(rounds):
        for label, fn in variants.items():
            for i in range(count // rounds):
                start = time.perf_counter()
                fn(f"r{r}-{i}.bin")
                times[label].append(time.perf_counter() - start)
    return {
        "queued": statistics.median(times["queued"]),
        "plain": statistics.median(times["plain"]),
        "field_error": field_error,
    }


def wait_transferred(names: list, timeout: float) -> None:
    from django.core.cache import cache

    from benchmarks.legacy.dqsapp.models import queued

    keys = [queued.get_cache_key(n) for n in names]

    def done() -> bool:
        values = cache.get_many(keys)
        return sum(1 for v in values.values() if v is True) >= len(keys)

    env.poll_until(done, timeout=timeout, interval=0.02, what=f"{len(names)} transfers")


def throughput(sources: list, workers: int, tag: str, bench_env: dict) -> float:
    """Seconds for ``workers`` Celery workers to transfer ``sources``."""
    from django.conf import settings
    from django.core.files import File
    from django.core.files.base import ContentFile

    from benchmarks.legacy.dqsapp.models import queued

    specs = [
        {
            "python": sys.executable,
            "app": "benchmarks.legacy.dqs_celery",
            "name": f"{tag}{i}@dqs-{os.getpid()}",
            "queues": [settings.QUEUE],
            "env": bench_env,
        }
        for i in range(workers)
    ]
    with env.workers(*specs) as started:
        destination = [w.name for w in started]
        warm = [
            queued.save(f"warm-{tag}/{i}.bin", ContentFile(b"w" * 1024)) for i in range(2 * workers)
        ]
        wait_transferred(warm, 60)
        replies = app.control.cancel_consumer(settings.QUEUE, destination=destination, reply=True)
        if len(replies) != workers:
            raise RuntimeError(f"not every worker stopped consuming: {replies}")
        names = []
        for path in sources:
            with open(path, "rb") as fh:
                names.append(queued.save(f"{tag}/{os.path.basename(path)}", File(fh)))
        start = time.perf_counter()
        app.control.add_consumer(settings.QUEUE, destination=destination, reply=False)
        wait_transferred(names, max(900, 3 * len(names)))  # about one file a second
        elapsed = time.perf_counter() - start
        problems = [line for w in started for line in w.errors()]
    if problems:
        raise RuntimeError("worker errors:\n" + "\n".join(problems[:20]))
    return elapsed


def urls(names: list, passes: int) -> dict:
    """Page times of url(): warm, and with the cache just flushed."""
    from django.core.cache import cache

    from benchmarks.legacy.dqsapp.models import queued

    sent = []
    client = queued.remote.connection.meta.client
    client.meta.events.register("before-send.s3", lambda **kw: sent.append(1))

    def page(render) -> float:
        start = time.perf_counter()
        for name in names:
            render(name)
        return time.perf_counter() - start

    for name in names[:50]:
        queued.url(name)
    warm = [page(queued.url) for _ in range(passes)]
    base = [page(queued.remote.url) for _ in range(passes)]
    before = len(sent)
    cache.clear()
    cold = page(queued.url)
    return {
        "warm": statistics.median(warm),
        "cold": cold,
        "base": statistics.median(base),
        "cold_remote_calls": len(sent) - before,
        "page": len(names),
    }


def listing(directory: str) -> list:
    return sorted(os.path.join(directory, name) for name in os.listdir(directory))


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, required=True)
    parser.add_argument("--small", help="directory of the small source files")
    parser.add_argument("--small-count", type=int, help="transfer only the first N of them")
    parser.add_argument("--big", help="directory of the big source files")
    parser.add_argument("--page", type=int, default=1000)
    parser.add_argument("--passes", type=int, default=3)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    setup()
    import django
    import redis
    from django.conf import settings

    bench_env = {k: v for k, v in os.environ.items() if k.startswith("BENCH_")}
    bench_env["DJANGO_SETTINGS_MODULE"] = "benchmarks.legacy.dqs_settings"
    bench_env["PYTHONPATH"] = ROOT
    result = {"versions": f"Python {sys.version.split()[0]}, Django {django.get_version()}"}
    result["request"] = request_path(args.requests)
    broker = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    result["request"]["messages"] = broker.llen(settings.QUEUE)
    broker.delete(settings.QUEUE)  # nobody consumed the request path's messages
    if args.big:
        result["big"] = {"seconds": throughput(listing(args.big), 1, "big", bench_env)}
    if args.small:
        small = listing(args.small)[: args.small_count]
        result["small"] = {"seconds": throughput(small, 2, "small", bench_env), "count": len(small)}
        names = ["small/" + os.path.basename(p) for p in small[: args.page]]
        result["url"] = urls(names, args.passes)
    with open(args.out, "w") as fh:
        json.dump(result, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
