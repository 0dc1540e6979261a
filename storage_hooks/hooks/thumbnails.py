"""Thumbnails: derivatives of images, made with Pillow before the transfer."""

from __future__ import annotations

import io
import posixpath
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from django.core.files.base import ContentFile

from .. import signals
from .base import Hook
from .images import (
    UnsafeImage,
    allowed_formats,
    check_max_pixels,
    describe,
    is_jpeg,
    local_paths,
    open_image,
)

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage

    from ..storage import QueuedStorage

#: The formats thumbnails can be written in, and their extensions.
WRITABLE = {"JPEG": ".jpg", "PNG": ".png", "WEBP": ".webp", "GIF": ".gif"}


class Thumbnails(Hook):
    """Make thumbnails of images before they are transferred.

    ``sizes`` maps a label to a ``(width, height)`` box. Each thumbnail keeps
    the aspect ratio, fits its box, is turned upright (EXIF orientation) and
    is saved through the same storage (so it is transferred too) as a
    derivative of the original, at ``<dir>/<stem>.<label><ext>`` or, when
    that name is another file's, another free name. ``ext`` is the
    original's, or that of ``format`` (``"WEBP"`` gives ``.webp``).

    Only images of ``formats`` (default JPEG, PNG, GIF, WebP) whose header
    says at most ``max_pixels`` pixels (default Pillow's
    ``Image.MAX_IMAGE_PIXELS``) are decoded; anything else, and any failure,
    is logged and skipped: the original is transferred all the same.
    Thumbnails are made once per original (the ledger knows them), and
    never of a derivative.
    """

    def __init__(
        self,
        sizes: dict[str, tuple[int, int]],
        *,
        format: str | None = None,
        quality: int = 85,
        formats: Iterable[str] | None = None,
        max_pixels: int | None = None,
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
        if self.format is not None and self.format not in WRITABLE:
            raise ValueError(
                f"Thumbnails cannot be written as {format!r}; use one of {', '.join(WRITABLE)}."
            )
        if not 1 <= int(quality) <= 100:
            raise ValueError(f"quality must be between 1 and 100, not {quality!r}.")
        self.quality = int(quality)
        self.formats = allowed_formats(formats)
        self.max_pixels = check_max_pixels(max_pixels)

    def connect(self, storage: QueuedStorage) -> None:
        signals.transfer_started.connect(self.make_thumbnails, sender=storage)

    def thumbnail_name(self, name: str, label: str) -> str:
        """The name a thumbnail is first offered (the saved name may differ:
        ``storage.derivatives(name)`` knows it)."""
        directory, filename = posixpath.split(name)
        stem, ext = posixpath.splitext(filename)
        if self.format:
            ext = WRITABLE[self.format]
        return posixpath.join(directory, f"{stem}.{label}{ext}")

    def make_thumbnails(self, storage: QueuedStorage, *, name: str, **kwargs: Any) -> None:
        """The ``transfer_started`` receiver: make the missing thumbnails of
        ``name``. Never raises for a file it cannot use."""
        if storage.source_of(name) is not None:
            return  # a derivative (this hook's or another's): not derived again
        done = storage.derivatives(name)
        todo = [label for label in self.sizes if label not in done]
        if not todo:
            return
        from PIL import UnidentifiedImageError

        try:
            with storage.open_local(name) as fh:
                made = self.render(fh, todo, target=self._target_format(name))
        except UnidentifiedImageError:
            signals.logger.info(
                "No thumbnails for %r: Pillow cannot read it as %s.", name, "/".join(self.formats)
            )
            return
        except UnsafeImage as exc:
            signals.logger.warning("No thumbnails for %r: %s.", name, exc)
            return
        except Exception as exc:  # any decoder error of an untrusted file
            signals.logger.warning(
                "No thumbnails for %r: Pillow cannot read it (%s).",
                name,
                describe(exc, *local_paths(storage, None)),
            )
            return
        for label, data in made.items():
            self._save(storage, name, label, data)

    def _save(self, storage: QueuedStorage, name: str, label: str, data: bytes) -> None:
        try:
            saved = storage.save_derivative(
                name, self.thumbnail_name(name, label), ContentFile(data), variant=label
            )
            if storage.delayed:
                # A delayed storage queues nothing on save; the thumbnails go
                # with the original, whose transfer was asked for.
                storage.transfer(saved)
        except Exception as exc:  # an optional derivative never fails the original
            signals.logger.warning(
                "The %r thumbnail of %r was not saved (%s).",
                label,
                name,
                describe(exc, *local_paths(storage, None)),
            )

    def _target_format(self, name: str) -> str | None:
        """The format to write: ``format``, else the one the original's
        extension names (when thumbnails can be written in it)."""
        if self.format:
            return self.format
        from PIL import Image

        ext = posixpath.splitext(name)[1].lower()
        fmt = Image.registered_extensions().get(ext)
        return fmt if fmt in WRITABLE else None

    def render(
        self, file: Any, labels: Iterable[str], *, target: str | None = None
    ) -> dict[str, bytes]:
        """The encoded thumbnails of the image in ``file``, by label. A JPEG
        is decoded at the smallest scale that covers the largest box."""
        from PIL import ImageOps

        labels = list(labels)
        side = 2 * max(max(self.sizes[label]) for label in labels)  # 2: Pillow's reducing gap
        with open_image(
            file, formats=self.formats, max_pixels=self.max_pixels, draft=(side, side)
        ) as image:
            fmt = target or ("JPEG" if is_jpeg(image) else image.format or "PNG")
            if fmt not in WRITABLE:
                fmt = "PNG"
            icc = image.info.get("icc_profile")
            upright = ImageOps.exif_transpose(image)
        return {label: self._encode(upright, self.sizes[label], fmt, icc) for label in labels}

    def _encode(self, image: PILImage, box: tuple[int, int], fmt: str, icc: Any) -> bytes:
        from PIL import Image

        thumb = image.copy()
        thumb.thumbnail(box, Image.Resampling.LANCZOS)
        if fmt == "JPEG" and thumb.mode not in ("RGB", "L"):
            if thumb.mode == "CMYK":
                icc = None  # a CMYK profile does not describe the RGB result
            thumb = _flatten(thumb)
        options: dict[str, Any] = {"quality": self.quality}
        if fmt == "JPEG":
            options["comment"] = b""  # Pillow copies the original's comment otherwise
        if icc and fmt != "GIF":
            options["icc_profile"] = icc
        out = io.BytesIO()
        thumb.save(out, format=fmt, **options)
        return out.getvalue()


def _flatten(image: PILImage) -> PILImage:
    """An RGB image for JPEG: transparency composited on white."""
    from PIL import Image

    if image.mode == "CMYK":
        return image.convert("RGB")
    rgba = image.convert("RGBA")
    background = Image.new("RGB", rgba.size, "white")
    background.paste(rgba, mask=rgba.getchannel("A"))
    return background
