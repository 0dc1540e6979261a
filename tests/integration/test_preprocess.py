"""Preprocessing the original in a real Celery worker (Redis), before it
leaves for moto's S3: transforming preprocessors in order, a receiver's
replace_local(), Rejected, a failing preprocessor, StripMetadata and
Thumbnails made from the processed original."""

from __future__ import annotations

import hashlib
import io

import pytest
from django.core.files.base import ContentFile

from storage_hooks import Status

from .harness import ledger_row

pytestmark = pytest.mark.integration

HOOKS = "tests.integration.preprocessors"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_preprocessors_and_a_receiver_change_the_original_before_it_leaves(site):
    site.configure(
        hooks=(
            f"{HOOKS}.Redact",
            f"{HOOKS}.Stamp",
            f"{HOOKS}.CheckedByReceiver",
            "storage_hooks.hooks.DeleteLocal",
        )
    )
    site.start_worker()
    name = site.storage.save("notes.txt", ContentFile(b"the secret plan"))
    by_receiver = site.storage.save("receiver/r.txt", ContentFile(b"plain"))
    site.wait_status(name, Status.REMOTE)
    site.wait_status(by_receiver, Status.REMOTE)
    expected = b"the ****** plan\nstamped: secret-free"  # Redact, then Stamp
    assert site.remote_bytes(name) == expected
    row = ledger_row(site.deployment.key, name)
    assert (row.size, row.checksum, row.preprocessed) == (len(expected), sha256(expected), True)
    assert site.remote_bytes(by_receiver) == b"plain\nstamped: secret-free (checked)"
    assert not site.local_path(name).exists()  # DeleteLocal, after the proof


def test_a_rejected_file_gets_one_attempt_and_nothing_reaches_s3(site):
    site.configure(hooks=(f"{HOOKS}.Scanner", "storage_hooks.hooks.DeleteLocal"))
    site.start_worker()
    infected = b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"
    name = site.storage.save("upload.com", ContentFile(infected))
    site.wait_status(name, Status.FAILED)
    failures = site.events("transfer_failed", name=name)
    assert [(e["attempt"], e["will_retry"]) for e in failures] == [(1, False)]
    assert failures[0]["exception"].startswith("Rejected: infected")
    row = ledger_row(site.deployment.key, name)
    assert (row.failure, row.attempts) == ("rejected", 1)
    assert site.remote_names() == []
    assert site.local_path(name).read_bytes() == infected  # kept for inspection


def test_a_failing_preprocessor_is_retried_and_the_original_stays_intact(site):
    site.configure(hooks=(f"{HOOKS}.FlakyOnce", f"{HOOKS}.Redact"))
    site.start_worker()
    name = site.storage.save("flaky/f.txt", ContentFile(b"a secret"))
    site.wait_status(name, Status.REMOTE)
    failures = site.events("transfer_failed", name=name)
    assert [(e["attempt"], e["will_retry"]) for e in failures] == [(1, True)]
    assert site.remote_bytes(name) == b"a ******"


def jpeg_with_gps() -> bytes:
    from PIL import Image

    exif = Image.Exif()
    exif[0x010F] = "CameraMaker"
    gps = exif.get_ifd(0x8825)
    gps[1] = "N"
    gps[2] = (52.0, 31.0, 12.0)
    out = io.BytesIO()
    Image.new("RGB", (320, 200), (200, 40, 40)).save(out, "JPEG", exif=exif)
    return out.getvalue()


def png_with_text() -> bytes:
    from PIL import Image, PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("Author", "Jane Doe, 12 Secret Street")
    out = io.BytesIO()
    Image.new("RGB", (100, 60), (10, 120, 200)).save(out, "PNG", pnginfo=info)
    return out.getvalue()


def test_strip_metadata_and_thumbnails_of_the_processed_original(site):
    from PIL import Image

    site.configure(hooks=(f"{HOOKS}.strip_metadata", f"{HOOKS}.thumbnails"))
    site.start_worker()
    photo = site.storage.save("photos/cat.jpg", ContentFile(jpeg_with_gps()))
    drawing = site.storage.save("photos/plan.png", ContentFile(png_with_text()))
    site.wait_status(photo, Status.REMOTE)
    site.wait_status(drawing, Status.REMOTE)
    with Image.open(io.BytesIO(site.remote_bytes(photo))) as image:
        exif = image.getexif()
        assert not exif.get_ifd(0x8825)  # no GPS on S3
        assert 0x010F not in exif
    with Image.open(io.BytesIO(site.remote_bytes(drawing))) as image:
        assert "Author" not in image.info
    thumbs = site.storage.derivatives(photo)
    assert set(thumbs) == {"small"}
    site.wait_status(thumbs["small"], Status.REMOTE)
    with Image.open(io.BytesIO(site.remote_bytes(thumbs["small"]))) as image:
        assert max(image.size) <= 64
        assert not image.getexif().get_ifd(0x8825)
