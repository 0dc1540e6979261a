"""Thumbnails: made with Pillow on transfer_started, saved through the same
storage (so transferred too); anything Pillow cannot read is left alone."""

from __future__ import annotations

import io
import logging
from pathlib import Path
from typing import Any

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import FileSystemStorage
from PIL import Image

from storage_hooks import Status, signals
from storage_hooks.hooks import DeleteLocal, Thumbnails
from storage_hooks.models import StoredFile
from storage_hooks.storage import QueuedStorage

from .conftest import unique_key
from .testapp.storages import fs_pair

pytestmark = pytest.mark.django_db(transaction=True)

SIZES = {"small": (100, 100), "wide": (300, 50)}


def image_bytes(size: tuple[int, int], fmt: str, mode: str = "RGB") -> bytes:
    out = io.BytesIO()
    Image.new(mode, size, "orange").save(out, format=fmt)
    return out.getvalue()


def opened(path: Path) -> tuple[str | None, tuple[int, int]]:
    with Image.open(path) as image:
        return image.format, image.size


def ledger_names(storage: QueuedStorage) -> list[str]:
    return sorted(StoredFile.objects.filter(storage_key=storage.key).values_list("name", flat=True))


def storage_with(tmp: Path, remote: Path, *hooks: Any) -> QueuedStorage:
    return fs_pair(tmp, remote, unique_key(), hooks=list(hooks))


def test_thumbnails_keep_the_ratio_fit_the_box_and_are_transferred(
    local_dir: Path, remote_dir: Path
) -> None:
    storage = storage_with(local_dir, remote_dir, Thumbnails(SIZES))
    name = storage.save("photos/cat.png", ContentFile(image_bytes((400, 200), "PNG")))
    assert ledger_names(storage) == [
        "photos/cat.png",
        "photos/cat.small.png",
        "photos/cat.wide.png",
    ]
    assert all(storage.status(n) == Status.REMOTE for n in ledger_names(storage))
    assert opened(remote_dir / name) == ("PNG", (400, 200))
    assert opened(remote_dir / "photos/cat.small.png") == ("PNG", (100, 50))
    assert opened(remote_dir / "photos/cat.wide.png") == ("PNG", (100, 50))


def test_a_format_gives_the_thumbnails_its_extension(local_dir: Path, remote_dir: Path) -> None:
    storage = storage_with(local_dir, remote_dir, Thumbnails({"small": (64, 64)}, format="WEBP"))
    storage.save("a/b/photo.jpeg", ContentFile(image_bytes((640, 480), "JPEG")))
    assert opened(remote_dir / "a/b/photo.small.webp") == ("WEBP", (64, 48))


def test_jpeg_thumbnails_of_a_transparent_image(local_dir: Path, remote_dir: Path) -> None:
    storage = storage_with(local_dir, remote_dir, Thumbnails({"s": (20, 20)}, format="JPEG"))
    storage.save("logo.png", ContentFile(image_bytes((40, 80), "PNG", mode="RGBA")))
    assert opened(remote_dir / "logo.s.jpg") == ("JPEG", (10, 20))


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("notes.txt", b"not an image at all"),
        ("broken.png", image_bytes((50, 50), "PNG")[:40]),  # a truncated PNG
        ("liar.jpg", b"\xff\xd8\xff\xe0 but then nothing a JPEG needs"),
    ],
)
def test_files_pillow_cannot_read_are_left_alone(
    local_dir: Path,
    remote_dir: Path,
    caplog: pytest.LogCaptureFixture,
    name: str,
    data: bytes,
) -> None:
    storage = storage_with(local_dir, remote_dir, Thumbnails(SIZES))
    with caplog.at_level(logging.INFO, logger="storage_hooks"):
        saved = storage.save(name, ContentFile(data))
    assert ledger_names(storage) == [saved]
    assert storage.status(saved) == Status.REMOTE
    assert (remote_dir / saved).read_bytes() == data
    assert f"No thumbnails for {saved!r}: Pillow cannot read it" in caplog.text


def test_thumbnails_are_made_once_even_when_the_attempt_is_retried(
    local_dir: Path, remote_dir: Path
) -> None:
    class FlakyOnce(FileSystemStorage):
        """A remote whose first write of the original fails (a network
        error a file system cannot make)."""

        failed = False

        def _save(self, name: str, content: Any) -> str:
            if name == "cat.png" and not self.failed:
                self.failed = True
                raise ConnectionError("connection reset")
            return super()._save(name, content)

    storage = QueuedStorage(
        local=FileSystemStorage(location=local_dir),
        remote=FlakyOnce(location=remote_dir),
        hooks=[Thumbnails(SIZES)],
        key=unique_key(),
    )
    made_by_attempt: dict[int, list[str]] = {}

    def made(sender: Any, *, name: str, attempt: int, **kwargs: Any) -> None:
        if name == "cat.png":
            made_by_attempt[attempt] = ledger_names(storage)

    with signals.transfer_failed.connected_to(made, sender=storage):
        storage.save("cat.png", ContentFile(image_bytes((200, 200), "PNG")))
    thumbnails = ["cat.png", "cat.small.png", "cat.wide.png"]
    assert made_by_attempt == {1: thumbnails}  # attempt 1 made them, then failed
    assert ledger_names(storage) == thumbnails  # attempt 2 made no more
    assert storage.status("cat.png") == Status.REMOTE
    assert StoredFile.objects.get(storage_key=storage.key, name="cat.png").attempts == 2


def test_with_delete_local_everything_ends_on_the_remote(local_dir: Path, remote_dir: Path) -> None:
    storage = storage_with(local_dir, remote_dir, Thumbnails({"small": (10, 10)}), DeleteLocal())
    storage.save("cat.png", ContentFile(image_bytes((20, 20), "PNG")))
    assert sorted(p.name for p in remote_dir.iterdir()) == ["cat.png", "cat.small.png"]
    assert list(local_dir.iterdir()) == []


@pytest.mark.parametrize(
    ("sizes", "message"),
    [
        ({}, "at least one size"),
        ({"a.b": (1, 1)}, "plain word"),
        ({"": (1, 1)}, "plain word"),
        ({"x": (0, 10)}, "must be positive"),
    ],
)
def test_bad_sizes_are_refused(sizes: dict[str, tuple[int, int]], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Thumbnails(sizes)


def test_a_delayed_storage_transfers_the_thumbnails_with_the_original(
    local_dir: Path, remote_dir: Path
) -> None:
    storage = QueuedStorage(
        local=FileSystemStorage(location=local_dir),
        remote=FileSystemStorage(location=remote_dir),
        hooks=[Thumbnails({"small": (64, 64)})],
        delayed=True,
        key=unique_key(),
    )
    name = storage.save("cat.png", ContentFile(image_bytes((400, 200), "PNG")))
    assert storage.status(name) == Status.LOCAL  # nothing queued on save
    storage.transfer(name)
    assert storage.status(name) == Status.REMOTE
    assert storage.status("cat.small.png") == Status.REMOTE
    assert opened(remote_dir / "cat.small.png") == ("PNG", (64, 32))
