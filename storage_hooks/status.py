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
    #: Copied to the remote and verified; every read goes to the remote.
    REMOTE = "remote", "remote"
    #: Every attempt failed; ``storage.transfer(name)`` starts it again.
    FAILED = "failed", "failed"


#: States in which reads are served by the local storage.
LOCAL_STATES = frozenset({Status.LOCAL, Status.QUEUED, Status.TRANSFERRING, Status.FAILED})
