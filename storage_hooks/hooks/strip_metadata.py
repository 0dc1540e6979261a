"""StripMetadata: remove EXIF (GPS included), XMP and IPTC from uploaded
images before they leave, keeping their pixels and colour."""

from __future__ import annotations

import io
import posixpath
import struct
from collections.abc import Iterable, Iterator
from typing import IO, TYPE_CHECKING, Any

from django.core.files.base import ContentFile

from .. import signals
from ..exceptions import Rejected
from .images import UnsafeImage, allowed_formats, check_max_pixels, describe, local_paths
from .images import open_image as open_safely
from .preprocess import Preprocess

if TYPE_CHECKING:
    from django.core.files import File
    from PIL.ImageFile import ImageFile

    from ..storage import QueuedStorage

#: The formats StripMetadata knows how to clean.
STRIPPABLE = ("JPEG", "PNG", "WEBP")

#: JPEG APP segments that are not metadata: JFIF header, ICC profile, Adobe
#: colour transform. Every other APP segment (EXIF, XMP, IPTC, MPF, JFXX
#: preview thumbnails, maker data) and comments are removed.
JPEG_KEPT = (("APP0", b"JFIF\x00"), ("APP2", b"ICC_PROFILE\x00"), ("APP14", b"Adobe"))

#: PNG chunks that are image or colour data; any other chunk (tEXt, zTXt,
#: iTXt with XMP, eXIf, tIME, private chunks) is metadata.
PNG_KEPT = frozenset(
    b"IHDR PLTE IDAT IEND tRNS gAMA cHRM sRGB iCCP sBIT pHYs bKGD hIST sPLT "
    b"acTL fcTL fdAT cICP mDCV cLLI mDCv cLLi".split()
)
#: Colour chunks copied as they are into the cleaned PNG.
PNG_COLOUR = (b"cHRM", b"gAMA", b"sBIT", b"sRGB", b"cICP")

#: WebP chunks that are image or colour data.
WEBP_KEPT = frozenset({b"VP8 ", b"VP8L", b"VP8X", b"ALPH", b"ANIM", b"ANMF", b"ICCP"})

ORIENTATION = 0x0112


class StripMetadata(Preprocess):
    """Remove EXIF (GPS included), XMP and IPTC from JPEG, PNG and WebP
    images before their transfer, after turning them upright (EXIF
    orientation). The ICC colour profile is kept.

    Quality: a JPEG whose pixels did not move is encoded again with its own
    quantization tables and subsampling (``quality="keep"``); a JPEG that
    was rotated is encoded at ``quality`` (default 90). PNG stays lossless;
    WebP stays lossless if it was, else is encoded at ``quality``. An image
    without metadata is left as it is (no needless re-encoding); so are
    other files.

    Images are opened as Thumbnails opens them: only ``formats`` (default
    JPEG, PNG, WebP), at most ``max_pixels`` pixels (default Pillow's
    ``Image.MAX_IMAGE_PIXELS``). An image it cannot read safely is logged
    and left unchanged, or with ``strict=True`` refused
    (:class:`~storage_hooks.exceptions.Rejected`), so that no file of those
    formats leaves with its metadata.
    """

    def __init__(
        self,
        *,
        formats: Iterable[str] | None = None,
        max_pixels: int | None = None,
        quality: int = 90,
        strict: bool = False,
    ) -> None:
        self.formats = allowed_formats(STRIPPABLE if formats is None else formats, known=STRIPPABLE)
        self.max_pixels = check_max_pixels(max_pixels)
        if not 1 <= int(quality) <= 100:
            raise ValueError(f"quality must be between 1 and 100, not {quality!r}.")
        self.quality = int(quality)
        self.strict = bool(strict)

    def process(self, storage: QueuedStorage, name: str, file: File) -> Any:
        from PIL import UnidentifiedImageError

        try:
            with open_safely(file, formats=self.formats, max_pixels=self.max_pixels) as image:
                if not has_metadata(image, file):
                    return None
                data = self.clean(image, file)
        except UnidentifiedImageError:
            return None  # not an image of these formats: none of our business
        except Exception as exc:  # UnsafeImage, or any decoder error of an untrusted file
            reason = str(exc) if isinstance(exc, UnsafeImage) else "Pillow cannot read it"
            detail = describe(exc, *local_paths(storage, file))
            if self.strict:
                raise Rejected(f"Metadata not removed from {name!r}: {reason}.") from None
            signals.logger.warning(
                "Metadata not removed from %r, left unchanged: %s (%s).", name, reason, detail
            )
            return None
        return ContentFile(data, name=posixpath.basename(name))

    def clean(self, image: ImageFile, file: IO[bytes]) -> bytes:
        """The image encoded again without its metadata (``file`` is where
        it was opened from)."""
        from PIL import ImageOps

        fmt = "JPEG" if image.format in ("JPEG", "MPO") else image.format
        # A multi-picture JPEG keeps its main picture only.
        animated = fmt != "JPEG" and bool(getattr(image, "is_animated", False))
        moved = not animated and image.getexif().get(ORIENTATION, 1) in range(2, 9)
        options: dict[str, Any] = {}
        if icc := image.info.get("icc_profile"):
            options["icc_profile"] = icc
        if dpi := image.info.get("dpi"):
            options["dpi"] = dpi
        if fmt == "JPEG":
            options.update(self._jpeg_options(image, moved))
        elif fmt == "PNG":
            options.update(_png_options(file))
        else:
            options.update(self._webp_options(file))
        if animated:
            options.update(save_all=True, **_timing(image))
        picture = ImageOps.exif_transpose(image) if moved else image
        out = io.BytesIO()
        assert fmt is not None  # open_image only gives images of known formats
        picture.save(out, format=fmt, **options)
        return out.getvalue()

    def _jpeg_options(self, image: ImageFile, moved: bool) -> dict[str, Any]:
        from PIL import JpegImagePlugin

        options: dict[str, Any] = {"comment": b""}  # Pillow copies the comment otherwise
        if image.info.get("progressive") or image.info.get("progression"):
            options["progressive"] = True
        if moved:
            options["quality"] = self.quality
        else:
            # The original's tables and subsampling: what quality="keep"
            # does, spelled out so that multi-picture JPEGs (MPO) get it too.
            options["qtables"] = image.quantization  # type: ignore[attr-defined]
            options["subsampling"] = JpegImagePlugin.get_sampling(image)
        return options

    def _webp_options(self, file: IO[bytes]) -> dict[str, Any]:
        if webp_is_lossless(file):
            return {"lossless": True, "exact": True}
        return {"quality": self.quality}


