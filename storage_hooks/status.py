"""The states a file goes through, as stored in the ledger."""

from django.db import models


class Status(models.TextChoices):
    """Where a file saved through a :class:`~storage_hooks.QueuedStorage` is.

    A ``str`` enum: ``Status.REMOTE == "remote"``.
    """

    #: Saved locally, not queued yet (``delayed=True`` storages).
    LOCAL = "local", "local"
    #: Handed to the runner, or waiting between two attempts.
    QUEUED = "queued", "queued"
    #: A worker is copying it right now.
    TRANSFERRING = "transferring", "transferring"
    #: Copied to the remote and proven equal to the recorded SHA-256; every
    #: read goes to the remote.
    REMOTE = "remote", "remote"
    #: Every attempt failed, or the file was refused for good (see the row's
    #: ``failure``); ``storage.transfer(name)`` starts it again.
    FAILED = "failed", "failed"
    #: ``delete(name)`` was called: the files are being removed (after the
    #: deleting transaction committed); reads treat the file as gone and
    #: ``save`` does not reuse the name until the row is gone.
    DELETING = "deleting", "deleting"
    #: ``verify`` found the remote copy missing and no local copy left: the
    #: file cannot be served; only a backup can bring it back.
    LOST = "lost", "lost"


#: States in which reads are served by the local storage.
LOCAL_STATES = frozenset({Status.LOCAL, Status.QUEUED, Status.TRANSFERRING, Status.FAILED})

#: States of a file that is not on the remote yet and still has to get there.
PENDING_STATES = (Status.LOCAL, Status.QUEUED, Status.TRANSFERRING, Status.FAILED)

#: States in which the file does not exist for a reader.
GONE_STATES = frozenset({Status.DELETING, Status.LOST})
