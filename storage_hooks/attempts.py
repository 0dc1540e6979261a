"""Collecting what each backend of a FallbackStorage did with one operation,
and the one error a caller gets when none of them could answer."""

from __future__ import annotations

import builtins
from dataclasses import dataclass, field
from typing import Any

from django.core.files.storage import Storage

# "No such file", from any backend (botocore's ClientError codes included):
# one definition for the whole package.
from .s3 import is_missing

__all__ = ["Attempts", "Backend", "NoBackendHasMethod", "ReadOnlyBackendError", "is_missing"]

_ExceptionGroup: Any = getattr(builtins, "ExceptionGroup", None)


class NoBackendHasMethod(AttributeError, NotImplementedError):
    """No backend offers the operation. Also a NotImplementedError, which is
    what Django expects from a storage without ``path()`` and the like."""


class ReadOnlyBackendError(PermissionError):
    """A write or delete would have reached a backend marked read-only."""


@dataclass(frozen=True)
class Backend:
    """One resolved backend and what this FallbackStorage knows of it."""

    index: int
    label: str
    storage: Storage
    read_only: bool

    def __str__(self) -> str:
        return f"backend #{self.index} {self.label}"


@dataclass
class Attempts:
    """What happened to one operation in each backend, and the error to raise
    when no backend could answer."""

    what: str
    write: bool = False
    #: Whether any backend offers the operation at all.
    offered: bool = False
    failures: list[tuple[Backend, Exception]] = field(default_factory=list)
    #: Read-only backends a write skipped.
    protected: list[Backend] = field(default_factory=list)

    def error(self) -> Exception:
        if not self.failures:
            if self.protected:
                return ReadOnlyBackendError(
                    f"{self.what} was refused: it would reach only read-only backends "
                    f"({', '.join(map(str, self.protected))})."
                )
            return NoBackendHasMethod(f"{self.what}: no backend offers this operation.")
        notes = [f"{backend}: {type(exc).__name__}: {exc}" for backend, exc in self.failures]
        notes += [f"{backend}: not tried, it is read-only" for backend in self.protected]
        real = [exc for _, exc in self.failures if self.write or not is_missing(exc)]
        if real:
            error = real[0]  # the first real failure, as the backend raised it
        else:
            error = FileNotFoundError(f"{self.what}: no backend has the file.")
            if _ExceptionGroup is not None:  # Python 3.11+
                error.__cause__ = _ExceptionGroup(self.what, [exc for _, exc in self.failures])
        # BaseException.add_note() is Python 3.11+; the attribute is the same.
        error.__notes__ = [*getattr(error, "__notes__", ()), *notes]
        return error
