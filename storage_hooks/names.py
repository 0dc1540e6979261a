"""File names: one canonical spelling per file, and nothing that leaves a root.

Every public method of the storages passes the names it is given through
:func:`canonical`, so ``a//b.txt``, ``./a/b.txt`` and ``a/b.txt`` are one file
with one ledger row, and ``pathlib.Path`` names work wherever strings do.
"""

from __future__ import annotations

import os
from pathlib import PurePosixPath
from typing import Any

from django.core.exceptions import SuspiciousFileOperation

#: The longest file name the ledger records.
NAME_MAX_LENGTH = 1024

#: The longest storage key the ledger records (``manage.py check`` refuses
#: longer ones).
KEY_MAX_LENGTH = 100


def canonical(name: Any) -> str:
    """The canonical spelling of ``name``: forward slashes, no empty or
    ``.`` components. Refuses (``SuspiciousFileOperation``) what could reach
    outside a storage's root: ``..`` components, absolute names, NUL bytes,
    names without a file name (``""``, ``"a/"``)."""
    if isinstance(name, os.PathLike):
        name = os.fspath(name)
    if not isinstance(name, str):
        raise SuspiciousFileOperation(f"A file name must be a string or a path, not {name!r}.")
    if "\x00" in name:
        raise SuspiciousFileOperation(f"The file name {name!r} contains a null byte.")
    if (
        name
        and name[0] != "/"
        and name[-1] not in "./"
        and ".." not in name
        and "//" not in name
        and "./" not in name
        and "\\" not in name
    ):
        return name  # the common case, on hot paths such as url(): already canonical
    posix = name.replace("\\", "/")
    if posix.rstrip(".").endswith("/") or posix.split("/")[-1] in ("", ".", ".."):
        raise SuspiciousFileOperation(f"Could not derive file name from {name!r}.")
    path = PurePosixPath(posix)
    if path.is_absolute() or ".." in path.parts:
        raise SuspiciousFileOperation(f"Detected path traversal attempt in {name!r}.")
    return str(path)


#: The name round 1 gave this function; it canonicalises too.
check_name = canonical
