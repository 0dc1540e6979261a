"""What every benchmark of one run shares."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Context:
    quick: bool
    endpoint: str  # moto's S3 server
    bucket: str
    scratch: Path  # local files and sources, removed after the run
    env: dict[str, str]  # BENCH_* variables for worker processes
    redis_dbs: tuple[int, ...] = ()  # the Redis databases this run took
    #: Our numbers, kept for the comparison with django-queued-storage.
    measures: dict[str, Any] = field(default_factory=dict)

    def size(self, full: int, quick: int) -> int:
        return quick if self.quick else full
