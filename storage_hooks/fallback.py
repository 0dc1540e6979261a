"""FallbackStorage: several storages tried in order, as one Storage.

The classic use is a development site that reads the production bucket and
writes to its own disk: ``FallbackStorage(["local", "production"],
read_only=["production"])``. See ``docs/fallback.rst``.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable, Sequence
from pathlib import PurePath
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.files import File
from django.core.files.storage import Storage
from django.utils.deconstruct import deconstructible
from django.utils.module_loading import import_string

from .attempts import (
    Attempts,
    Backend,
    NoBackendHasMethod,
    ReadOnlyBackendError,
    is_missing,
)
from .lru import UrlMemory
from .naming import with_taken
from .resolve import build_storage

__all__ = ["FallbackStorage", "NoBackendHasMethod", "ReadOnlyBackendError", "is_missing"]

#: What FallbackStorage._ask returns for a backend that does not offer an
#: operation, and for one that failed (the error is in the Attempts).
SKIPPED = object()
FAILED = object()


def _first_answer(method: str) -> Callable[..., Any]:
    """A method answered by the first backend that succeeds."""

    def answer(self: FallbackStorage, name: str) -> Any:
        return self._first(method, _str(name))[1]

    answer.__name__ = answer.__qualname__ = method
    answer.__doc__ = f"``{method}(name)`` of the first backend that answers."
    return answer


@deconstructible
class FallbackStorage(Storage):
    """A Storage that asks several storages in order.

    ``backends``: STORAGES aliases, dotted paths, Storage classes or
    instances, or ``{"BACKEND": ..., "OPTIONS": {...}}`` dicts; default
    ``settings.FALLBACK_STORAGES``. ``read_only``: backends (by index or by
    the alias/path written in ``backends``) that are never written to or
    deleted from. ``url_cache_size``/``url_cache_ttl``: how many names
    ``url()`` remembers the backend of, and for how many seconds.
    """

    def __init__(
        self,
        backends: Sequence[Any] | None = None,
        *,
        read_only: Iterable[int | str] = (),
        url_cache_size: int = 1024,
        url_cache_ttl: float | None = 60.0,
    ) -> None:
        if backends is None:
            backends = getattr(settings, "FALLBACK_STORAGES", None)
        if isinstance(backends, (str, dict, Storage, type)):
            raise ImproperlyConfigured(
                f"FallbackStorage needs a list of backends, not a single one: {backends!r}."
            )
        if not backends:
            raise ImproperlyConfigured(
                "FallbackStorage has no backends: pass backends=[...] or set "
                "FALLBACK_STORAGES (a list of STORAGES aliases or dotted paths)."
            )
        self._specs = list(backends)
        self._read_only = frozenset(self._index_of(ref) for ref in read_only)
        if not isinstance(url_cache_size, int) or url_cache_size < 0:
            raise ImproperlyConfigured(f"url_cache_size must be an int >= 0: {url_cache_size!r}")
        if url_cache_ttl is not None and not url_cache_ttl >= 0:
            raise ImproperlyConfigured(f"url_cache_ttl must be >= 0 or None: {url_cache_ttl!r}")
        self._memory = UrlMemory(url_cache_size, url_cache_ttl)
        self._build_lock = threading.Lock()
        self._entries: list[Backend] | None = None

    def _index_of(self, ref: int | str) -> int:
        count = len(self._specs)
        if isinstance(ref, int) and not isinstance(ref, bool) and -count <= ref < count:
            return ref % count
        labels = [_label(spec) for spec in self._specs]
        if isinstance(ref, str) and ref in labels:
            return labels.index(ref)
        raise ImproperlyConfigured(
            f"read_only={ref!r} names no backend; use an index below {count} or one of "
            f"{', '.join(map(repr, labels))}."
        )

    def __reduce__(self) -> tuple[Any, ...]:
        # Rebuild from the constructor's arguments, and each deconstructible
        # backend instance from its own: a copy has the configuration, not
        # the state (locks, connections, the url memory).
        # Private Django API: @deconstructible stores the arguments as given
        # in _constructor_args, and deconstruct() returns them with the
        # backends as given too, but there is no public way to read them
        # before deconstruct() resolves the class path. Checked against
        # Django 5.2, 6.0 and 6.1.
        args, kwargs = self._constructor_args  # type: ignore[attr-defined]
        if args:
            args = ([_Remade.wrap(spec) for spec in args[0]], *args[1:])
        elif kwargs.get("backends") is not None:
            kwargs = {**kwargs, "backends": [_Remade.wrap(s) for s in kwargs["backends"]]}
        return (_construct, (type(self), args, kwargs))

    def __repr__(self) -> str:
        parts = [
            _label(spec) + (" (read-only)" if index in self._read_only else "")
            for index, spec in enumerate(self._specs)
        ]
        return f"<{type(self).__name__} [{', '.join(parts)}]>"

    # -- backends --------------------------------------------------------

    @property
    def entries(self) -> list[Backend]:
        """The resolved backends, built on first use, once."""
        if self._entries is None:
            with self._build_lock:
                if self._entries is None:
                    self._entries = [
                        Backend(i, _label(spec), _build(spec, i), i in self._read_only)
                        for i, spec in enumerate(self._specs)
                    ]
        return self._entries

    @property
    def backends(self) -> list[Storage]:
        """The resolved Storage instances, in order."""
        return [entry.storage for entry in self.entries]

    def forget_url(self, name: str | None = None) -> None:
        """Forget where ``name`` (or every name) was found by ``url()``."""
        self._memory.forget(name)

    def _ask(self, attempts: Attempts, backend: Backend, method: str, *args: Any) -> Any:
        """``backend.method(*args)``; ``SKIPPED`` when the backend does not
        offer it (no such method, or NotImplementedError), ``FAILED`` after
        recording any other error in ``attempts``."""
        func = getattr(backend.storage, method, None)
        if func is None:
            return SKIPPED
        attempts.offered = True
        try:
            return func(*args)
        except NotImplementedError:
            return SKIPPED
        except Exception as exc:
            attempts.failures.append((backend, exc))
            return FAILED

    def _first(
        self,
        method: str,
        name: str,
        *args: Any,
        write: bool = False,
        retry: Callable[[], Any] | None = None,
    ) -> tuple[Backend, Any]:
        """Call ``method(name, *args)`` on each backend in turn; return the
        first answer with the backend that gave it. ``retry`` is called
        before trying again after a failure."""
        attempts = Attempts(f"{method}({name!r})", write=write)
        for backend in self.entries:
            if write and backend.read_only:
                attempts.protected.append(backend)
                continue
            if retry is not None and attempts.failures:
                try:
                    retry()
                except Exception as exc:  # e.g. content that cannot seek back
                    attempts.failures.append((backend, exc))
                    break
            result = self._ask(attempts, backend, method, name, *args)
            if result is not SKIPPED and result is not FAILED:
                return backend, result
        raise attempts.error()

    # -- reading: the first backend that answers -------------------------

    def _open(self, name: str, mode: str = "rb") -> File:
        name = _str(name)
        writing = any(flag in mode for flag in "wax+")
        if writing:
            self._memory.forget(name)
        return self._first("open", name, mode, write=writing)[1]

    size = _first_answer("size")
    get_accessed_time = _first_answer("get_accessed_time")
    get_created_time = _first_answer("get_created_time")
    get_modified_time = _first_answer("get_modified_time")
    get_valid_name = _first_answer("get_valid_name")

    def path(self, name: str) -> str:
        """The path in the first backend that has the file, else the first
        path any backend gives (a backend's path() answers for any name)."""
        name = _str(name)
        attempts = Attempts(f"path({name!r})")
        first = None
        for backend in self.entries:
            found = self._ask(attempts, backend, "path", name)
            if found is SKIPPED or found is FAILED:
                continue
            first = found if first is None else first
            if self._ask(attempts, backend, "exists", name) is True:
                return found
        if first is None:
            raise attempts.error()
        return first

    def exists(self, name: str) -> bool:
        """True if any backend has the file. A backend that fails is an
        error, unless another one has the file."""
        name = _str(name)
        return self._where(name, f"exists({name!r})") is not None

    def _where(self, name: str, what: str) -> Backend | None:
        """The first backend that has ``name``, or None if none has it."""
        attempts = Attempts(what)
        for backend in self.entries:
            if self._ask(attempts, backend, "exists", name) is True:
                return backend
        if attempts.failures or not attempts.offered:
            raise attempts.error()
        return None

    def listdir(self, path: str) -> tuple[list[str], list[str]]:
        """The union of every backend's listing (a directory missing in some
        backends is empty there)."""
        path = _str(path)
        attempts = Attempts(f"listdir({path!r})")
        dirs: dict[str, None] = {}
        files: dict[str, None] = {}
        listed = False
        for backend in self.entries:
            result = self._ask(attempts, backend, "listdir", path)
            if result is SKIPPED or result is FAILED:
                continue
            listed = True
            dirs.update(dict.fromkeys(result[0]))
            files.update(dict.fromkeys(result[1]))
        if not listed or any(not is_missing(exc) for _, exc in attempts.failures):
            raise attempts.error()
        return sorted(dirs), sorted(files)

    def url(self, name: str | None) -> str:
        """The url from the first backend that has the file, or from the
        last backend; where a name was found is remembered (see the docs)."""
        if name is None:
            return self.entries[-1].storage.url(name)
        name = _str(name)
        index = self._memory.get(name)
        if index is None:
            backend = self._where(name, f"url({name!r})")
            index = -1 if backend is None else backend.index
            self._memory.put(name, index)
        return self.entries[index].storage.url(name)

    # -- naming: the writer's own rules, free in every backend -----------

    def _writer(self) -> Backend | None:
        """The backend a save goes to first: the first writable one that
        can save."""
        for backend in self.entries:
            if not backend.read_only and hasattr(backend.storage, "_save"):
                return backend
        return None

    def get_available_name(self, name: str, max_length: int | None = None) -> str:
        """A name free in every backend, chosen by the rules of the backend
        that will be written (the first writable one). If that backend
        overwrites (``allow_overwrite=True``, S3's ``file_overwrite``), the
        name is kept when no *other* backend has it: a file of another
        backend is never shadowed."""
        name = _str(name)
        writer = self._writer()
        if writer is None:
            return super().get_available_name(name, max_length=max_length)
        naming = with_taken(writer.storage, self.exists)
        chosen = naming.get_available_name(name, max_length=max_length)
        if not any(b.storage.exists(chosen) for b in self.entries if b is not writer):
            return chosen
        # The writer would overwrite a name another backend has: pick
        # another one, free everywhere, with Django's own rules.
        return _AnyBackend(self).get_available_name(name, max_length=max_length)

    def get_alternative_name(self, file_root: str, file_ext: str) -> str:
        """The writer's alternative for a taken name."""
        writer = self._writer()
        if writer is None:
            return super().get_alternative_name(file_root, file_ext)
        return writer.storage.get_alternative_name(file_root, file_ext)

    # -- writing: never to a read-only backend ---------------------------

    def _save(self, name: str, content: Any) -> str:
        """Write to the first writable backend that accepts the file, under
        ``name`` (``save()`` chose it free in every backend)."""
        name = _str(name)
        self._memory.forget(name)
        backend, saved = self._first("_save", name, content, write=True, retry=_rewind(content))
        self._memory.put(saved, backend.index)
        return saved

    def delete(self, name: str) -> None:
        """Delete the file from the first backend that has it; a name in no
        backend is not an error. A backend that cannot tell whether it has
        the file (an error other than "not found") stops the search and its
        error is raised: a copy it shadows is never deleted in its place.
        Refused if the backend that has it is read-only."""
        if not name:
            raise ValueError("The name must be given to delete().")
        name = _str(name)
        self._memory.forget(name)
        attempts = Attempts(f"delete({name!r})")
        for backend in self.entries:
            found = self._ask(attempts, backend, "exists", name)
            if found is FAILED:
                if is_missing(attempts.failures[-1][1]):
                    continue
                raise attempts.error()
            if found is not True:  # False, or a backend without exists()
                continue
            if backend.read_only:
                raise ReadOnlyBackendError(
                    f"delete({name!r}) was refused: the file is in the read-only {backend}."
                )
            backend.storage.delete(name)
            return
        if not attempts.offered:
            raise attempts.error()


class _AnyBackend(Storage):
    """Django's default naming, where a name is taken if any backend of a
    FallbackStorage has it."""

    def __init__(self, fallback: FallbackStorage) -> None:
        self._fallback = fallback

    def exists(self, name: str) -> bool:
        return self._fallback.exists(name)


def _str(name: Any) -> Any:
    """A ``pathlib`` name as the string a backend and the url memory expect
    (other names, None included, as given)."""
    return os.fspath(name) if isinstance(name, PurePath) else name


def _rewind(content: Any) -> Callable[[], Any]:
    """Before a retry in the next backend, start the content over."""
    return lambda: content.seek(0)


def _label(spec: Any) -> str:
    if isinstance(spec, str):
        return spec
    if isinstance(spec, dict):
        return str(spec.get("BACKEND"))
    cls = spec if isinstance(spec, type) else type(spec)
    return f"{cls.__module__}.{cls.__qualname__}"


def _build(spec: Any, index: int) -> Storage:
    role = f"fallback backend #{index}"
    if isinstance(spec, dict):
        unknown = set(spec) - {"BACKEND", "OPTIONS"}
        if unknown or "BACKEND" not in spec:
            raise ImproperlyConfigured(
                f"The {role} {spec!r} needs a 'BACKEND' and may have 'OPTIONS', nothing else."
            )
        return build_storage(spec["BACKEND"], spec.get("OPTIONS"), role=role)
    return build_storage(spec, None, role=role)


class _Remade:
    """Pickles a deconstructible storage instance as its constructor call
    (a pickled S3Storage, for one, cannot download with every boto3)."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage

    @classmethod
    def wrap(cls, spec: Any) -> Any:
        return cls(spec) if isinstance(spec, Storage) and hasattr(spec, "deconstruct") else spec

    def __reduce__(self) -> tuple[Any, ...]:
        path, args, kwargs = self.storage.deconstruct()  # type: ignore[attr-defined]
        return (_construct, (path, args, kwargs))


def _construct(cls: type | str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    factory = import_string(cls) if isinstance(cls, str) else cls
    return factory(*args, **kwargs)
