"""Errors storage_hooks raises or records in the ledger."""

from django.core.exceptions import ImproperlyConfigured


class UnknownStorageKey(ImproperlyConfigured):
    """A worker met a storage key no QueuedStorage in this process has."""


class TransferError(Exception):
    """An attempt to copy a file to the remote failed and may be retried."""


class FinalTransferError(TransferError):
    """A failure that another attempt cannot mend: no retry."""


class NameConflict(FinalTransferError):
    """The remote already holds a different file, not written by us, under
    the name."""


class LocalFileMissing(FinalTransferError):
    """The local copy of a file vanished before it was transferred."""


class VerificationError(TransferError):
    """The remote copy differs from what was saved (size or checksum)."""
