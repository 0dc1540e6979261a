"""Churners for the race tests: threads (in the test process) and processes
(``python -m tests.integration.churn CONFIG``) that save, delete, transfer
and read a few names of one QueuedStorage as fast as they can, and write a
journal of what each call returned.

The journal is what the invariants are checked against afterwards:
``{"op", "name", "start", "end", "sha", "ok", "error"}`` per call (wall-clock
times, shared by every process of the machine).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import sys
import time
import traceback
from pathlib import Path
from typing import Any

#: What a churner may meet without anything being wrong: a name just
#: deleted by another churner, or every candidate name taken at once.
EXPECTED_ERRORS = ("FileNotFoundError", "FileExistsError")


def churn(storage: Any, names: list[str], seconds: float, journal: Path, seed: int) -> None:
    """Random saves, deletes, transfers and reads of ``names`` for ``seconds``."""
    from django.core.files.base import ContentFile
    from django.db import close_old_connections

    from storage_hooks.batching import run_batch
    from storage_hooks.s3 import is_missing

    rng = random.Random(seed)
    deadline = time.monotonic() + seconds
    saved: list[str] = []
    with journal.open("a") as out:
        while time.monotonic() < deadline:
            op = rng.choice(
                ["save", "save", "save", "delete", "delete", "transfer", "read", "batch", "redo"]
            )
            name = rng.choice(saved[-4:] + names if op != "save" else names)
            entry: dict[str, Any] = {"op": op, "name": name, "start": time.time()}
            if op == "batch":
                # Saves of one transaction, handed over together at commit.
                for done in save_together(storage, names, rng, seed):
                    if done.get("ok"):
                        saved.append(done["name"])
                    out.write(json.dumps(done) + "\n")
                continue
            try:
                if op == "redo":
                    # A batch message delivered again, its files at once.
                    result = run_batch(storage.key, rng.sample(saved[-6:] + names, 3), threads=3)
                    if result.error is not None:
                        raise result.error
                elif op == "save":
                    data = f"{seed}:{time.time_ns()}:".encode() + os.urandom(rng.randint(0, 3000))
                    entry["sha"] = hashlib.sha256(data).hexdigest()
                    entry["name"] = storage.save(name, ContentFile(data))
                    saved.append(entry["name"])
                elif op == "delete":
                    storage.delete(name)
                elif op == "transfer":
                    storage.transfer(name)
                else:
                    with storage.open(name) as fh:
                        entry["sha"] = hashlib.sha256(fh.read()).hexdigest()
                entry["ok"] = True
            except Exception as exc:
                entry["ok"] = False
                entry["error"] = type(exc).__name__
                if op == "read" and is_missing(exc):
                    # S3 opens lazily: the object can go between open and read.
                    entry["error"] = "FileNotFoundError"
                if entry["error"] not in EXPECTED_ERRORS:
                    entry["traceback"] = traceback.format_exc()
            entry["end"] = time.time()
            out.write(json.dumps(entry) + "\n")
            out.flush()
    close_old_connections()


def save_together(storage: Any, names: list[str], rng: random.Random, seed: int) -> list[dict]:
    """Save two or three of ``names`` in one transaction; one journal entry
    per save, ok only once the transaction committed."""
    from django.core.files.base import ContentFile
    from django.db import transaction

    from storage_hooks import ledger

    entries: list[dict[str, Any]] = []
    start = time.time()
    try:
        with transaction.atomic(using=ledger.db_alias()):
            for name in rng.sample(names, rng.randint(2, 3)):
                data = f"{seed}:{time.time_ns()}:".encode() + os.urandom(rng.randint(0, 3000))
                sha = hashlib.sha256(data).hexdigest()
                entries.append({"op": "save", "name": name, "start": start, "sha": sha})
                entries[-1]["name"] = storage.save(name, ContentFile(data))
    except Exception as exc:
        for entry in entries:
            entry.update(ok=False, error=type(exc).__name__)
            if entry["error"] not in EXPECTED_ERRORS:
                entry["traceback"] = traceback.format_exc()
    else:
        for entry in entries:
            entry["ok"] = True
    for entry in entries:
        entry["end"] = time.time()
    return entries


def configure(config: dict[str, Any]) -> Any:
    """Settings of a churning process, and its storage (the same as the test
    process's: same database, cache, bucket, local directory and key)."""
    import django
    from django.conf import settings

    settings.configure(
        SECRET_KEY="churn",
        USE_TZ=True,
        INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth", "storage_hooks"],
        DATABASES={"default": config["database"]},
        CACHES={"default": config["cache"]},
        STORAGE_HOOKS={"RUNNER": "immediate", "RETRIES": 2, "CACHE": "default"},
        DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
    )
    django.setup()
    return build_storage(config)


def build_storage(config: dict[str, Any]) -> Any:
    from django.core.files.storage import FileSystemStorage
    from storages.backends.s3 import S3Storage

    from storage_hooks.hooks import DeleteLocal
    from storage_hooks.storage import QueuedStorage

    return QueuedStorage(
        local=FileSystemStorage(location=config["local_dir"]),
        remote=S3Storage(**config["s3"]),
        hooks=[DeleteLocal()],
        key=config["key"],
    )


def main() -> None:
    config = json.loads(Path(sys.argv[1]).read_text())
    storage = configure(config)
    seed = int(sys.argv[2])
    journal = Path(config["journal_dir"]) / f"process-{seed}.jsonl"
    churn(storage, config["names"], config["seconds"], journal, seed)


if __name__ == "__main__":
    main()
