"""Errors storage_hooks raises or records in the ledger.

Every transfer error has a ``kind``: a short, stable word recorded in the
ledger's ``failure`` column beside the full text. A page shown to visitors
shows :func:`storage_hooks.errors.public_message` of the kind, never the text.
"""

from django.core.exceptions import ImproperlyConfigured


class UnknownStorageKey(ImproperlyConfigured):
    """A worker met a storage key no QueuedStorage in this process has."""


class TransferError(Exception):
    """An attempt to copy a file to the remote failed and may be retried."""

    kind = "error"


class FinalTransferError(TransferError):
    """A failure that another attempt cannot mend: no retry."""


class NameConflict(FinalTransferError):
    """The remote already holds a different file, not written by us, under
    the name."""

    kind = "conflict"


class LocalFileMissing(FinalTransferError):
    """The local copy of a file vanished before it was transferred."""

    kind = "missing"


class VerificationError(TransferError):
    """The remote copy differs from what was saved (size or checksum)."""

    kind = "verification"


class Rejected(FinalTransferError):
    """Raised by a preprocessor (``Preprocess.process``) or a
    ``transfer_started`` receiver to refuse a file for good: a virus
    scanner's verdict, a policy. The file ends FAILED at once, with no retry
    and nothing written to the remote; its local copy is kept for
    inspection. The message is the reason recorded in the ledger."""

    kind = "rejected"


class FileDeleted(FinalTransferError):
    """The file was deleted while an operation on it ran."""

    kind = "deleted"


def failure_kind(exc: BaseException) -> str:
    """The ``kind`` recorded in the ledger for ``exc``."""
    return str(getattr(exc, "kind", "error"))
