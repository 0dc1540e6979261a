"""Where the Django project lives, so that no storage mistakes it for media.

A local storage whose root is the working directory, the project's directory
or one of their ancestors would write uploads among the project's files, and
``storage_hooks sync`` would take ``manage.py``, the settings (with their
SECRET_KEY) and an SQLite database for uploads. :func:`unsafe_root` says why
such a root is unsafe (the check E015 and ``sync`` use it);
:func:`is_project_file` keeps the project's files out of any sync.
"""

from __future__ import annotations

import os
import sys
from importlib.util import find_spec
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.files.storage import FileSystemStorage

#: What to tell someone whose local root is unsafe.
HOW_TO_FIX = (
    "Give the local storage a directory of its own, e.g. OPTIONS {'location': "
    "BASE_DIR / 'media'}, or set MEDIA_ROOT = BASE_DIR / 'media'."
)


def _real(path: Any) -> Path:
    return Path(os.path.realpath(os.fspath(path)))


def settings_module() -> str:
    """The settings module's name ("" when unknown). ``override_settings``
    hides it from ``settings``, so the environment is asked too."""
    name = getattr(settings, "SETTINGS_MODULE", None)
    return str(name or os.environ.get("DJANGO_SETTINGS_MODULE") or "")


def settings_package() -> Path | None:
    """The directory of the settings module's top package (``mysite/`` for
    ``mysite.settings``), found without importing it."""
    module = settings_module()
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


def project_places() -> list[tuple[str, Path]]:
    """``(what, real directory)`` of each place that holds the project: the
    working directory, the directory of the running ``manage.py``, the
    settings module's package and ``settings.BASE_DIR``."""
    places = [("the working directory", _real(os.getcwd()))]
    script = sys.argv[0] if sys.argv else ""
    if os.path.basename(script) == "manage.py":
        places.append(
            ("the directory of manage.py", _real(os.path.dirname(os.path.abspath(script))))
        )
    package = settings_package()
    if package is not None:
        places.append((f"the package of the settings module {settings_module()}", package))
    base_dir = getattr(settings, "BASE_DIR", None)
    if base_dir:
        places.append(("settings.BASE_DIR", _real(base_dir)))
    return places


def unsafe_root(location: str | os.PathLike[str]) -> str | None:
    """Why ``location`` must not be a local storage's root (e.g. "the
    working directory (/srv/site)"), or ``None``.

    A root is unsafe when it is (or contains) one of :func:`project_places`,
    or holds a ``manage.py``. A root inside the project (``BASE_DIR /
    "media"``) is fine.
    """
    root = _real(location)
    places = project_places()
    for what, place in places:
        if root == place:
            return f"{what} ({place})"
    for what, place in places:
        if root in place.parents:
            return f"a parent of {what} ({place})"
    if (root / "manage.py").exists():
        return "a Django project's directory (it holds manage.py)"
    return None


def local_root(storage: Any) -> str | None:
    """The directory of the local storage of ``storage`` (a QueuedStorage,
    or the local storage itself), or None when it is not on a file system."""
    local = getattr(storage, "local", storage)
    return str(local.location) if isinstance(local, FileSystemStorage) else None


def project_root_problem(storage: Any) -> str | None:
    """Why the local root of ``storage`` is unsafe to save into or sync
    from, with how to fix it; None when it is fine (or not on a file system)."""
    root = local_root(storage)
    reason = None if root is None else unsafe_root(root)
    if reason is None:
        return None
    return (
        f"The local root {root} is {reason}: uploads would be mixed with the project's "
        f"own files (manage.py, settings, database). {HOW_TO_FIX}"
    )


def _project_files() -> tuple[set[Path], list[Path]]:
    """Real paths of the project's files and of its code directories."""
    files = {place / "manage.py" for _, place in project_places()}
    for database in getattr(settings, "DATABASES", {}).values():
        name = database.get("NAME")
        if "sqlite" in str(database.get("ENGINE", "")) and name and str(name) != ":memory:":
            real = str(_real(name))
            files.update(Path(f"{real}{end}") for end in ("", "-journal", "-wal", "-shm"))
    package = settings_package()
    return files, [package] if package is not None else []


def is_project_file(path: str | os.PathLike[str]) -> bool:
    """Whether the file at ``path`` belongs to the project (a manage.py, the
    settings package, an SQLite database): never adopted by ``sync``."""
    real = _real(path)
    files, directories = _project_files()
    if real in files or real.name == "manage.py":
        return True
    return any(real == top or top in real.parents for top in directories)
