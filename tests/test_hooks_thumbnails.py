"""Thumbnails: made with Pillow on transfer_started, saved through the same
storage as derivatives (so transferred too); anything that cannot be read
safely is left alone."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import FileSystemStorage
from PIL import EpsImagePlugin, Image

from storage_hooks import Status, signals
from storage_hooks.hooks import DeleteLocal, Thumbnails
from storage_hooks.models import StoredFile
from storage_hooks.storage import QueuedStorage

from .conftest import unique_key
from .imagefiles import EPS, encoded, fake_ghostscript, halves, path_with, png_header_only
from .testapp.storages import fs_pair

pytestmark = pytest.mark.django_db(transaction=True)

SIZES = {"small": (100, 100), "wide": (300, 50)}


def image_bytes(
    size: tuple[int, int], fmt: str, mode: str = "RGB", colour: str = "orange"
) -> bytes:
    out = io.BytesIO()
    Image.new(mode, size, colour).save(out, format=fmt)
    return out.getvalue()


def colour_of(path: Path, xy: tuple[int, int] = (0, 0)) -> str:
    """The strongest of red, green and blue at ``xy`` of an image."""
    with Image.open(path) as image:
        pixel = image.convert("RGB").getpixel(xy)
    assert isinstance(pixel, tuple)
    return ("red", "green", "blue")[pixel.index(max(pixel))]


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


def test_transparent_pixels_are_white_in_jpeg_thumbnails(local_dir: Path, remote_dir: Path) -> None:
    logo = Image.new("RGBA", (40, 40), (0, 0, 0, 0))  # transparent black
    logo.paste((255, 0, 0, 255), (0, 0, 20, 40))  # left half opaque red
    storage = storage_with(local_dir, remote_dir, Thumbnails({"s": (20, 20)}, format="JPEG"))
    storage.save("logo.png", ContentFile(encoded(logo, "PNG")))
    with Image.open(remote_dir / "logo.s.jpg") as thumb:
        assert thumb.mode == "RGB"
        red, right = thumb.getpixel((3, 10)), thumb.getpixel((16, 10))
    assert isinstance(red, tuple)
    assert isinstance(right, tuple)
    assert red[0] > 200 > max(red[1:])
    assert min(right) > 240  # white, not the black under the transparency


def test_a_thumbnail_is_in_the_format_its_name_says(local_dir: Path, remote_dir: Path) -> None:
    storage = storage_with(local_dir, remote_dir, Thumbnails({"small": (32, 32)}))
    storage.save("mislabelled.png", ContentFile(encoded(halves(), "JPEG")))
    assert opened(remote_dir / "mislabelled.small.png") == ("PNG", (32, 16))


def multi_picture_jpeg() -> bytes:
    """A JPEG with a second picture (MPO), as phone cameras write them."""
    return encoded(halves(), "MPO", save_all=True, append_images=[halves()])


@pytest.mark.parametrize(
    ("name", "data", "fmt"),
    [
        ("upload", image_bytes((64, 32), "PNG", mode="RGBA"), "PNG"),
        ("upload.bin", image_bytes((64, 32), "JPEG"), "JPEG"),
        ("camera", multi_picture_jpeg(), "JPEG"),
    ],
)
def test_an_image_without_an_image_extension_keeps_its_own_format(
    local_dir: Path, remote_dir: Path, name: str, data: bytes, fmt: str
) -> None:
    storage = storage_with(local_dir, remote_dir, Thumbnails({"small": (32, 32)}))
    storage.save(name, ContentFile(data))
    (thumbnail,) = storage.derivatives(name).values()
    assert opened(remote_dir / thumbnail) == (fmt, (32, 16))


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
    assert str(local_dir) not in caplog.text  # no absolute local path in logs


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
        ({"x": (10, 0)}, "must be positive"),
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


def test_the_ledger_knows_the_thumbnails_of_each_original(
    local_dir: Path, remote_dir: Path
) -> None:
    storage = storage_with(local_dir, remote_dir, Thumbnails(SIZES))
    storage.save("cat.png", ContentFile(image_bytes((400, 200), "PNG")))
    assert storage.derivatives("cat.png") == {"small": "cat.small.png", "wide": "cat.wide.png"}
    assert storage.source_of("cat.small.png") == "cat.png"
    assert storage.source_of("cat.png") is None


def test_two_originals_with_one_stem_get_thumbnails_of_their_own(
    local_dir: Path, remote_dir: Path
) -> None:
    storage = storage_with(local_dir, remote_dir, Thumbnails({"small": (32, 32)}, format="WEBP"))
    storage.save("cat.png", ContentFile(image_bytes((64, 64), "PNG", colour="red")))
    storage.save("cat.jpg", ContentFile(image_bytes((64, 64), "JPEG", colour="blue")))
    of_png = storage.derivatives("cat.png")["small"]
    of_jpg = storage.derivatives("cat.jpg")["small"]
    assert of_png == "cat.small.webp"
    assert of_jpg != of_png
    assert of_jpg.endswith(".small.webp")
    assert colour_of(remote_dir / of_png) == "red"  # cat.png's own thumbnail
    assert colour_of(remote_dir / of_jpg) == "blue"  # cat.jpg's own thumbnail


def test_an_upload_named_like_a_thumbnail_is_never_taken_for_one(
    local_dir: Path, remote_dir: Path
) -> None:
    storage = storage_with(local_dir, remote_dir, Thumbnails({"small": (32, 32)}, format="WEBP"))
    upload = image_bytes((50, 50), "WEBP", colour="green")
    assert storage.save("dog.small.webp", ContentFile(upload)) == "dog.small.webp"
    storage.save("dog.png", ContentFile(image_bytes((64, 64), "PNG", colour="red")))
    thumbnail = storage.derivatives("dog.png")["small"]
    assert thumbnail != "dog.small.webp"
    assert colour_of(remote_dir / thumbnail) == "red"  # made from dog.png
    assert (remote_dir / "dog.small.webp").read_bytes() == upload  # the upload stands
    assert storage.source_of("dog.small.webp") is None  # and is an original:
    assert storage.derivatives("dog.small.webp") == {"small": "dog.small.small.webp"}


def test_derivatives_are_not_derived_again(local_dir: Path, remote_dir: Path) -> None:
    # Two hooks: neither makes thumbnails of the other's thumbnails, whose
    # names carry a label it does not know.
    storage = storage_with(
        local_dir, remote_dir, Thumbnails({"a": (40, 40)}), Thumbnails({"b": (20, 20)})
    )
    storage.save("cat.png", ContentFile(image_bytes((80, 80), "PNG")))
    assert ledger_names(storage) == ["cat.a.png", "cat.b.png", "cat.png"]
    assert storage.derivatives("cat.png") == {"a": "cat.a.png", "b": "cat.b.png"}


def test_thumbnails_are_turned_upright(local_dir: Path, remote_dir: Path) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # shown turned 90 degrees clockwise
    storage = storage_with(local_dir, remote_dir, Thumbnails({"small": (32, 32)}))
    storage.save("up.jpg", ContentFile(encoded(halves((64, 32)), "JPEG", exif=exif)))
    assert opened(remote_dir / "up.small.jpg") == ("JPEG", (16, 32))
    top = colour_of(remote_dir / "up.small.jpg", (8, 4))
    bottom = colour_of(remote_dir / "up.small.jpg", (8, 28))
    assert (top, bottom) == ("red", "blue")


def test_the_thumbnails_carry_no_metadata_but_the_colour_profile(
    local_dir: Path, remote_dir: Path
) -> None:
    from .imagefiles import XMP, gps_exif, srgb_profile

    icc = srgb_profile()
    data = encoded(halves(), "JPEG", exif=gps_exif(), xmp=XMP, icc_profile=icc, comment=b"home")
    storage = storage_with(local_dir, remote_dir, Thumbnails({"small": (32, 32)}))
    storage.save("cat.jpg", ContentFile(data))
    with Image.open(remote_dir / "cat.small.jpg") as thumb:
        assert not thumb.getexif()
        assert {"exif", "xmp", "comment"}.isdisjoint(thumb.info)
        assert thumb.info["icc_profile"] == icc


@pytest.fixture
def fake_gs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A ``gs`` first on PATH that leaves a marker file if it is ever run;
    returns the marker's path."""
    marker = tmp_path / "ghostscript-ran"
    fake_ghostscript(tmp_path / "bin", marker)
    monkeypatch.setenv("PATH", path_with(tmp_path / "bin"))
    monkeypatch.setattr(EpsImagePlugin, "gs_binary", None)  # look for gs again
    return marker


