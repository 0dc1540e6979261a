"""Image files for the image hook tests, built with Pillow or by hand."""

from __future__ import annotations

import io
import os
import stat
import struct
import zlib
from pathlib import Path
from typing import Any

from PIL import Image, ImageCms

GPS_IFD = 0x8825
ORIENTATION = 0x0112
XMP = (
    b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF '
    b'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description '
    b'xmlns:exif="http://ns.adobe.com/exif/1.0/" exif:GPSLatitude="48,51.5N"/>'
    b"</rdf:RDF></x:xmpmeta>"
)

#: A minimal Encapsulated PostScript file: Pillow identifies it as EPS and,
#: when it decodes it, runs Ghostscript on it.
EPS = (
    b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 16 16\n%%EndComments\n"
    b"newpath 0 0 moveto 16 16 lineto stroke showpage\n%%EOF\n"
)


def encoded(image: Image.Image, fmt: str, **options: Any) -> bytes:
    out = io.BytesIO()
    image.save(out, format=fmt, **options)
    return out.getvalue()


def image_bytes(
    size: tuple[int, int], fmt: str, mode: str = "RGB", colour: Any = "orange"
) -> bytes:
    return encoded(Image.new(mode, size, colour), fmt)


def halves(size: tuple[int, int] = (64, 32)) -> Image.Image:
    """Left half red, right half blue: shows which way an image was turned."""
    image = Image.new("RGB", size, "red")
    image.paste("blue", (size[0] // 2, 0, size[0], size[1]))
    return image


def srgb_profile() -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def gps_exif(orientation: int | None = None) -> Image.Exif:
    """EXIF with a camera make, GPS position (GPS IFD 0x8825) and, if
    given, an orientation."""
    exif = Image.Exif()
    exif[0x010F] = "Camera Maker"  # Make
    if orientation:
        exif[ORIENTATION] = orientation
    exif.get_ifd(GPS_IFD).update(
        {1: "N", 2: (48.0, 51.0, 30.0), 3: "E", 4: (2.0, 17.0, 40.0)}  # lat/lon
    )
    return exif


def iptc_segment() -> bytes:
    """A JPEG APP13 segment holding IPTC data (a city name)."""
    record = b"\x1c\x02\x5a" + struct.pack(">H", 5) + b"Paris"  # 2:90 City
    resource = b"8BIM" + struct.pack(">H", 0x0404) + b"\0\0" + struct.pack(">I", len(record))
    resource += record + (b"\0" if len(record) % 2 else b"")
    payload = b"Photoshop 3.0\x00" + resource
    return b"\xff\xed" + struct.pack(">H", len(payload) + 2) + payload


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` pixels, with a few
    bytes of image data: cheap to make, a bomb if ever decoded."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\0" * 1024)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", ihdr)
        + png_chunk(b"IDAT", idat)
        + png_chunk(b"IEND", b"")
    )


def fake_ghostscript(directory: Path, marker: Path) -> Path:
    """An executable ``gs`` in ``directory`` that creates ``marker`` when
    it is run, whatever its arguments, then fails."""
    directory.mkdir(parents=True, exist_ok=True)
    script = directory / "gs"
    script.write_text(f"#!/bin/sh\ntouch '{marker}'\nexit 1\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return script


def path_with(directory: Path) -> str:
    return f"{directory}{os.pathsep}{os.environ.get('PATH', '')}"
