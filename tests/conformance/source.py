"""Django's own ``tests/file_storage`` for the installed Django version.

The test suite is not part of Django's wheel, only of its source
distribution: it is downloaded once per version with pip (the ordinary PyPI
client, so its index configuration and hash checks apply), and only the
``tests/file_storage`` package is kept, in a cache directory reused by later
runs: ``$STORAGE_HOOKS_DJANGO_SOURCE`` if set, else
``~/.cache/storage_hooks/django-<version>/``.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath

import django

#: The Django test package the conformance run adapts.
PACKAGE = "file_storage"
#: Written last into a complete copy, so an interrupted run is redone.
COMPLETE = ".complete"


class SourceUnavailable(Exception):
    """Django's source distribution could not be obtained."""


def cache_root() -> Path:
    configured = os.environ.get("STORAGE_HOOKS_DJANGO_SOURCE")
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "storage_hooks"


def suite_dir(version: str | None = None) -> Path:
    """The directory to put on ``sys.path`` so that ``import file_storage``
    finds the suite of ``version`` (default: the installed Django), fetching
    it first if needed. Raises SourceUnavailable with the reason."""
    version = version or django.__version__
    if version == django.__version__ and django.VERSION[3] != "final":
        raise SourceUnavailable(
            f"Django {version} is not a final release: its tests are not in a "
            "source distribution on PyPI."
        )
    target = cache_root() / f"django-{version}"
    if (target / COMPLETE).exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with _locked(target.parent / f"django-{version}.lock"):
        if not (target / COMPLETE).exists():  # another process may have done it
            _fetch(version, target)
    return target


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    with open(path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _fetch(version: str, target: Path) -> None:
    with tempfile.TemporaryDirectory(prefix="django-sdist-") as work:
        command = [
            sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
            "--no-binary", ":all:", "--dest", work, f"django=={version}",
        ]  # fmt: skip
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=300)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise SourceUnavailable(f"`{' '.join(command)}` did not finish: {exc}") from exc
        archives = [p for p in Path(work).iterdir() if p.name.lower().endswith(".tar.gz")]
        if done.returncode != 0 or len(archives) != 1:
            raise SourceUnavailable(
                f"`{' '.join(command)}` failed (exit {done.returncode}): "
                f"{(done.stderr or done.stdout).strip()[-800:]}"
            )
        staging = Path(work) / "suite"
        _extract(archives[0], staging)
        if target.exists():
            shutil.rmtree(target)
        shutil.move(staging, target)
        (target / COMPLETE).write_text(f"{archives[0].name}\n")


def _extract(archive: Path, staging: Path) -> None:
    """Extract ``<top>/tests/file_storage/*`` of ``archive`` into
    ``staging/file_storage``; nothing else, no links, nothing outside."""
    found = 0
    with tarfile.open(archive) as tar:
        for member in tar.getmembers():
            parts = PurePosixPath(member.name).parts
            if len(parts) < 4 or parts[1:3] != ("tests", PACKAGE) or not member.isfile():
                continue
            relative = PurePosixPath(*parts[2:])
            if ".." in relative.parts:
                continue
            destination = staging / relative
            destination.parent.mkdir(parents=True, exist_ok=True)
            source = tar.extractfile(member)
            assert source is not None
            with source, open(destination, "wb") as out:
                shutil.copyfileobj(source, out)
            found += 1
    if not found or not (staging / PACKAGE / "tests.py").exists():
        raise SourceUnavailable(f"{archive.name} has no tests/{PACKAGE}/tests.py")
