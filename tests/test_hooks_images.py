"""Safe opening of untrusted images: a format allowlist, a pixel budget
checked before decoding, JPEGs decoded at the size needed."""

from __future__ import annotations

import io
import subprocess
import warnings
from pathlib import Path

import pytest
from PIL import EpsImagePlugin, Image, UnidentifiedImageError

from storage_hooks.hooks.images import (
    DEFAULT_FORMATS,
    UnsafeImage,
    allowed_formats,
    check_max_pixels,
    describe,
    open_image,
    pixel_budget,
)

from .conftest import unique_key
from .imagefiles import EPS, fake_ghostscript, image_bytes, path_with, png_header_only


def test_the_default_allowlist() -> None:
    assert allowed_formats(None) == DEFAULT_FORMATS == ("JPEG", "PNG", "GIF", "WEBP")
    assert allowed_formats(["png", "Jpeg", "PNG"]) == ("PNG", "JPEG")


@pytest.mark.parametrize(
    ("formats", "message"),
    [
        (["EPS"], "never decoded: Pillow would run Ghostscript"),
        (["JPEG", "ps"], "never decoded"),
        (["NOPE"], "Pillow cannot read the format 'NOPE'"),
        ([], "at least one format"),
        ("JPEG", "a list of format names"),
    ],
)
def test_bad_allowlists_are_refused(formats: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        allowed_formats(formats)  # type: ignore[arg-type]


def test_an_allowlist_can_be_narrowed_to_what_a_hook_writes() -> None:
    with pytest.raises(ValueError, match="GIF is not supported here; choose among JPEG, PNG"):
        allowed_formats(["GIF"], known=("JPEG", "PNG"))


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "100"])
def test_max_pixels_must_be_a_positive_whole_number(bad: object) -> None:
    with pytest.raises(ValueError, match="max_pixels must be a positive whole number"):
        check_max_pixels(bad)  # type: ignore[arg-type]


def test_the_budget_follows_pillows_limit_at_the_time_of_use(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert pixel_budget(None) == Image.MAX_IMAGE_PIXELS
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1234)
    assert pixel_budget(None) == 1234
    assert pixel_budget(99) == 99
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)
    assert pixel_budget(None) == 89_478_485  # Pillow's default, not "no limit"


def test_an_allowed_image_opens_undecoded() -> None:
    data = image_bytes((40, 30), "PNG")
    with open_image(io.BytesIO(data), formats=DEFAULT_FORMATS) as image:
        assert (image.format, image.size) == ("PNG", (40, 30))


def test_a_format_outside_the_allowlist_is_not_even_identified() -> None:
    data = image_bytes((40, 30), "GIF")
    with (
        pytest.raises(UnidentifiedImageError),
        open_image(io.BytesIO(data), formats=("JPEG", "PNG")),
    ):
        pytest.fail("a GIF was opened")


def test_postscript_is_never_handed_to_ghostscript(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    marker = tmp_path / "gs-ran"
    fake_ghostscript(tmp_path / "bin", marker)
    monkeypatch.setenv("PATH", path_with(tmp_path / "bin"))
    monkeypatch.setattr(EpsImagePlugin, "gs_binary", None)  # look for gs again
    with (
        pytest.raises(UnidentifiedImageError),
        open_image(io.BytesIO(EPS), formats=DEFAULT_FORMATS),
    ):
        pytest.fail("an EPS was opened")
    assert not marker.exists()
    # The control: Pillow left to itself runs the fake Ghostscript.
    with (
        pytest.raises((OSError, subprocess.CalledProcessError)),
        Image.open(io.BytesIO(EPS)) as image,
    ):
        image.load()
    assert marker.exists()


@pytest.mark.parametrize(
    ("width", "height"),
    [
        (11_000, 11_000),  # Pillow's warning band: 121 Mpx, under twice its limit
        (20_000, 20_000),  # Pillow's error band
    ],
)
def test_an_image_over_the_budget_is_refused_before_decoding(width: int, height: int) -> None:
    data = png_header_only(width, height)
    with (
        pytest.raises(UnsafeImage, match="refused before decoding"),
        open_image(io.BytesIO(data), formats=DEFAULT_FORMATS),
    ):
        pytest.fail("the caller was given an image to decode")


def test_the_warning_band_is_refused_where_warnings_are_only_shown() -> None:
    data = png_header_only(11_000, 11_000)
    with warnings.catch_warnings(record=True) as shown:
        warnings.simplefilter("always")
        with (
            pytest.raises(UnsafeImage, match="11000x11000 is 121000000 pixels, over the budget"),
            open_image(io.BytesIO(data), formats=DEFAULT_FORMATS),
        ):
            pytest.fail("the caller was given an image to decode")
    assert [w.category for w in shown] == [Image.DecompressionBombWarning]


def test_a_budget_of_its_own() -> None:
    data = image_bytes((100, 100), "PNG")
    with open_image(io.BytesIO(data), formats=DEFAULT_FORMATS, max_pixels=10_000) as image:
        assert image.size == (100, 100)
    with (
        pytest.raises(UnsafeImage, match="100x100 is 10000 pixels, over the budget of 9999"),
        open_image(io.BytesIO(data), formats=DEFAULT_FORMATS, max_pixels=9_999),
    ):
        pytest.fail("the caller was given an image to decode")


def test_a_jpeg_is_decoded_at_the_smallest_scale_that_covers_the_size() -> None:
    data = image_bytes((2000, 1000), "JPEG")
    with open_image(io.BytesIO(data), formats=DEFAULT_FORMATS, draft=(200, 100)) as image:
        image.load()
        assert image.size == (250, 125)  # libjpeg's 1/8 scale
    with open_image(io.BytesIO(data), formats=DEFAULT_FORMATS, draft=(600, 300)) as image:
        image.load()
        assert image.size == (1000, 500)  # 1/2: 1/4 would be smaller than asked


def test_a_log_line_shows_no_absolute_path() -> None:
    exc = OSError("cannot read /srv/media/local/photos/cat.png or /tmp/x y")
    text = describe(exc, "/srv/media/local")
    assert text == "OSError: cannot read …/photos/cat.png or … y"
    assert describe(ValueError("image/png 4:2:0")) == "ValueError: image/png 4:2:0"


def test_a_log_line_hides_the_open_files_path_and_the_storage_root(tmp_path: Path) -> None:
    from django.core.files import File
    from django.core.files.storage import FileSystemStorage, InMemoryStorage

    from storage_hooks.hooks.images import local_paths
    from storage_hooks.storage import QueuedStorage

    # Spaces: the paths are replaced whole, not cut at the first blank.
    root = tmp_path / "media root"
    upload = tmp_path / "my uploads" / "cat photo.png"
    upload.parent.mkdir()
    upload.write_bytes(b"not an image")
    storage = QueuedStorage(
        local=FileSystemStorage(location=root), remote=InMemoryStorage(), key=unique_key("paths")
    )
    with upload.open("rb") as fh:
        paths = local_paths(storage, File(fh, name=str(upload)))
    exc = OSError(f"cannot read {upload} nor {root / 'thumbs' / 'cat small.png'}")
    assert describe(exc, *paths) == "OSError: cannot read … nor …/thumbs/cat small.png"
    assert local_paths(object(), object()) == (None, None)
