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
from benchmarks.legacy import CLAIM  # noqa: E402

# The current Celery app: django-queued-storage's task publishes through it.
from benchmarks.legacy.dqs_celery import app  # noqa: E402, F401

SIZE = 64 * 1024
#: The queue the workers consume; the storage publishes to settings.QUEUE.
WORK = "bench_dqs.work"


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


def wait_transferred(names: list, timeout: float, started: list) -> None:
    """Until the cache flags every name as transferred; fails at once on a
    worker error (its task would retry a minute later)."""
    from django.core.cache import cache

    from benchmarks.legacy.dqsapp.models import queued

    pending = [queued.get_cache_key(n) for n in names]

    def done() -> bool:
        problems = [line for w in started for line in w.errors()]
        if problems:
            raise RuntimeError("worker errors:\n" + "\n".join(problems[:20]))
        values = cache.get_many(pending[:1000])  # the oldest first: FIFO queue
        pending[:] = [key for key in pending if values.get(key, False) is not True]
        return not pending

    env.poll_until(done, timeout=timeout, interval=0.05, what=f"{len(names)} transfers")


def release(broker) -> None:
    """Hand every message waiting in QUEUE to the workers at once.

    The workers consume WORK, never QUEUE; RENAME moves the whole list in
    one step and Redis serves the workers blocked in BRPOP at once. (Celery
    4.4's cancel_consumer/add_consumer cannot be used to pause them: see
    ``throughput``.)
    """
    from django.conf import settings

    if broker.exists(WORK):
        raise RuntimeError(f"{WORK} still holds {broker.llen(WORK)} messages")
    broker.rename(settings.QUEUE, WORK)


def throughput(sources: list, workers: int, threads: int, tag: str, bench_env: dict) -> dict:
    """Seconds for ``workers`` Celery workers to transfer ``sources``.

    Like ``bench_transfer``: warm the workers up, queue every file, then
    start the clock and let the workers consume. Not with cancel_consumer /
    add_consumer: on Celery 4.4 (kombu 4.6) a worker resumed that way sits
    idle for up to 10 s (its event loop sends the BRPOP for an added queue
    only on the next loop turn, and with no queue to read it sleeps until
    its next timer), and after any broker reconnection it consumes nothing
    at all (cancel_consumer deselects the queue; add_consumer does not
    select it again). Instead the workers consume WORK, which stays empty
    while the files are queued on QUEUE, and ``release`` renames QUEUE.
    """
    import redis
    from django.conf import settings
    from django.core.files import File
    from django.core.files.base import ContentFile

    from benchmarks.legacy.dqsapp.models import queued

    broker = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    specs = [
        {
            "python": sys.executable,
            "app": "benchmarks.legacy.dqs_celery",
            "name": f"{tag}{i}@dqs-{os.getpid()}",
            "queues": [WORK],
            "env": bench_env,
            "threads": threads,
        }
        for i in range(workers)
    ]
    with env.workers(*specs) as started:
        warm = [
            queued.save(f"warm-{tag}/{i}.bin", ContentFile(b"w" * 1024)) for i in range(2 * workers)
        ]
        release(broker)
        wait_transferred(warm, 60, started)
        names = []
        for path in sources:
            with open(path, "rb") as fh:
                names.append(queued.save(f"{tag}/{os.path.basename(path)}", File(fh)))
        start = time.perf_counter()
        release(broker)
        wait_transferred(names, max(600, 2 * len(names)), started)
        elapsed = time.perf_counter() - start
    return {
        "seconds": elapsed,
        "count": len(names),
        "workers": workers,
        "threads": threads,
    }


def urls(names: list, passes: int) -> dict:
    """Page times of url(): warm, and with the cache just flushed."""
    from django.core.cache import cache
    from django_redis import get_redis_connection

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
    get_redis_connection().set(CLAIM, "django-queued-storage")  # cleared with the rest
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
    parser.add_argument("--threads", type=int, default=0, help="per small-file worker (0: solo)")
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
        result["big"] = throughput(listing(args.big), 1, 0, "big", bench_env)
    if args.small:
        small = listing(args.small)
        result["small"] = throughput(small[: args.small_count], 2, args.threads, "small", bench_env)
        result["small"]["of"] = len(small)
        names = ["small/" + os.path.basename(p) for p in small[: args.page]]
        result["url"] = urls(names, args.passes)
    with open(args.out, "w") as fh:
        json.dump(result, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
