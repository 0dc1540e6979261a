"""FallbackStorage.url(): the url memory against asking every backend each time.

A page shows 100 images of a development site: 20 recent uploads on the local
disk, 80 in the production bucket (django-storages' S3Storage against moto's
S3 server, in its own process on loopback). Backends: ``[local, s3]``. Without
the memory (``url_cache_size=0``, which is what django-fallback-storage did)
every ``url()`` asks ``exists`` of each backend until one has the file: one
S3 HEAD request for each of the 80. With it, only the first view of a page
(and the first after ``url_cache_ttl`` seconds) asks. Both run interleaved,
page by page, in one process, so drift of the machine hits them alike.

    .venv/bin/python benchmarks/bench_fallback_url.py [--quick]

Self-contained on purpose (no import from tests/ or the other benchmarks).
"""

from __future__ import annotations

import argparse
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PAGE = 100
LOCAL_SHARE = 20  # recent uploads, still on the local disk
BUCKET = "bench-fallback"
CREDENTIALS = {"access_key": "bench", "secret_key": "bench", "region_name": "us-east-1"}


@contextmanager
def moto_server() -> Iterator[str]:
    """Start moto's S3 server on a free loopback port; stop it at the end."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"moto's server exited with {proc.returncode}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("moto's server did not start in 30 s") from None
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def configure_django() -> None:
    from django.conf import settings

    settings.configure(USE_TZ=True, SECRET_KEY="bench", INSTALLED_APPS=[])
    import django

    django.setup()


def build(endpoint: str, scratch: Path) -> tuple[Any, Any, list[str]]:
    """The two backends, seeded, and the names on the page."""
    from django.core.files.base import ContentFile
    from django.core.files.storage import FileSystemStorage
    from storages.backends.s3 import S3Storage

    local = FileSystemStorage(location=scratch, base_url="/media/")
    s3 = S3Storage(bucket_name=BUCKET, endpoint_url=endpoint, querystring_auth=False, **CREDENTIALS)
    s3.connection.meta.client.create_bucket(Bucket=BUCKET)
    names = [f"gallery/{i:03d}.jpg" for i in range(PAGE)]
    for i, name in enumerate(names):
        (local if i < LOCAL_SHARE else s3).save(name, ContentFile(b"jpeg" * 64))
    return local, s3, names


def head_counter(s3: Any) -> Callable[[], int]:
    """How many S3 HEAD requests the storage's client has sent so far."""
    sent = [0]

    def count(**kwargs: Any) -> None:
        sent[0] += 1

    s3.connection.meta.client.meta.events.register("before-call.s3.HeadObject", count)
    return lambda: sent[0]


def view(storage: Any, names: list[str], heads: Callable[[], int]) -> tuple[float, int, list[str]]:
    """Render one page: seconds, S3 HEAD requests, the urls."""
    before = heads()
    start = time.perf_counter()
    urls = [storage.url(name) for name in names]
    return time.perf_counter() - start, heads() - before, urls


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer page views")
    views = 3 if parser.parse_args().quick else 10

    configure_django()
    from storage_hooks.fallback import FallbackStorage

    with moto_server() as endpoint, tempfile.TemporaryDirectory() as scratch:
        local, s3, names = build(endpoint, Path(scratch))
        heads = head_counter(s3)
        naive = FallbackStorage([local, s3], url_cache_size=0)
        remembered = FallbackStorage([local, s3])
        view(naive, names, heads)  # warm the HTTP connection pool for both

        cold_naive, _, expected = view(naive, names, heads)
        cold, cold_heads, urls = view(remembered, names, heads)
        assert urls == expected, "the url memory changed an answer"
        times: dict[str, list[float]] = {"naive": [], "memory": []}
        sent = {"naive": 0, "memory": 0}
        for _ in range(views):
            for label, storage in (("naive", naive), ("memory", remembered)):
                seconds, count, urls = view(storage, names, heads)
                assert urls == expected, f"{label} gave other urls"
                times[label].append(seconds)
                sent[label] += count

    naive_ms = statistics.median(times["naive"]) * 1000
    memory_ms = statistics.median(times["memory"]) * 1000
    print(
        f"FallbackStorage.url(): a page of {PAGE} images ({LOCAL_SHARE} local, "
        f"{PAGE - LOCAL_SHARE} on S3 via moto on loopback), {views} views each, interleaved."
    )
    print()
    print(f"  {'':34} {'naive':>10} {'memory':>10} {'ratio':>8}")
    print(
        f"  {'median per page view (ms)':34} {naive_ms:10.2f} {memory_ms:10.2f} "
        f"{naive_ms / memory_ms:7.1f}x"
    )
    print(
        f"  {'S3 HEAD requests per view':34} {sent['naive'] / views:10.1f} "
        f"{sent['memory'] / views:10.1f}"
    )
    print(
        f"  {'first view of the page (ms)':34} {cold_naive * 1000:10.2f} {cold * 1000:10.2f} "
        f"{cold_naive / cold:7.1f}x  ({cold_heads} HEAD requests to learn the page)"
    )
    per_head = (naive_ms - memory_ms) / max(1.0, sent["naive"] / views)
    print()
    print(f"  Here one S3 HEAD cost about {per_head:.1f} ms (moto, loopback); the ratio per")
    print("  view follows the round trip of the real service and the number of backends.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
