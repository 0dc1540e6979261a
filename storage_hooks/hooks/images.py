"""Opening untrusted images safely, for the hooks that decode uploads.

Three rules, whatever the file claims to be:

* Only the formats of an explicit allowlist are tried (``Image.open(...,
  formats=...)``), so Pillow never hands PostScript to Ghostscript or runs
  any other program.
* The size in the header is checked against a pixel budget *before* any
  pixel is decoded; Pillow's warning band (above ``Image.MAX_IMAGE_PIXELS``)
  is refused too, not only its error band.
* A JPEG is decoded at the smallest scale that still covers the size the
  caller needs (``draft``), so a huge photo costs little memory.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import IO, TYPE_CHECKING

if TYPE_CHECKING:
    from PIL.ImageFile import ImageFile

#: The formats image hooks decode unless told otherwise.
DEFAULT_FORMATS = ("JPEG", "PNG", "GIF", "WEBP")

#: Formats that are never decoded, even when asked for: Pillow runs an
#: external interpreter (Ghostscript) to read them.
NEVER = frozenset({"EPS", "PS"})

#: Pillow's own default limit, used when ``Image.MAX_IMAGE_PIXELS`` is None.
FALLBACK_MAX_PIXELS = 89_478_485

#: Multi-picture JPEGs (most phone cameras) are opened as "MPO": a JPEG.
JPEG_FAMILY = frozenset({"JPEG", "MPO"})


class UnsafeImage(ValueError):
    """An image refused before decoding: over the pixel budget, or of a
    format outside the allowlist."""


def allowed_formats(formats: Iterable[str] | None, *, known: Iterable[str] = ()) -> tuple[str, ...]:
    """Validate an allowlist of Pillow format names (``"JPEG"``, ``"PNG"``,
    ...); None gives ``DEFAULT_FORMATS``. ``known`` narrows what may be
    listed (a hook that can only write some formats)."""
    from PIL import Image

    if formats is None:
        chosen = tuple(DEFAULT_FORMATS)
    elif isinstance(formats, str):
        raise ValueError(f"formats must be a list of format names, e.g. [{formats.upper()!r}].")
    else:
        chosen = tuple(dict.fromkeys(str(f).upper() for f in formats))
    if not chosen:
        raise ValueError("formats must name at least one format, e.g. ['JPEG', 'PNG'].")
    Image.init()
    for fmt in chosen:
        if fmt in NEVER:
            raise ValueError(
                f"{fmt} is never decoded: Pillow would run Ghostscript on the uploaded file. "
                "Convert such files with a sandboxed tool of your own."
            )
        if fmt not in Image.OPEN:
            raise ValueError(f"Pillow cannot read the format {fmt!r}; use names such as 'JPEG'.")
        if known and fmt not in known:
            raise ValueError(f"{fmt} is not supported here; choose among {', '.join(known)}.")
    return chosen


def pixel_budget(max_pixels: int | None) -> int:
    """The largest width x height allowed: ``max_pixels``, else Pillow's
    ``Image.MAX_IMAGE_PIXELS`` as it is at the time of use."""
    from PIL import Image

    if max_pixels is not None:
        return max_pixels
    return Image.MAX_IMAGE_PIXELS or FALLBACK_MAX_PIXELS


def check_max_pixels(max_pixels: int | None) -> int | None:
    """Validate a hook's ``max_pixels`` option."""
    if max_pixels is None:
        return None
    if isinstance(max_pixels, bool) or not isinstance(max_pixels, int) or max_pixels <= 0:
        raise ValueError(f"max_pixels must be a positive whole number, not {max_pixels!r}.")
    return max_pixels


@contextmanager
def open_image(
    file: IO[bytes],
    *,
    formats: Iterable[str],
    max_pixels: int | None = None,
    draft: tuple[int, int] | None = None,
) -> Iterator[ImageFile]:
    """Open ``file`` as an image of one of ``formats``, nothing decoded yet.

    Raises ``PIL.UnidentifiedImageError`` for anything else (including
    every format outside the list), and :class:`UnsafeImage` when the
    header's size is over the pixel budget. With ``draft=(w, h)``, a JPEG
    is set to decode at the smallest scale that still covers that size.
    The caller decodes (``load()``) inside the ``with`` block.
    """
    from PIL import Image

    allowed = tuple(formats)
    budget = pixel_budget(max_pixels)
    try:
        image = Image.open(file, formats=list(allowed))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        # Pillow's own checks (its warning is an error where warnings are
        # errors): over its limit, so over our budget too.
        raise UnsafeImage(f"refused before decoding: {exc}") from None
    try:
        fmt = image.format or ""
        if fmt not in allowed and not (fmt in JPEG_FAMILY and "JPEG" in allowed):
            raise UnsafeImage(f"refused: {fmt or 'unknown'} is not among {', '.join(allowed)}")
        width, height = image.size
        if width * height > budget:
            raise UnsafeImage(
                f"refused before decoding: {width}x{height} is {width * height} pixels, "
                f"over the budget of {budget} (raise max_pixels to allow it)"
            )
        if draft and fmt in JPEG_FAMILY:
            image.draft(None, draft)
        yield image
    finally:
        image.close()


def is_jpeg(image: ImageFile) -> bool:
    return image.format in JPEG_FAMILY


def describe(exc: BaseException, *paths: str | None) -> str:
    """``Type: message`` of an exception, for a log line: absolute paths
    (the local file's, the storage root's) replaced by ``…`` so logs do
    not show where media lives."""
    text = f"{type(exc).__name__}: {exc}"
    for path in sorted({p for p in paths if p}, key=len, reverse=True):
        text = text.replace(path, "…")
    # Any other absolute path (a temporary file, a plugin's command line).
    return re.sub(r"(?<![\w.…])" + re.escape(os.sep) + r"[^\s'\"<>:]+", "…", text)


def local_paths(storage: object, file: object) -> tuple[str | None, str | None]:
    """The absolute paths a log line must not show: the open file's, and
    the local storage's root."""
    name = getattr(file, "name", None)
    location = getattr(getattr(storage, "local", None), "location", None)
    return (name if isinstance(name, str) else None, str(location) if location else None)
