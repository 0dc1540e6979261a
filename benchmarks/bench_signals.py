"""What signals and hooks cost a transfer.

Two storages on the same local directory and the same S3 server: one with
no receivers, one with three receivers on each of the six signals and a
hook (connected through ``hooks=``). Files of 16 KiB are transferred by
``run_transfer`` in this process, alternating between the two in small
batches so that drift of the machine and of the S3 server hits both alike.
"""

from __future__ import annotations

import time
from typing import Any

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import FileSystemStorage
from django.test import override_settings
from storages.backends.s3 import S3Storage

from benchmarks.context import Context
from benchmarks.report import Row, Section, median, ms, us
from storage_hooks import ledger, signals
from storage_hooks.hooks import Hook
from storage_hooks.storage import QueuedStorage
from storage_hooks.transfer import run_transfer

ALL = (
    signals.saved_locally,
    signals.transfer_queued,
    signals.transfer_started,
    signals.transferred,
    signals.transfer_failed,
    signals.local_deleted,
)


class Counting(Hook):
    """A hook whose receivers only count."""

    def __init__(self) -> None:
        self.calls = 0

    def connect(self, storage: QueuedStorage) -> None:
        for signal in ALL:
            signal.connect(self.seen, sender=storage)

    def seen(self, sender: Any, **kwargs: Any) -> None:
        self.calls += 1


def receiver(sender: Any, **kwargs: Any) -> None:
    """A plain function receiver that does nothing."""


def build(ctx: Context, key: str, hooks: list[Hook]) -> QueuedStorage:
    return QueuedStorage(
        local=FileSystemStorage(location=ctx.scratch / key),
        remote=S3Storage(**settings.S3),
        key=key,
        hooks=hooks,
        delayed=True,
    )


def sending(storage: QueuedStorage, rounds: int = 5000) -> float:
    """Seconds to send the signals of one successful transfer, as the
    worker does (``transfer_started``, then ``transferred`` robustly)."""
    start = time.perf_counter()
    for _ in range(rounds):
        signals.transfer_started.send(storage, name="n", attempt=1)
        signals.send_robust(
            signals.transferred, storage, name="n", size=1, checksum="c", duration=0.1
        )
    return (time.perf_counter() - start) / rounds


def run(ctx: Context) -> Section:
    count = ctx.size(300, 100)
    hook = Counting()
    bare = build(ctx, "signals-bare", [])
    hooked = build(ctx, "signals-hooked", [hook])
    extra = [lambda sender, **kw: None for _ in range(2)]  # kept alive here
    for signal in ALL:
        signal.connect(receiver, sender=hooked)
        for fn in extra:
            signal.connect(fn, sender=hooked)
    data = b"s" * 16384
    names = {
        s.key: [s.save(f"f/{i}.bin", ContentFile(data)) for i in range(count)]
        for s in (bare, hooked)
    }
    times: dict[str, list[float]] = {bare.key: [], hooked.key: []}
    with override_settings(STORAGE_HOOKS={**settings.STORAGE_HOOKS, "RUNNER": "immediate"}):
        for start in range(0, count, 10):
            for storage in (bare, hooked) if start % 20 else (hooked, bare):
                for name in names[storage.key][start : start + 10]:
                    ledger.requeue(storage.key, name, reset_attempts=False)
                    t0 = time.perf_counter()
                    run_transfer(storage.key, name)
                    times[storage.key].append(time.perf_counter() - t0)
    with_receivers, without = median(times[hooked.key]), median(times[bare.key])
    sends = hook.calls / count  # before sending() adds its own
    machinery = {s.key: sending(s) for s in (bare, hooked)}
    for signal in ALL:
        signal.disconnect(receiver, sender=hooked)
    extra = machinery[hooked.key] - machinery[bare.key]
    return Section(
        "Signal and hook overhead per transfer (16 KiB, S3 server)",
        [
            Row(
                "transfer time with receivers / without: (t + signal cost) / t",
                us(machinery[hooked.key]),
                us(machinery[bare.key]),
                (without + extra) / without,
                ("<=", 1.05),
                note="ours/baseline columns: sending one transfer's signals with 3 receivers "
                f"+ a hook on each / with none; t = {ms(without)}, the median transfer",
            ),
            Row(
                "end to end: median transfer with receivers / without",
                ms(with_receivers),
                ms(without),
                with_receivers / without,
                None,
                note=f"{count} transfers each, interleaved; the hook saw {sends:.0f} signals "
                "per transfer; the S3 server's jitter is larger than the difference",
            ),
        ],
    )
