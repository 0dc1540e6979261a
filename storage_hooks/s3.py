"""What the transfer asks of an S3 remote beyond the Storage API.

For django-storages' ``S3Storage`` (checked against django-storages 1.14,
boto3/botocore 1.35-1.44 and s3transfer 0.10-0.19):

* **Never overwrite**: the object is created with ``If-None-Match: *``
  (``PutObject``, and ``CompleteMultipartUpload`` for big files), so S3
  refuses the write atomically when the key exists.
* **Integrity at no extra request**: a single ``PutObject`` carries the
  ledger's SHA-256 (``ChecksumSHA256``), so a server that validates
  checksums refuses other bytes; and the ``ETag`` the server reports (the
  MD5 of what it received, per part for multipart uploads) is compared with
  the MD5 computed while the bytes were read. Where the ETag is no MD5
  (SSE-KMS, some servers), the transfer reads the copy back instead.
* **Delete only our copy**: ``DeleteObject`` with ``If-Match: <our ETag>``.

django-storages uploads through boto3's transfer manager, which takes no
``IfNoneMatch`` argument (s3transfer 0.19), so the parameters are added by a
botocore ``before-parameter-build`` handler on the storage's client, to the
requests for the one object being written; an ``after-call`` handler
collects the ETag the server answered.
"""

from __future__ import annotations

import base64
import hashlib
import mimetypes
import os
import secrets
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from django.core.files.storage import Storage

from .conf import conf
from .resolve import import_or_none

#: The operations that create an object, and so take the conditions.
CREATES = ("PutObject", "CompleteMultipartUpload")
_HANDLER_ID = "storage_hooks.s3"
_TARGET = "storage_hooks_target"

#: Codes of S3-like services that mean "no such object".
MISSING_CODES = frozenset({"404", "NoSuchKey", "NotFound"})
#: Codes that mean a checksum did not match what the server received.
CHECKSUM_CODES = frozenset({"BadDigest", "InvalidDigest", "XAmzContentChecksumMismatch"})


def as_s3(storage: Storage) -> Any | None:
    """``storage`` if it is django-storages' S3Storage, else None."""
    s3_storage = import_or_none("storages.backends.s3.S3Storage")
    if s3_storage is None or not isinstance(storage, s3_storage):
        return None
    return storage


def error_code(exc: BaseException) -> str:
    """The error code of a botocore ``ClientError`` ("" for other errors)."""
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return ""
    error = response.get("Error") or {}
    return str(error.get("Code", ""))


def http_status(exc: BaseException) -> int | None:
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return None
    status = (response.get("ResponseMetadata") or {}).get("HTTPStatusCode")
    return int(status) if status is not None else None


def name_taken(exc: BaseException) -> bool:
    """Whether ``exc`` is the remote refusing a write: the key exists."""
    return error_code(exc) in ("PreconditionFailed", "412")


def not_supported(exc: BaseException) -> bool:
    """Whether ``exc`` is a server that does not implement a condition."""
    return error_code(exc) in ("NotImplemented", "501")


def checksum_refused(exc: BaseException) -> bool:
    return error_code(exc) in CHECKSUM_CODES


def is_missing(exc: BaseException) -> bool:
    """Whether a storage's error means "there is no such file"."""
    if isinstance(exc, FileNotFoundError):
        return True
    code = error_code(exc)
    return code in MISSING_CODES or (http_status(exc) == 404 and code != "NoSuchBucket")


def client(storage: Any) -> Any:
    # _save writes through ``storage.bucket``, built once from the client of
    # whichever thread came first and shared by all threads since.
    return storage.bucket.meta.client


def object_key(storage: Any, name: str) -> str:
    """The key django-storages' ``_save`` writes ``name`` under: its private
    ``_normalize_name`` (there is no public way to ask; checked against
    django-storages 1.14.6 with boto3/botocore 1.44)."""
    from storages.utils import clean_name

    return str(storage._normalize_name(clean_name(name)))


def saves_as_s3storage(storage: Any) -> bool:
    """Whether ``storage`` writes with django-storages' own ``_save`` (a
    subclass may write elsewhere, or do more, in its own: then that is used)."""
    from storages.backends.s3 import S3Storage

    return type(storage)._save is S3Storage._save


