"""Conditional writes: the remote itself refuses to overwrite a file.

S3 and the servers compatible with it that implement conditional writes
(Amazon S3 since 2024, MinIO, Cloudflare R2, moto) accept
``If-None-Match: *`` on ``PutObject`` and ``CompleteMultipartUpload``: the
write fails with ``412 Precondition Failed`` when the key exists, atomically.
The transfer's existence check (a ``HEAD``) leaves a window between the
check and the upload in which another writer could create the name; the
header closes it.

django-storages uploads through boto3's transfer manager, which accepts no
``IfNoneMatch`` argument, so :func:`exclusive` adds the parameter with a
botocore event handler on the storage's client, to the requests that create
the one object being transferred. The setting ``CONDITIONAL_WRITES``:

- ``True`` (default): the header is sent, and the existence check stays (a
  server that ignores the header is still never overwritten, outside the
  race window).
- ``"only"``: the header replaces the existence check on the first attempt:
  one remote request fewer per file. Only for servers known to honour it.
- ``False``: neither header nor change (servers that reject the header).

Other storages are written as before: with the existence check only.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.core.files.storage import Storage

from .conf import conf
from .resolve import import_or_none

#: The operations that create an object, and so take the condition.
OPERATIONS = ("PutObject", "CompleteMultipartUpload")
_HANDLER_ID = "storage_hooks.if-none-match"

# (bucket, key) of the writes in an ``exclusive`` block now, in any thread;
# a count, as two threads may write the same key (both must get the header).
_keys: Counter[tuple[str, str]] = Counter()
_applied: set[tuple[str, str]] = set()
_lock = threading.Lock()


def _s3_client(storage: Storage) -> Any | None:
    """The botocore client that writes for a django-storages S3 storage, if
    it takes the condition; else None."""
    if conf.CONDITIONAL_WRITES is False:
        return None
    s3_storage = import_or_none("storages.backends.s3.S3Storage")
    if s3_storage is None or not isinstance(storage, s3_storage):
        return None
    # _save writes through ``storage.bucket``, built once from the client of
    # whichever thread came first and shared by all threads since.
    client = storage.bucket.meta.client
    model = client.meta.service_model
    # A botocore older than the feature rejects the unknown parameter.
    if not all("IfNoneMatch" in model.operation_model(op).input_shape.members for op in OPERATIONS):
        return None
    return client


def supported(storage: Storage) -> bool:
    """Whether writes to ``storage`` carry ``If-None-Match: *``."""
    return _s3_client(storage) is not None


def replaces_existence_check(storage: Storage) -> bool:
    """Whether the transfer may skip its ``HEAD`` before a first write."""
    return conf.CONDITIONAL_WRITES == "only" and supported(storage)


def _object_key(storage: Any, name: str) -> str:
    """The key django-storages' ``_save`` writes ``name`` under."""
    from storages.utils import clean_name

    return str(storage._normalize_name(clean_name(name)))


def _if_none_match(params: dict[str, Any], **kwargs: Any) -> None:
    target = (params.get("Bucket", ""), params.get("Key", ""))
    with _lock:
        if _keys[target]:
            params["IfNoneMatch"] = "*"
            _applied.add(target)


class Exclusive:
    """What :func:`exclusive` yields: whether the condition is in force, and
    after the write, whether the remote was asked for it."""

    def __init__(self, target: tuple[str, str] | None) -> None:
        self.target = target
        self.applied = False

    def __bool__(self) -> bool:
        return self.target is not None


@contextmanager
def exclusive(storage: Storage, name: str) -> Iterator[Exclusive]:
    """Within the block, the object ``storage`` creates for ``name`` is
    created only if its key is free."""
    client = _s3_client(storage)
    if client is None:
        yield Exclusive(None)
        return
    target = (storage.bucket_name, _object_key(storage, name))  # type: ignore[attr-defined]
    for op in OPERATIONS:  # once per client: botocore ignores a repeated unique_id
        client.meta.events.register(
            f"before-parameter-build.s3.{op}", _if_none_match, unique_id=f"{_HANDLER_ID}.{op}"
        )
    token = Exclusive(target)
    with _lock:
        _keys[target] += 1
    try:
        yield token
    finally:
        with _lock:
            _keys[target] -= 1
            token.applied = target in _applied
            if not _keys[target]:
                del _keys[target]
                _applied.discard(target)


def _error_code(exc: BaseException) -> str:
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return ""
    error = response.get("Error") or {}
    return str(error.get("Code", ""))


def name_taken(exc: BaseException) -> bool:
    """Whether ``exc`` is the remote refusing the write: the key exists."""
    return _error_code(exc) in ("PreconditionFailed", "412")


def not_supported(exc: BaseException) -> bool:
    """Whether ``exc`` is a server that does not implement the condition."""
    return _error_code(exc) in ("NotImplemented", "501")