def has_metadata(image: ImageFile, file: IO[bytes]) -> bool:
    """Whether the image carries anything StripMetadata removes."""
    if image.format in ("JPEG", "MPO"):
        if image.info.get("comment"):
            return True
        applist = getattr(image, "applist", [])
        return any(
            not any(marker == kept and data.startswith(sig) for kept, sig in JPEG_KEPT)
            for marker, data in applist
        )
    if image.format == "PNG":
        return any(kind not in PNG_KEPT for kind, _, _ in png_chunks(file))
    if image.format == "WEBP":
        return any(kind not in WEBP_KEPT for kind, _, _ in riff_chunks(file, 12))
    return False


def png_chunks(file: IO[bytes]) -> Iterator[tuple[bytes, int, int]]:
    """``(type, offset, length)`` of each chunk of a PNG file, in order,
    read from the headers only (a huge text chunk costs no memory)."""
    offset = 8
    while True:
        file.seek(offset)
        header = file.read(8)
        if len(header) < 8:
            return
        length, kind = struct.unpack(">I4s", header)
        yield kind, offset + 8, length
        if kind == b"IEND":
            return
        offset += 12 + length


def riff_chunks(
    file: IO[bytes], start: int, end: int | None = None
) -> Iterator[tuple[bytes, int, int]]:
    """``(fourcc, offset, length)`` of the RIFF chunks from ``start`` (12
    for a WebP file's top level) to ``end``."""
    offset = start
    while end is None or offset + 8 <= end:
        file.seek(offset)
        header = file.read(8)
        if len(header) < 8:
            return
        kind, length = struct.unpack("<4sI", header)
        yield kind, offset + 8, length
        offset += 8 + length + (length & 1)


def webp_is_lossless(file: IO[bytes]) -> bool:
    """Whether a WebP file's image data is lossless (VP8L), animation
    frames included."""
    kinds = set()
    for kind, offset, length in list(riff_chunks(file, 12)):
        kinds.add(kind)
        if kind == b"ANMF":  # a frame: 16 bytes of header, then its chunks
            kinds.update(k for k, _, _ in riff_chunks(file, offset + 16, offset + length))
    return b"VP8L" in kinds and b"VP8 " not in kinds


def _png_options(file: IO[bytes]) -> dict[str, Any]:
    """Keep a PNG's colour chunks; every text chunk goes."""
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    for kind, offset, length in list(png_chunks(file)):
        if kind in PNG_COLOUR and length <= 64:
            file.seek(offset)
            info.add(kind, file.read(length))
    return {"pnginfo": info}


def _timing(image: ImageFile) -> dict[str, Any]:
    """Frame durations and loop count of an animation."""
    durations = []
    for frame in range(getattr(image, "n_frames", 1)):
        image.seek(frame)
        image.load()  # WebP knows a frame's duration once it is decoded
        durations.append(image.info.get("duration", 0))
    image.seek(0)
    return {"duration": durations, "loop": image.info.get("loop", 0)}
