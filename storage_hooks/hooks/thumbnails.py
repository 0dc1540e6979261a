from __future__ import annotations

import io
import posixpath
from typing import TYPE_CHECKING, Any

from django.core.files.base import ContentFile

from .. import signals
from .base import Hook

if TYPE_CHECKING:
    from ..storage import QueuedStorage


class Thumbnails(Hook):
    """Make thumbnails of images before they are transferred.

    ``sizes`` maps a label to a ``(width, height)`` box. Each thumbnail keeps
    the aspect ratio, fits its box, and is saved through the same storage
    (so it is transferred too) as ``<dir>/<stem>.<label><ext>``; ``ext`` is
    the original's, or that of ``format`` (``"WEBP"`` gives ``.webp``).
    Files Pillow cannot read are left alone; the original is transferred
    all the same. Thumbnails that already exist are not made again.
    """

    def __init__(
        self,
        sizes: dict[str, tuple[int, int]],
        *,
        format: str | None = None,
        quality: int = 85,
    ) -> None:
        if not sizes:
            raise ValueError("Thumbnails needs at least one size, e.g. {'small': (128, 128)}.")
        for label, box in sizes.items():
            if not label or "/" in label or "." in label:
                raise ValueError(f"A thumbnail label must be a plain word, not {label!r}.")
            width, height = box
            if int(width) <= 0 or int(height) <= 0:
                raise ValueError(f"The box of {label!r} must be positive, not {box!r}.")
        self.sizes = {label: (int(w), int(h)) for label, (w, h) in sizes.items()}
        self.format = format.upper() if format else None
        self.quality = quality

    def connect(self, storage: QueuedStorage) -> None:
        signals.transfer_started.connect(self.make_thumbnails, sender=storage)

    def thumbnail_name(self, name: str, label: str) -> str:
        directory, filename = posixpath.split(name)
        stem, ext = posixpath.splitext(filename)
        if self.format:
            ext = "." + ("jpg" if self.format == "JPEG" else self.format.lower())
        return posixpath.join(directory, f"{stem}.{label}{ext}")

    def is_thumbnail(self, name: str) -> bool:
        stem = posixpath.splitext(posixpath.basename(name))[0]
        return any(stem.endswith(f".{label}") for label in self.sizes)

    def make_thumbnails(self, storage: QueuedStorage, *, name: str, **kwargs: Any) -> None:
        if self.is_thumbnail(name):
            return
        todo = {
            label: self.thumbnail_name(name, label)
            for label in self.sizes
            if storage.status(self.thumbnail_name(name, label)) is None
        }
        if not todo:
            return
        from PIL import Image

        try:
            with storage.open_local(name) as fh, Image.open(fh) as image:
                image.load()
                made = {label: self._render(image, label) for label in todo}
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
            signals.logger.info("No thumbnails for %r: Pillow cannot read it (%s)", name, exc)
            return
        for label, data in made.items():
            saved = storage.save(todo[label], ContentFile(data))
            if storage.delayed:
                # A delayed storage queues nothing on save; the thumbnails go
                # with the original, whose transfer was asked for.
                storage.transfer(saved)

    def _render(self, image: Any, label: str) -> bytes:
        from PIL import Image, ImageOps

        fmt = self.format or image.format or "PNG"
        thumb = ImageOps.exif_transpose(image) or image
        thumb = thumb.copy()
        thumb.thumbnail(self.sizes[label], Image.Resampling.LANCZOS)
        if fmt == "JPEG" and thumb.mode not in ("RGB", "L"):
            thumb = thumb.convert("RGB")
        out = io.BytesIO()
        thumb.save(out, format=fmt, quality=self.quality)
        return out.getvalue()
