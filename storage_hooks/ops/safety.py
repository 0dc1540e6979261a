"""Keeping the Django project out of a storage's local root.

A ``FileSystemStorage`` without a location writes into the working
directory: with ``sync``, the project itself (``manage.py``, the settings
with their SECRET_KEY, an SQLite database) would be adopted, uploaded and,
with ``DeleteLocal``, deleted. :func:`project_root_problem` says whether a
storage's local root is such a place (``sync`` refuses it; ``manage.py
check`` can call it too); :func:`is_project_file` keeps the project's files
out of any sync.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from importlib.util import find_spec
from typing import Any

from django.conf import settings
from django.core.files.storage import Storage


def _real(path: Any) -> str:
    return os.path.realpath(os.fspath(path))


def _within(path: str, top: str) -> bool:
    """Whether ``path`` is ``top`` or inside it (both real paths)."""
    return path == top or path.startswith(top.rstrip(os.sep) + os.sep)


def _settings_package() -> str | None:
    """The directory of the settings module's top package (``mysite/``)."""
    module = getattr(settings, "SETTINGS_MODULE", None)
    if not module:
        return None
    try:
        spec = find_spec(module.split(".")[0])
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    if spec.submodule_search_locations:
        return _real(next(iter(spec.submodule_search_locations)))
    return _real(os.path.dirname(spec.origin)) if spec.origin else None


def project_places() -> Iterator[tuple[str, str]]:
    """``(real path, what it is)`` of the directories that hold the project."""
    yield _real(os.getcwd()), "the working directory"
    base = getattr(settings, "BASE_DIR", None)
    if base:
        yield _real(base), "settings.BASE_DIR"
    package = _settings_package()
    if package:
        yield package, f"the settings package of {settings.SETTINGS_MODULE}"
    script = sys.argv[0] if sys.argv else ""
    if os.path.basename(script) == "manage.py":
        yield _real(os.path.dirname(os.path.abspath(script))), "the directory of manage.py"


def root_problem(location: Any) -> str | None:
    """Why a local root at ``location`` is unsafe, or None."""
    root = _real(location)
    for place, what in project_places():
        if _within(place, root):
            where = "is" if place == root else "contains"
            return (
                f"The local root {root} {where} {what} ({place}): saving and syncing would "
                "mix uploads with the project's own files (manage.py, settings, database). "
                "Give the local storage a location of its own, such as "
                "MEDIA_ROOT = BASE_DIR / 'media'."
            )
    if os.path.exists(os.path.join(root, "manage.py")):
        return (
            f"The local root {root} contains manage.py: it looks like a Django project. "
            "Give the local storage a location of its own, such as MEDIA_ROOT = BASE_DIR / 'media'."
        )
    return None


def project_root_problem(storage: Any) -> str | None:
    """Why the local root of ``storage`` (a QueuedStorage, or any Storage)
    is unsafe to save into or sync from, or None when it is fine (or is not
    on a file system)."""
    local = getattr(storage, "local", storage)
    location = getattr(local, "location", None) if isinstance(local, Storage) else None
    if not location:
        return None
    return root_problem(location)


def _project_files() -> tuple[set[str], list[str]]:
    """Real paths of the project's files and of its code directories."""
    files: set[str] = set()
    for place, _ in project_places():
        files.add(os.path.join(place, "manage.py"))
    for database in getattr(settings, "DATABASES", {}).values():
        name = database.get("NAME")
        if "sqlite" in str(database.get("ENGINE", "")) and name and str(name) != ":memory:":
            real = _real(name)
            files.update({real, f"{real}-journal", f"{real}-wal", f"{real}-shm"})
    package = _settings_package()
    return files, [package] if package else []


def is_project_file(path: Any) -> bool:
    """Whether the file at ``path`` belongs to the project (manage.py, the
    settings package, an SQLite database): never adopted by ``sync``."""
    real = _real(path)
    files, directories = _project_files()
    if real in files or os.path.basename(real) == "manage.py":
        return True
    return any(_within(real, directory) for directory in directories)