def exists(storage: Any, name: str) -> bool:
    """``storage.exists(name)``, asked through the client the storage's
    writes share. django-storages' own ``exists`` asks through a boto3
    resource of the calling thread, which it builds on the thread's first
    call (tens of milliseconds of CPU): in every thread of a worker's batch.
    A subclass with an ``exists`` of its own is asked through it."""
    from botocore.exceptions import ClientError
    from storages.backends.s3 import S3Storage

    if type(storage).exists is not S3Storage.exists:
        return bool(storage.exists(name))
    from s3transfer.constants import ALLOWED_DOWNLOAD_ARGS

    key = object_key(storage, name)
    # The parameters django-storages' exists sends with it (SSE-C keys...).
    params = {
        k: v for k, v in storage.get_object_parameters(key).items() if k in ALLOWED_DOWNLOAD_ARGS
    }
    try:
        client(storage).head_object(Bucket=storage.bucket_name, Key=key, **params)
    except ClientError as err:
        if err.response["ResponseMetadata"]["HTTPStatusCode"] == 404:
            return False
        raise
    return True


def put_small(storage: Any, name: str, content: Any) -> str:
    """Write ``content`` (a seekable binary file below the multipart
    threshold) under ``name`` with
    one ``PutObject``, under the key and with the write parameters
    django-storages' ``_save`` would use (its private
    ``_get_write_parameters``: content type, ACL, object parameters; checked
    against django-storages 1.14.6), but without the transfer manager that
    ``_save`` starts, and stops, with its threads for every file. Returns the
    name, as ``_save`` does. Not for names django-storages gzips."""
    from storages.utils import clean_name

    key = object_key(storage, name)
    params = storage._get_write_parameters(key, content)
    content.seek(0)
    # The file itself as the body: botocore reads it in bounded blocks.
    client(storage).put_object(Bucket=storage.bucket_name, Key=key, Body=content, **params)
    return str(clean_name(name))


def _has_parameter(s3_client: Any, operation: str, parameter: str) -> bool:
    model = s3_client.meta.service_model.operation_model(operation)
    return parameter in model.input_shape.members


def conditional_writes(storage: Storage) -> bool:
    """Whether writes to ``storage`` carry ``If-None-Match: *``."""
    s3 = as_s3(storage)
    if s3 is None or conf.CONDITIONAL_WRITES is False:
        return False
    # A botocore older than the feature rejects the unknown parameter.
    return all(_has_parameter(client(s3), op, "IfNoneMatch") for op in CREATES)


def gzips(storage: Any, name: str) -> bool:
    """Whether django-storages would compress ``name`` on upload (then the
    remote holds other bytes than the local copy, by design)."""
    if not getattr(storage, "gzip", False):
        return False
    content_type = mimetypes.guess_type(name)[0] or getattr(
        storage, "default_content_type", "application/octet-stream"
    )
    return content_type in getattr(storage, "gzip_content_types", ())


# -- one write ----------------------------------------------------------------


@dataclass
class Write:
    """What :func:`write` sets for one object, and what the server answered."""

    target: tuple[str, str]
    if_none_match: bool
    checksum_sha256: str | None
    etag: str = ""
    conditioned: bool = False
    #: Called as a multipart upload is about to be completed: every part
    #: has been sent and the transfer manager holds none of them any more.
    parts_sent: Callable[[], None] | None = None


_writes: dict[tuple[str, str], Write] = {}
_lock = threading.Lock()


class _Key:
    """The writes of one object in this process, one at a time (see
    :func:`hold`)."""

    def __init__(self) -> None:
        self.lock = threading.RLock()  # write() within hold(), in one thread
        self.users = 0


_keys: dict[tuple[str, str], _Key] = {}


def _after_fork() -> None:
    """A forked child writes nothing of its parent's (and its locks are free)."""
    global _lock
    _lock = threading.Lock()
    _writes.clear()
    _keys.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)


@contextmanager
def hold(storage: Any, name: str) -> Iterator[bool]:
    """Within the block, no other thread of this process writes the object
    of ``name`` (through :func:`write`, or another ``hold``); yields whether
    it had to wait for one. The write handlers find a write by its bucket
    and key, so two at once (a file claimed again while its first attempt
    still runs, two storages on one location) would take each other's
    condition, ETag or turn, and the existence check before a write must
    not be overtaken by another write of the name."""
    target = (storage.bucket_name, object_key(storage, name))
    with _lock:
        key = _keys.setdefault(target, _Key())
        key.users += 1
    try:
        waited = not key.lock.acquire(blocking=False)
        if waited:
            key.lock.acquire()
        try:
            yield waited
        finally:
            key.lock.release()
    finally:
        with _lock:
            key.users -= 1
            if not key.users and _keys.get(target) is key:
                del _keys[target]


