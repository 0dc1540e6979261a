"""Receivers that write every lifecycle signal of the photo storage to the
Event model, which the event log page shows.

A receiver is a plain function ``(sender, **kwargs)``; the keywords each
signal provides are listed in ``storage_hooks.signals``. They are connected
with ``sender=storage``, so they hear the photo storage only.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from celery import current_task
from django.core.files.storage import FileSystemStorage
from django.db import DatabaseError
from django.template.defaultfilters import filesizeformat

from storage_hooks import signals
from storage_hooks.errors import redact
from storage_hooks.exceptions import failure_kind
from storage_hooks.hooks import StripMetadata

from .models import Event, photo_storage

logger = logging.getLogger(__name__)


def process_label() -> str:
    """Which process runs this receiver: the Celery worker or the web server."""
    in_task = bool(current_task and current_task.request.id)
    return f"{'worker' if in_task else 'web'} (pid {os.getpid()})"


def record(kind: str, name: str, **fields: Any) -> None:
    # A receiver of transfer_started that raises fails the transfer attempt
    # (that is how preprocessing stops a file from going out half-done).
    # Keeping a log must never do that, so a failed write is only logged.
    try:
        Event.objects.create(kind=kind, name=name, process=process_label(), **fields)
    except DatabaseError:
        logger.exception("Could not record the event %s of %r", kind, name)


def on_saved_locally(sender: Any, *, name: str, size: int, **kwargs: Any) -> None:
    record(Event.Kind.SAVED_LOCALLY, name, size=size)


def on_transfer_queued(sender: Any, *, name: str, **kwargs: Any) -> None:
    record(Event.Kind.TRANSFER_QUEUED, name)


def on_transfer_started(sender: Any, *, name: str, attempt: int, **kwargs: Any) -> None:
    record(Event.Kind.TRANSFER_STARTED, name, attempt=attempt)
    note_stripped_metadata(sender, name)


def strips_metadata(storage: Any) -> bool:
    """Whether the storage has a StripMetadata hook."""
    return any(isinstance(hook, StripMetadata) for hook in storage.hooks)


def note_stripped_metadata(storage: Any, name: str) -> None:
    """Record "metadata stripped" once, when StripMetadata made the local
    copy smaller than the upload (preprocessing runs before the
    transfer_started receivers). Our own log has the upload's size."""
    if not strips_metadata(storage):
        return
    events = Event.objects.filter(name=name)
    saved = (
        events.filter(kind=Event.Kind.SAVED_LOCALLY)
        .order_by("-time", "-pk")
        .values_list("size", flat=True)
        .first()
    )
    if saved is None or events.filter(kind=Event.Kind.METADATA_STRIPPED).exists():
        return
    try:
        size = storage.local.size(name)
    except OSError:
        return
    if size != saved:
        note = f"{filesizeformat(saved)} \u2192 {filesizeformat(size)}"
        record(Event.Kind.METADATA_STRIPPED, name, size=size, note=note)


def on_transferred(sender: Any, *, name: str, size: int, duration: float, **kwargs: Any) -> None:
    record(Event.Kind.TRANSFERRED, name, size=size, duration=duration)


def on_transfer_failed(
    sender: Any,
    *,
    name: str,
    exception: BaseException,
    attempt: int,
    will_retry: bool,
    **kwargs: Any,
) -> None:
    # The full text is for staff (the admin), with the local root made
    # relative and URLs stripped of credentials and signatures; visitors
    # see the fixed message of its kind (Event.public_error).
    local = sender.local
    roots = [local.location] if isinstance(local, FileSystemStorage) else []
    error = redact(f"{type(exception).__name__}: {exception}", roots=roots)
    record(
        Event.Kind.TRANSFER_FAILED,
        name,
        attempt=attempt,
        error=error,
        failure=failure_kind(exception),
        will_retry=will_retry,
    )


def on_local_deleted(sender: Any, *, name: str, **kwargs: Any) -> None:
    record(Event.Kind.LOCAL_DELETED, name)


RECEIVERS = {
    signals.saved_locally: on_saved_locally,
    signals.transfer_queued: on_transfer_queued,
    signals.transfer_started: on_transfer_started,
    signals.transferred: on_transferred,
    signals.transfer_failed: on_transfer_failed,
    signals.local_deleted: on_local_deleted,
}


def connect() -> None:
    """Connect every receiver to the photo storage (from PhotosConfig.ready)."""
    storage = photo_storage()
    for signal, receiver in RECEIVERS.items():
        signal.connect(receiver, sender=storage)
