"""Peak memory of a Celery worker transferring one big file to S3.

The worker's ``VmHWM`` (peak RSS) is reset through ``/proc/<pid>/clear_refs``
just before it starts consuming, and read when the file is REMOTE; the row
is the growth over its idle RSS. Two configurations, side by side: the
library's default (S3 remotes get a bounded ``TransferConfig`` unless they
have their own) and a site's own config with boto3's sizes (8 MiB parts, up
to ten in memory).
"""

from __future__ import annotations

from pathlib import Path

from django.core.files.storage import storages

from benchmarks.bench_transfer import MiB, make_sources, transfer_run
from benchmarks.context import Context
from benchmarks.report import Row, Section, mib


def run(ctx: Context) -> Section:
    size = ctx.size(1024, 256) * MiB
    sources = make_sources(ctx.scratch / "src-huge", 1, size)
    section = Section(f"Worker memory transferring one {size // MiB} MiB file")
    for alias, label, goal in (
        ("queued", "default configuration", ("<=", 64.0)),
        # For contrast (no goal): what the library's default avoids.
        ("queued_boto3_sizes", "transfer_config with boto3's sizes, 8 MiB x 10", None),
    ):
        _, rss = transfer_run(ctx, alias, sources, 1, f"huge-{alias}")
        growth = rss["peak"] - rss["idle"]
        section.rows.append(
            Row(
                f"peak RSS growth of the worker [{label}]",
                mib(growth),
                f"idle {mib(rss['idle'])}",
                growth / MiB,
                goal,
                note=f"ratio column: MiB over idle RSS (peak VmHWM {mib(rss['peak'])})",
                unit=" MiB",
            )
        )
        Path(storages[alias].local.path(f"huge-{alias}/{sources[0].name}")).unlink(missing_ok=True)
    sources[0].unlink()
    return section