def _before(params: dict[str, Any], model: Any, context: dict[str, Any], **kwargs: Any) -> None:
    target = (params.get("Bucket", ""), params.get("Key", ""))
    with _lock:
        current = _writes.get(target)
    if current is None:
        return
    context[_TARGET] = target
    if current.if_none_match and model.name in CREATES:
        params["IfNoneMatch"] = "*"
        current.conditioned = True
    if current.checksum_sha256 and model.name == "PutObject":
        params["ChecksumSHA256"] = current.checksum_sha256
    if current.parts_sent is not None and model.name == "CompleteMultipartUpload":
        current.parts_sent()


def _after(parsed: dict[str, Any], model: Any, context: dict[str, Any], **kwargs: Any) -> None:
    target = context.get(_TARGET)
    if target is None:
        return
    with _lock:
        current = _writes.get(target)
    if current is not None and isinstance(parsed, dict) and parsed.get("ETag"):
        current.etag = str(parsed["ETag"])


#: Set on a botocore client once :func:`_install` registered its handlers.
_INSTALLED = "_storage_hooks_write_handlers"


def _install(s3_client: Any) -> None:
    if getattr(s3_client, _INSTALLED, False):
        return  # registering again costs as much, for nothing
    events = s3_client.meta.events
    # Once per client: botocore ignores a repeated unique_id.
    for op in CREATES:
        events.register(
            f"before-parameter-build.s3.{op}", _before, unique_id=f"{_HANDLER_ID}.b.{op}"
        )
        events.register(f"after-call.s3.{op}", _after, unique_id=f"{_HANDLER_ID}.a.{op}")
    setattr(s3_client, _INSTALLED, True)


@contextmanager
def write(
    storage: Any,
    name: str,
    *,
    exclusive: bool,
    sha256_hex: str | None,
    parts_sent: Callable[[], None] | None = None,
) -> Iterator[Write]:
    """Within the block, the object ``storage`` creates for ``name`` is
    created only if its key is free (``exclusive``) and, in one request,
    carries the SHA-256 (``sha256_hex``) for the server to check.
    ``parts_sent`` is called when a multipart upload of it is completed.
    Another write of the same object in this process waits for the block
    to end (:func:`hold`)."""
    s3_client = client(storage)
    _install(s3_client)
    checksum = None
    if sha256_hex and _has_parameter(s3_client, "PutObject", "ChecksumSHA256"):
        checksum = base64.b64encode(bytes.fromhex(sha256_hex)).decode()
    token = Write(
        target=(storage.bucket_name, object_key(storage, name)),
        if_none_match=exclusive,
        checksum_sha256=checksum,
        parts_sent=parts_sent,
    )
    with hold(storage, name):
        with _lock:
            _writes[token.target] = token
        try:
            yield token
        finally:
            with _lock:
                if _writes.get(token.target) is token:
                    del _writes[token.target]


# -- proof by the ETag --------------------------------------------------------


#: The multipart part size of :func:`bounded_transfer_config` (boto3's).
PART_SIZE = 8 * 2**20
#: How many parts of one upload it reads into memory at most.
PARTS_IN_MEMORY = 3


def bounded_transfer_config(use_threads: bool) -> Any:
    """A ``TransferConfig`` that keeps an upload's memory bounded: parts of
    8 MiB (boto3's size), at most three of them read into memory at once
    (boto3's default keeps up to ten). Concurrency and the multipart threshold
    stay boto3's."""
    from boto3.s3.transfer import TransferConfig

    config = TransferConfig(multipart_chunksize=PART_SIZE, use_threads=use_threads)
    config.max_in_memory_upload_chunks = PARTS_IN_MEMORY  # not a constructor argument
    return config


def bound_memory(storage: Storage) -> None:
    """Give an ``S3Storage`` whose ``transfer_config`` is boto3's default
    (django-storages makes one when none is configured) the bounded one, so
    that a worker moving a big file grows by tens of MiB, not by a hundred
    and more. A ``transfer_config`` that differs from the default is the
    site's own and is kept."""
    from boto3.s3.transfer import TransferConfig

    remote_s3 = as_s3(storage)
    if remote_s3 is None:
        return
    use_threads = getattr(remote_s3, "use_threads", True)
    config = remote_s3.transfer_config
    # TransferConfig keeps its arguments as attributes (boto3 1.35-1.44).
    if config is None or vars(config) == vars(TransferConfig(use_threads=use_threads)):
        remote_s3.transfer_config = bounded_transfer_config(use_threads)


