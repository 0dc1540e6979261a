"""Where the Django project lives, so that no storage mistakes it for media.

A local storage whose root is the working directory, the project's directory
or one of their ancestors would write uploads among the project's files, and
``storage_hooks sync`` would take ``manage.py``, the settings and the
database for uploads. :func:`unsafe_root` tells such a root.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from django.conf import settings


def project_places() -> list[tuple[str, Path]]:
    """``(what, directory)`` of each place that holds the project: the
    working directory, the directory of the running ``manage.py``, the
    settings module's package and ``settings.BASE_DIR``."""
    places = [("the working directory", Path.cwd())]
    script = Path(sys.argv[0]) if sys.argv and sys.argv[0] else None
    if script is not None and script.name == "manage.py":
        places.append(("the directory of manage.py", script.parent))
    name = getattr(settings, "SETTINGS_MODULE", None) or os.environ.get("DJANGO_SETTINGS_MODULE")
    module = sys.modules.get(name or "")
    if module is not None and getattr(module, "__file__", None):
        what = f"the package of the settings module {module.__name__}"
        places.append((what, Path(str(module.__file__)).parent))
    base_dir = getattr(settings, "BASE_DIR", None)
    if base_dir:
        places.append(("settings.BASE_DIR", Path(base_dir)))
    return places


def unsafe_root(location: str | os.PathLike[str]) -> str | None:
    """Why ``location`` must not be a local storage's root, or ``None``.

    A root is unsafe when it is (or contains) one of :func:`project_places`,
    or holds a ``manage.py``. A root inside the project (``BASE_DIR /
    "media"``) is fine.
    """
    root = Path(location).resolve()
    for what, place in project_places():
        place = place.resolve()
        if root == place:
            return f"{what} ({place})"
        if root in place.parents:
            return f"a parent of {what} ({place})"
    if (root / "manage.py").exists():
        return "a Django project's directory (it holds manage.py)"
    return None