@pytest.mark.parametrize("name", ["drawing.eps", "photo.png"])  # whatever the extension says
def test_postscript_never_reaches_ghostscript(
    local_dir: Path,
    remote_dir: Path,
    fake_gs: Path,
    caplog: pytest.LogCaptureFixture,
    name: str,
) -> None:
    storage = storage_with(local_dir, remote_dir, Thumbnails(SIZES))
    with caplog.at_level(logging.INFO, logger="storage_hooks"):
        saved = storage.save(name, ContentFile(EPS))
    assert not fake_gs.exists()
    assert storage.status(saved) == Status.REMOTE
    assert (remote_dir / saved).read_bytes() == EPS
    assert ledger_names(storage) == [saved]
    assert f"No thumbnails for {saved!r}: Pillow cannot read it as JPEG/PNG/GIF/WEBP" in caplog.text
    assert str(local_dir) not in caplog.text


def test_an_image_over_the_pixel_budget_is_not_decoded(
    local_dir: Path, remote_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    bomb = png_header_only(11_000, 11_000)  # 121 Mpx: Pillow would only warn
    storage = storage_with(local_dir, remote_dir, Thumbnails(SIZES))
    with caplog.at_level(logging.INFO, logger="storage_hooks"):
        storage.save("bomb.png", ContentFile(bomb))
    assert storage.status("bomb.png") == Status.REMOTE
    assert (remote_dir / "bomb.png").read_bytes() == bomb
    assert ledger_names(storage) == ["bomb.png"]
    assert "No thumbnails for 'bomb.png': refused before decoding" in caplog.text


def test_a_pixel_budget_of_its_own(
    local_dir: Path, remote_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    storage = storage_with(local_dir, remote_dir, Thumbnails(SIZES, max_pixels=100 * 100 - 1))
    with caplog.at_level(logging.INFO, logger="storage_hooks"):
        storage.save("cat.png", ContentFile(image_bytes((100, 100), "PNG")))
    assert ledger_names(storage) == ["cat.png"]
    assert "100x100 is 10000 pixels, over the budget of 9999" in caplog.text


def test_a_format_left_out_of_the_allowlist_gets_no_thumbnails(
    local_dir: Path, remote_dir: Path
) -> None:
    storage = storage_with(local_dir, remote_dir, Thumbnails(SIZES, formats=["JPEG"]))
    storage.save("cat.png", ContentFile(image_bytes((100, 100), "PNG")))
    storage.save("cat.jpg", ContentFile(image_bytes((100, 100), "JPEG")))
    assert storage.derivatives("cat.png") == {}
    assert set(storage.derivatives("cat.jpg")) == {"small", "wide"}


LONG_NAME = "d" * 246 + ".png"  # 250 bytes; its thumbnail's name, 256, is one too many


def test_a_thumbnail_that_cannot_be_saved_is_logged_and_skipped(
    local_dir: Path, remote_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # The local file system refuses the thumbnail's name (a real fault, no mock).
    storage = storage_with(local_dir, remote_dir, Thumbnails({"small": (10, 10)}))
    with caplog.at_level(logging.INFO, logger="storage_hooks"):
        saved = storage.save(LONG_NAME, ContentFile(image_bytes((20, 20), "PNG")))
    assert storage.status(saved) == Status.REMOTE
    assert sorted(p.name for p in remote_dir.iterdir()) == [saved]
    assert f"The 'small' thumbnail of {saved!r} was not saved (OSError" in caplog.text
    assert str(local_dir) not in caplog.text


def test_a_thumbnail_that_cannot_be_saved_leaves_no_ledger_row(
    local_dir: Path, remote_dir: Path
) -> None:
    storage = storage_with(local_dir, remote_dir, Thumbnails({"small": (10, 10)}))
    saved = storage.save(LONG_NAME, ContentFile(image_bytes((20, 20), "PNG")))
    assert ledger_names(storage) == [saved]
    assert storage.derivatives(saved) == {}


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"format": "TIFF"}, "cannot be written as 'TIFF'"),
        ({"quality": 0}, "between 1 and 100"),
        ({"formats": ["EPS"]}, "never decoded"),
        ({"max_pixels": 0}, "positive whole number"),
    ],
)
def test_bad_options_are_refused(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Thumbnails({"small": (10, 10)}, **options)


@pytest.mark.parametrize("quality", [1, 100])
def test_the_whole_documented_quality_range_is_accepted(quality: int) -> None:
    assert Thumbnails({"small": (10, 10)}, quality=quality).quality == quality


def test_jpeg_thumbnails_are_encoded_at_quality_85_by_default(
    local_dir: Path, remote_dir: Path
) -> None:
    storage = storage_with(local_dir, remote_dir, Thumbnails({"small": (32, 32)}))
    storage.save("sky.jpg", ContentFile(encoded(halves(), "JPEG", quality=50)))
    with Image.open(remote_dir / "sky.small.jpg") as thumb:
        tables = thumb.quantization  # type: ignore[attr-defined]
    with Image.open(io.BytesIO(encoded(halves((32, 16)), "JPEG", quality=85))) as reference:
        assert tables == reference.quantization  # type: ignore[attr-defined]


CHILD = r"""
import json, resource, sys
import django
django.setup()
from storage_hooks.hooks import Thumbnails

hook = Thumbnails({"small": (128, 128), "medium": (400, 400)}, format="WEBP")
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
with open(sys.argv[1], "rb") as fh:
    made = hook.render(fh, ["small", "medium"], target="WEBP")
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"growth_kib": after - before, "sizes": {k: len(v) for k, v in made.items()}}))
"""

MAKE_LARGE_JPEG = r"""
import sys
from PIL import Image
Image.linear_gradient("L").resize((8000, 8000)).convert("RGB").save(sys.argv[1], quality=80)
"""


@pytest.mark.skipif(sys.platform != "linux", reason="ru_maxrss is in KiB on Linux")
def test_a_large_jpeg_costs_the_worker_little_memory(tmp_path: Path) -> None:
    """An 8000x8000 JPEG decoded in full would take 244 MiB (4 bytes a
    pixel); decoded at 1/8 scale (draft), about 4 MiB."""
    photo = tmp_path / "large.jpg"
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings"}
    root = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join([root, env.get("PYTHONPATH", "")])
    subprocess.run([sys.executable, "-c", MAKE_LARGE_JPEG, str(photo)], check=True, env=env)
    child = subprocess.run(
        [sys.executable, "-c", CHILD, str(photo)],
        check=True,
        env=env,
        cwd=root,
        capture_output=True,
        text=True,
    )
    result = json.loads(child.stdout)
    assert all(size > 0 for size in result["sizes"].values())
    assert result["growth_kib"] < 200 * 1024, result


@pytest.fixture
def pillow_mebibytes() -> Iterator[Callable[[], int]]:
    """Counts the memory Pillow allocates for pixels, in MiB blocks."""
    block_size = Image.core.get_block_size()
    Image.core.set_block_size(1 << 20)
    Image.core.reset_stats()
    yield lambda: Image.core.get_stats()["allocated_blocks"]
    Image.core.set_block_size(block_size)


def test_thumbnails_of_a_large_jpeg_cost_a_fraction_of_one_full_decode(
    pillow_mebibytes: Callable[[], int],
) -> None:
    """A 4000x3000 JPEG takes 46 MiB decoded in full; for 64-pixel
    thumbnails it is decoded at 1/8 scale (draft)."""
    photo = encoded(Image.linear_gradient("L").resize((4000, 3000)).convert("RGB"), "JPEG")
    Image.core.reset_stats()
    made = Thumbnails({"small": (64, 64)}).render(io.BytesIO(photo), ["small"], target="JPEG")
    assert Image.open(io.BytesIO(made["small"])).size == (64, 48)
    assert pillow_mebibytes() < 8
