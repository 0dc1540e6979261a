"""StripMetadata: EXIF (GPS included), XMP and IPTC removed from JPEG, PNG
and WebP after turning the image upright; pixels, quality and colour kept."""

from __future__ import annotations

import io
import logging
from pathlib import Path
from typing import Any

import pytest
from django.core.files.base import ContentFile
from PIL import Image, ImageChops
from PIL.PngImagePlugin import PngInfo

from storage_hooks import Status
from storage_hooks.exceptions import Rejected
from storage_hooks.hooks import Preprocess, StripMetadata, Thumbnails
from storage_hooks.hooks.strip_metadata import png_chunks, riff_chunks
from storage_hooks.storage import QueuedStorage

from .conftest import unique_key
from .imagefiles import (
    EPS,
    GPS_IFD,
    XMP,
    encoded,
    fake_ghostscript,
    gps_exif,
    halves,
    image_bytes,
    iptc_segment,
    path_with,
    png_header_only,
    srgb_profile,
)
from .testapp.storages import fs_pair

ICC = srgb_profile()


def strip(storage: QueuedStorage, name: str, data: bytes, **options: Any) -> bytes | None:
    """What StripMetadata(**options) makes of ``data``: new bytes or None."""
    result = StripMetadata(**options).process(storage, name, ContentFile(data, name=name))
    if result is None:
        return None
    assert isinstance(result, ContentFile)
    return bytes(result.read())


