"""Where each photo is, for the gallery page and its JSON endpoint.

The ledger answers every question here; no storage is asked anything.
``storage.statuses(names)`` reads the status of every file on a page in
one query (and warms the cache, so the ``url`` calls that follow cost no
query either).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import urlsplit

from django.http import HttpRequest

from storage_hooks import Status
from storage_hooks.errors import public_message
from storage_hooks.models import StoredFile

from .models import Photo, photo_storage, thumbnails_of


@dataclass
class PhotoState:
    id: int
    title: str
    name: str
    #: The original's status: local, queued, transferring, remote or failed.
    status: str
    #: Which storage serves the original right now: "local" or "remote".
    where: str
    #: The original's URL (absolute, so the host shows where it points).
    url: str
    #: The URL as the card shows it: host and path, without a signature.
    url_label: str
    #: What the card shows: the thumbnail once it exists, else the original.
    image_url: str
    #: The thumbnail's status ("" until the worker has made it).
    thumbnail_status: str
    #: "transfer" (a delayed file), "retry" (a failed one), or "".
    action: str
    #: What a visitor may read about a failed file: the fixed message of
    #: its failure's kind, never the error's text (staff see that in the
    #: admin).
    error: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def describe(photos: Iterable[Photo], request: HttpRequest) -> list[PhotoState]:
    """The state of each photo, with one ledger query for all of them."""
    photos = list(photos)
    storage = photo_storage()
    thumbnails = thumbnails_of([photo.image.name for photo in photos])
    files = {photo.pk: [photo.image.name, *thumbnails[photo.image.name]] for photo in photos}
    names = [name for photo in photos for name in files[photo.pk]]
    statuses = storage.statuses(names)
    failed = [name for name in names if statuses[name] == Status.FAILED]
    failures = dict(
        StoredFile.objects.filter(storage_key=storage.key, name__in=failed).values_list(
            "name", "failure"
        )
        if failed
        else ()
    )
    states = []
    for photo in photos:
        status = statuses[photo.image.name]
        url = request.build_absolute_uri(storage.url(photo.image.name))
        thumb = next((n for n in thumbnails[photo.image.name] if statuses[n] is not None), None)
        failure = next((failures[n] for n in files[photo.pk] if n in failures), None)
        states.append(
            PhotoState(
                id=photo.pk,
                title=str(photo),
                name=photo.image.name,
                status=status or "",
                where="remote" if status == Status.REMOTE else "local",
                url=url,
                url_label=url_label(url),
                image_url=request.build_absolute_uri(storage.url(thumb)) if thumb else url,
                thumbnail_status=(statuses[thumb] or "") if thumb else "",
                action=_action([statuses[n] for n in files[photo.pk]]),
                error=public_message(failure) if failure is not None else "",
            )
        )
    return states


def url_label(url: str) -> str:
    parts = urlsplit(url)
    return parts.netloc + parts.path


def _action(statuses: list[Status | None]) -> str:
    """The button a photo's card offers, given the statuses of its files."""
    if Status.FAILED in statuses:
        return "retry"
    if Status.LOCAL in statuses:
        return "transfer"
    return ""


def queue_transfers(
    photo: Photo, statuses: tuple[Status, ...] = (Status.LOCAL, Status.FAILED)
) -> list[str]:
    """Queue the transfer of each file of ``photo`` (original, thumbnails)
    whose status is one of ``statuses``: by default those waiting for one
    (a delayed storage) or given up on (failed). Returns the names queued."""
    storage = photo_storage()
    queued = []
    for name, status in storage.statuses(photo.file_names).items():
        if status in statuses:
            # For a failed file this starts over with a fresh count of
            # attempts; for a queued one it sends another message, which
            # is harmless (only one worker can claim the file).
            storage.transfer(name)
            queued.append(name)
    return queued
