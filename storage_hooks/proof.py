"""Proving that the remote copy is the file the ledger describes.

A transfer counts only once the remote copy is proven equal to the ledger's
SHA-256. How (the ``PROOF`` setting):

``"auto"`` (default), the strongest proof the remote offers, at no extra
request where it can:

* S3, a server that validates checksums: the ``PutObject`` carried the
  ledger's SHA-256 and the server accepted it (``"checksum"``);
* S3, otherwise: the ETag the server reported (the MD5 of what it received,
  per part for multipart uploads) equals the MD5 of the bytes sent, whose
  SHA-256 equals the ledger's (``"etag"``);
* S3 with an ETag that is no MD5 (SSE-KMS, ...) and every other storage:
  the copy is read back and hashed (``"readback"``).

``"readback"``: always read the copy back and hash it.

``"size"``: compare sizes only. An explicit opt-out, for remotes that cannot
be read back at a sensible cost; a remote that stores other bytes of the
same size then goes unnoticed.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

from django.core.files.storage import Storage

from . import s3
from .conf import conf
from .exceptions import VerificationError
from .localfiles import CHUNK_SIZE

if TYPE_CHECKING:
    from .models import StoredFile

MODES = ("auto", "readback", "size")


def mode() -> str:
    value = conf.PROOF
    return value if value in MODES else "auto"


def read_back(remote: Storage, name: str) -> tuple[str, int]:
    """SHA-256 (hex) and size of the remote copy, streamed."""
    sha = hashlib.sha256()
    size = 0
    with remote.open(name, "rb") as fh:
        # Not iter(..., b""): a remote that ignores "rb" ends with "", not b"".
        while chunk := fh.read(CHUNK_SIZE):
            data = chunk.encode() if isinstance(chunk, str) else chunk
            sha.update(data)
            size += len(data)
    return sha.hexdigest(), size


def prove(
    remote: Storage,
    row: StoredFile,
    *,
    write: s3.Write | None = None,
    sent_etag: str | None = None,
    validated: bool = False,
) -> tuple[str, str]:
    """Raise ``VerificationError`` unless the remote copy of ``row.name`` is
    proven equal to ``row.checksum``/``row.size`` (the bytes sent were
    checked against the ledger before). Returns ``(proof, identity)``:
    how it was proven, and what identifies the copy (its ETag on S3, else
    ``sha256:<hex>``) so that only this copy is ever deleted."""
    name = row.name
    how = mode()
    if how == "size":
        size = remote.size(name)
        if size != row.size:
            raise VerificationError(
                f"The remote copy of {name!r} has {size} bytes, not {row.size}."
            )
        return "size", (write.etag if write else "")
    if how == "auto" and write is not None and write.etag:
        if validated and write.checksum_sha256:
            return "checksum", write.etag
        # Compared only in S3's form for the upload (``-N`` for N parts): a
        # server that gives a multipart object its whole MD5 (s3rver) is
        # read back.
        if (
            s3.etag_is_md5(write.etag)
            and sent_etag is not None
            and _same_form(write.etag, sent_etag)
        ):
            if write.etag != sent_etag:
                raise VerificationError(
                    f"The remote reports ETag {write.etag} for {name!r}, but the bytes sent "
                    f"have {sent_etag}: it holds other bytes than were sent."
                )
            return "etag", write.etag
    checksum, size = read_back(remote, name)
    if size != row.size or checksum != row.checksum:
        raise VerificationError(
            f"The remote copy of {name!r} is not the file that was sent: {size} bytes with "
            f"SHA-256 {checksum}, expected {row.size} bytes with {row.checksum}."
        )
    return "readback", (write.etag if write and write.etag else f"sha256:{checksum}")


def _same_form(etag: str, sent_etag: str) -> bool:
    """Whether both ETags are of a single upload, or both of a multipart one."""
    return ("-" in etag) == ("-" in sent_etag)


def is_ours(remote: Storage, name: str, identity: str) -> bool:
    """Whether the remote copy of ``name`` is the one ``identity``
    describes (see :func:`prove`)."""
    if not identity:
        return False
    if identity.startswith("sha256:"):
        try:
            checksum, _ = read_back(remote, name)
        except Exception as exc:
            if s3.is_missing(exc):
                return False
            raise
        return checksum == identity.removeprefix("sha256:")
    return True  # an ETag: checked by the conditional delete itself


def delete_if_ours(remote: Any, name: str, identity: str) -> bool:
    """Delete the remote copy of ``name`` only if it is the one
    ``identity`` describes. True if deleted."""
    remote_s3 = s3.as_s3(remote)
    if remote_s3 is not None and identity and not identity.startswith("sha256:"):
        return s3.delete_if_etag(remote_s3, name, identity)
    if not is_ours(remote, name, identity):
        return False
    remote.delete(name)
    return True