def opened(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def same_pixels(a: Image.Image, b: Image.Image) -> bool:
    return (
        a.size == b.size
        and ImageChops.difference(a.convert("RGB"), b.convert("RGB")).getbbox() is None
    )


def nearly_same_pixels(a: Image.Image, b: Image.Image, tolerance: int = 8) -> bool:
    if a.size != b.size:
        return False
    extrema = ImageChops.difference(a.convert("RGB"), b.convert("RGB")).getextrema()
    return all(high <= tolerance for _, high in extrema)  # type: ignore[misc]


def upright_halves(image: Image.Image) -> tuple[str, str]:
    """The colours at the top and the bottom of a turned ``halves()``."""
    rgb = image.convert("RGB")
    top = rgb.getpixel((rgb.width // 2, 2))
    bottom = rgb.getpixel((rgb.width // 2, rgb.height - 3))
    names = ("red", "green", "blue")
    assert isinstance(top, tuple)
    assert isinstance(bottom, tuple)
    return names[top.index(max(top))], names[bottom.index(max(bottom))]


def jpeg_segments(image: Image.Image) -> list[str]:
    return [marker for marker, _ in image.applist]  # type: ignore[attr-defined]


def test_it_is_a_preprocess_hook() -> None:
    assert isinstance(StripMetadata(), Preprocess)
    assert StripMetadata(quality=80) == StripMetadata(quality=80)
    assert StripMetadata().deconstruct()[0] == "storage_hooks.hooks.strip_metadata.StripMetadata"  # type: ignore[attr-defined]


# -- JPEG --------------------------------------------------------------------


def test_a_jpeg_loses_exif_gps_xmp_iptc_and_comments_and_is_turned_upright(
    fs_storage: QueuedStorage,
) -> None:
    original = encoded(
        halves(),
        "JPEG",
        exif=gps_exif(orientation=6),  # shown turned 90 degrees clockwise
        xmp=XMP,
        icc_profile=ICC,
        comment=b"taken at home",
        extra=iptc_segment(),
    )
    before = opened(original)
    assert {"exif", "xmp", "photoshop", "comment"} <= set(before.info)
    out = strip(fs_storage, "cat.jpg", original)
    assert out is not None
    after = opened(out)
    assert after.format == "JPEG"
    assert not after.getexif()
    assert not after.getexif().get_ifd(GPS_IFD)
    assert {"exif", "xmp", "photoshop", "comment"}.isdisjoint(after.info)
    assert jpeg_segments(after) == ["APP0", "APP2"]  # JFIF and the ICC profile
    assert b"Paris" not in out
    assert b"48,51.5N" not in out
    assert after.info["icc_profile"] == ICC
    assert after.size == (32, 64)
    assert upright_halves(after) == ("red", "blue")


def test_a_jpeg_that_was_not_turned_keeps_its_tables_and_subsampling(
    fs_storage: QueuedStorage,
) -> None:
    from PIL import JpegImagePlugin

    original = encoded(halves(), "JPEG", exif=gps_exif(), quality=60, subsampling="4:4:4")
    out = strip(fs_storage, "cat.jpg", original)
    assert out is not None
    before, after = opened(original), opened(out)
    assert after.quantization == before.quantization  # type: ignore[attr-defined]
    assert JpegImagePlugin.get_sampling(after) == JpegImagePlugin.get_sampling(before) == 0
    assert nearly_same_pixels(after, before)
    assert not after.getexif()


def test_a_rotated_jpeg_is_encoded_at_the_documented_quality(fs_storage: QueuedStorage) -> None:
    original = encoded(halves((256, 128)), "JPEG", exif=gps_exif(orientation=8), quality=50)
    at_90 = opened(
        encoded(opened(original).transpose(Image.Transpose.ROTATE_90), "JPEG", quality=90)
    )
    out = strip(fs_storage, "cat.jpg", original)
    assert out is not None
    assert opened(out).quantization == at_90.quantization  # type: ignore[attr-defined]
    out = strip(fs_storage, "cat.jpg", original, quality=70)
    assert out is not None
    assert opened(out).quantization != at_90.quantization  # type: ignore[attr-defined]


def test_a_jpeg_without_metadata_is_left_as_it_is(fs_storage: QueuedStorage) -> None:
    assert strip(fs_storage, "plain.jpg", encoded(halves(), "JPEG", icc_profile=ICC)) is None


# -- PNG ---------------------------------------------------------------------


def png_with_metadata(image: Image.Image, **options: Any) -> bytes:
    info = PngInfo()
    info.add_text("Author", "Jane Doe")
    info.add_text("Location", "48.85N 2.29E", zip=True)
    info.add_itxt("XML:com.adobe.xmp", XMP.decode())
    info.add(b"gAMA", (45455).to_bytes(4, "big"))  # colour: kept
    info.add(b"tIME", b"\x07\xea\x0b\x1d\x0c\x00\x00")  # when it was made: removed
    return encoded(image, "PNG", pnginfo=info, **options)


def chunk_types(data: bytes) -> list[bytes]:
    return [kind for kind, _, _ in png_chunks(io.BytesIO(data))]


def test_a_png_loses_its_text_chunks_xmp_and_exif_losslessly(fs_storage: QueuedStorage) -> None:
    picture = Image.linear_gradient("L").convert("RGBA").resize((64, 48))
    original = png_with_metadata(picture, exif=gps_exif(), icc_profile=ICC)
    assert {b"tEXt", b"zTXt", b"iTXt", b"eXIf", b"tIME"} <= set(chunk_types(original))
    out = strip(fs_storage, "cat.png", original)
    assert out is not None
    kinds = chunk_types(out)
    assert {b"tEXt", b"zTXt", b"iTXt", b"eXIf", b"tIME"}.isdisjoint(kinds)
    assert b"gAMA" in kinds
    after = opened(out)
    assert after.info["icc_profile"] == ICC
    assert not after.getexif()
    assert after.text == {}  # type: ignore[attr-defined]
    assert after.mode == "RGBA"
    assert after.tobytes() == picture.tobytes()  # lossless


def test_a_palette_png_keeps_its_palette_and_transparency(fs_storage: QueuedStorage) -> None:
    picture = halves().convert("P")
    original = png_with_metadata(picture, transparency=0)
    out = strip(fs_storage, "logo.png", original)
    assert out is not None
    after = opened(out)
    assert after.mode == "P"
    assert after.info["transparency"] == 0
    assert same_pixels(after.convert("RGBA"), opened(original).convert("RGBA"))


def test_a_png_turned_by_its_exif_is_stored_upright(fs_storage: QueuedStorage) -> None:
    out = strip(fs_storage, "cat.png", encoded(halves(), "PNG", exif=gps_exif(orientation=6)))
    assert out is not None
    after = opened(out)
    assert (after.size, upright_halves(after)) == ((32, 64), ("red", "blue"))
    assert not after.getexif()


def test_a_png_without_metadata_is_left_as_it_is(fs_storage: QueuedStorage) -> None:
    assert strip(fs_storage, "plain.png", encoded(halves(), "PNG", icc_profile=ICC)) is None


def test_a_png_is_read_up_to_its_end_chunk_only(fs_storage: QueuedStorage) -> None:
    # Bytes after IEND (padding some tools add) are not chunks of the image.
    padded = encoded(halves(), "PNG") + b"\0" * 32
    assert strip(fs_storage, "padded.png", padded) is None


# -- WebP --------------------------------------------------------------------


def webp_kinds(data: bytes) -> list[bytes]:
    return [kind for kind, _, _ in riff_chunks(io.BytesIO(data), 12)]


@pytest.mark.parametrize("lossless", [False, True])
def test_a_webp_loses_exif_and_xmp_and_keeps_its_kind_of_compression(
    fs_storage: QueuedStorage, lossless: bool
) -> None:
    picture = Image.linear_gradient("L").convert("RGB").resize((64, 48))
    original = encoded(
        picture, "WEBP", exif=gps_exif(), xmp=XMP, icc_profile=ICC, lossless=lossless
    )
    assert {b"EXIF", b"XMP "} <= set(webp_kinds(original))
    out = strip(fs_storage, "cat.webp", original)
    assert out is not None
    kinds = webp_kinds(out)
    assert {b"EXIF", b"XMP "}.isdisjoint(kinds)
    assert (b"VP8L" in kinds) is lossless
    after = opened(out)
    assert not after.getexif()
    assert after.info["icc_profile"] == ICC
    if lossless:
        assert after.tobytes() == picture.tobytes()
    else:
        assert nearly_same_pixels(after, picture, tolerance=24)


def test_a_webp_turned_by_its_exif_is_stored_upright(fs_storage: QueuedStorage) -> None:
    original = encoded(halves(), "WEBP", exif=gps_exif(orientation=6), lossless=True)
    out = strip(fs_storage, "cat.webp", original)
    assert out is not None
    after = opened(out)
    assert (after.size, upright_halves(after)) == ((32, 64), ("red", "blue"))


@pytest.mark.parametrize("fmt", ["PNG", "WEBP"])
def test_an_animation_keeps_its_frames_and_timing(fs_storage: QueuedStorage, fmt: str) -> None:
    frames = [Image.new("RGBA", (20, 20), colour) for colour in ("red", "green", "blue")]
    original = encoded(
        frames[0],
        fmt,
        save_all=True,
        append_images=frames[1:],
        duration=[100, 200, 300],
        loop=2,
        exif=gps_exif(),
        lossless=True,
    )
    out = strip(fs_storage, f"anim.{fmt.lower()}", original)
    assert out is not None
    after = Image.open(io.BytesIO(out))
    timing = []
    for frame in range(after.n_frames):  # type: ignore[attr-defined]
        after.seek(frame)
        after.load()
        timing.append((after.info["duration"], after.convert("RGB").getpixel((0, 0))))
    assert timing == [(100, (255, 0, 0)), (200, (0, 128, 0)), (300, (0, 0, 255))]
    assert after.info["loop"] == 2
    assert not after.getexif()


# -- what it leaves alone ----------------------------------------------------


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("notes.txt", b"GPS 48.85N 2.29E"),
        ("anim.gif", image_bytes((20, 20), "GIF")),  # not a format it strips
        ("drawing.eps", EPS),
    ],
)
def test_other_files_are_left_as_they_are(
    fs_storage: QueuedStorage, caplog: pytest.LogCaptureFixture, name: str, data: bytes
) -> None:
    with caplog.at_level(logging.INFO, logger="storage_hooks"):
        assert strip(fs_storage, name, data) is None
        assert strip(fs_storage, name, data, strict=True) is None
    assert caplog.text == ""


def test_postscript_never_reaches_ghostscript(
    fs_storage: QueuedStorage, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from PIL import EpsImagePlugin

    marker = tmp_path / "ghostscript-ran"
    fake_ghostscript(tmp_path / "bin", marker)
    monkeypatch.setenv("PATH", path_with(tmp_path / "bin"))
    monkeypatch.setattr(EpsImagePlugin, "gs_binary", None)  # look for gs again
    assert strip(fs_storage, "photo.jpg", EPS) is None
    assert not marker.exists()


def test_a_broken_image_is_left_unchanged_and_logged(
    fs_storage: QueuedStorage, caplog: pytest.LogCaptureFixture
) -> None:
    broken = encoded(halves((256, 256)), "JPEG", exif=gps_exif())[:-600]  # cut short
    with caplog.at_level(logging.INFO, logger="storage_hooks"):
        assert strip(fs_storage, "cut.jpg", broken) is None
    assert (
        "Metadata not removed from 'cut.jpg', left unchanged: Pillow cannot read it" in caplog.text
    )
    assert str(fs_storage.local.location) not in caplog.text  # type: ignore[attr-defined]
    with pytest.raises(Rejected, match=r"Metadata not removed from 'cut\.jpg'"):
        strip(fs_storage, "cut.jpg", broken, strict=True)


def test_an_image_over_the_pixel_budget_is_not_decoded(
    fs_storage: QueuedStorage, caplog: pytest.LogCaptureFixture
) -> None:
    bomb = png_header_only(11_000, 11_000)
    with caplog.at_level(logging.INFO, logger="storage_hooks"):
        assert strip(fs_storage, "bomb.png", bomb) is None
    assert "Metadata not removed from 'bomb.png', left unchanged: refused before" in caplog.text
    small = encoded(halves(), "JPEG", exif=gps_exif())
    with pytest.raises(Rejected, match="over the budget of 100"):
        strip(fs_storage, "cat.jpg", small, max_pixels=100, strict=True)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"formats": ["GIF"]}, "GIF is not supported here"),
        ({"formats": ["EPS"]}, "never decoded"),
        ({"quality": 101}, "between 1 and 100"),
        ({"max_pixels": -5}, "positive whole number"),
    ],
)
def test_bad_options_are_refused(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        StripMetadata(**options)


def test_a_format_can_be_left_out(fs_storage: QueuedStorage) -> None:
    png = encoded(halves(), "PNG", exif=gps_exif())
    assert strip(fs_storage, "cat.png", png, formats=["JPEG"]) is None
    assert strip(fs_storage, "cat.png", png, formats=["PNG"]) is not None


# -- in the transfer -----------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_the_remote_copy_and_its_thumbnails_carry_no_gps(local_dir: Path, remote_dir: Path) -> None:
    storage = fs_pair(
        local_dir,
        remote_dir,
        unique_key(),
        hooks=[StripMetadata(), Thumbnails({"small": (16, 16)})],
    )
    original = encoded(halves(), "JPEG", exif=gps_exif(orientation=6), xmp=XMP, icc_profile=ICC)
    name = storage.save("trip/cat.jpg", ContentFile(original))
    assert storage.status(name) == Status.REMOTE
    remote = (remote_dir / name).read_bytes()
    assert remote != original
    copy = opened(remote)
    assert not copy.getexif().get_ifd(GPS_IFD)
    assert "xmp" not in copy.info
    assert copy.info["icc_profile"] == ICC
    assert copy.size == (32, 64)  # turned upright before it left
    thumbnail = storage.derivatives(name)["small"]
    assert opened((remote_dir / thumbnail).read_bytes()).size == (8, 16)  # from the upright copy