class PartHasher:
    """MD5s of the bytes as S3 computes its ETag: of the whole body for a
    single ``PutObject``, of each part (then of their digests) for a
    multipart upload cut the way boto3's transfer manager cuts it."""

    def __init__(self, storage: Any, size: int) -> None:
        from boto3.s3.transfer import TransferConfig
        from s3transfer.utils import ChunksizeAdjuster

        config = storage.transfer_config or TransferConfig()
        self.multipart = size >= config.multipart_threshold
        self.part_size = (
            ChunksizeAdjuster().adjust_chunksize(config.multipart_chunksize, size)
            if self.multipart
            else 0
        )
        self._whole = hashlib.md5(usedforsecurity=False)
        self._parts: list[bytes] = []
        self._part = hashlib.md5(usedforsecurity=False)
        self._in_part = 0

    def update(self, data: bytes) -> None:
        if not self.multipart:
            self._whole.update(data)
            return
        view = memoryview(data)
        while view:
            take = min(len(view), self.part_size - self._in_part)
            self._part.update(view[:take])
            self._in_part += take
            view = view[take:]
            if self._in_part == self.part_size:
                self._parts.append(self._part.digest())
                self._part = hashlib.md5(usedforsecurity=False)
                self._in_part = 0

    def etag(self) -> str:
        if not self.multipart:
            return f'"{self._whole.hexdigest()}"'
        parts = list(self._parts)
        if self._in_part or not parts:
            parts.append(self._part.digest())
        combined = hashlib.md5(b"".join(parts), usedforsecurity=False).hexdigest()
        return f'"{combined}-{len(parts)}"'


def etag_is_md5(etag: str) -> bool:
    """Whether an ETag has the form of an MD5 (with ``-N`` for multipart):
    not the case with SSE-KMS, SSE-C, or servers of their own kind."""
    value = etag.strip('"')
    digest, _, parts = value.partition("-")
    return (
        len(digest) == 32
        and all(c in "0123456789abcdef" for c in digest.lower())
        and (not parts or parts.isdigit())
    )


# -- deleting -----------------------------------------------------------------


def delete_if_etag(storage: Any, name: str, etag: str) -> bool:
    """Delete the object of ``name`` only if its ETag is ``etag`` (a
    conditional ``DeleteObject`` where the server honours ``If-Match``; a
    ``HeadObject`` comparison first in any case). True if deleted."""
    s3_client = client(storage)
    key = object_key(storage, name)
    try:
        head = s3_client.head_object(Bucket=storage.bucket_name, Key=key)
    except Exception as exc:
        if is_missing(exc):
            return False
        raise
    if str(head.get("ETag", "")) != etag:
        return False
    params: dict[str, Any] = {"Bucket": storage.bucket_name, "Key": key}
    if _has_parameter(s3_client, "DeleteObject", "IfMatch"):
        params["IfMatch"] = etag
    try:
        s3_client.delete_object(**params)
    except Exception as exc:
        if name_taken(exc) or is_missing(exc):
            return False
        if not_supported(exc):
            params.pop("IfMatch", None)
            s3_client.delete_object(**params)
            return True
        raise
    return True


# -- what a server honours ----------------------------------------------------


@dataclass(frozen=True)
class Capabilities:
    """What an S3 server was found to honour (by :func:`probe`)."""

    #: A ``PutObject`` with a wrong ``ChecksumSHA256`` is refused.
    validates_checksums: bool
    #: A ``PutObject`` with ``If-None-Match: *`` on an existing key is refused.
    honours_if_none_match: bool


_capabilities: dict[tuple[str, str], Capabilities] = {}


def probe(storage: Any) -> Capabilities:
    """Find out, once per process and bucket, what the server honours, by
    writing a small probe object (under the storage's location, a name no
    upload can have) and removing it."""
    endpoint = str(getattr(storage, "endpoint_url", "") or "")
    cache_key = (endpoint, storage.bucket_name)
    found = _capabilities.get(cache_key)
    if found is not None:
        return found
    s3_client = client(storage)
    key = object_key(storage, f".storage_hooks-probe-{secrets.token_hex(8)}")
    bucket = storage.bucket_name
    wrong = base64.b64encode(hashlib.sha256(b"not the body").digest()).decode()
    try:
        s3_client.put_object(Bucket=bucket, Key=key, Body=b"probe", ChecksumSHA256=wrong)
    except Exception as exc:
        if not (checksum_refused(exc) or http_status(exc) == 400):
            raise
        validates = True
    else:
        validates = False
    try:
        s3_client.put_object(Bucket=bucket, Key=key, Body=b"probe")
        try:
            s3_client.put_object(Bucket=bucket, Key=key, Body=b"probe", IfNoneMatch="*")
        except Exception as exc:
            honours = name_taken(exc)
            if not honours and not not_supported(exc):
                raise
        else:
            honours = False
    finally:
        s3_client.delete_object(Bucket=bucket, Key=key)
    found = _capabilities[cache_key] = Capabilities(validates, honours)
    return found


def forget_capabilities() -> None:
    """Forget what :func:`probe` found (tests)."""
    _capabilities.clear()
