"""The gallery example, end to end, in headless Chromium.

Real parts only: moto's S3 server (its own process), a Celery worker on
kombu's file-system broker, Django's development server, and a browser
that uploads, watches the badges change, and reads the event log.

Set ``GALLERY_SCREENSHOTS=docs/img`` to save the screenshots the docs use.
"""

from __future__ import annotations

import base64
import io
import os
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from PIL import Image

from storage_hooks.errors import DEFAULT_PUBLIC_MESSAGE
from storage_hooks.errors import PUBLIC_MESSAGES as _MESSAGES

pytestmark = pytest.mark.browser

#: Any of the sentences a visitor may read about a failure.
PUBLIC_MESSAGES = re.compile(
    "|".join(re.escape(m) for m in [*_MESSAGES.values(), DEFAULT_PUBLIC_MESSAGE])
)
LIFECYCLE = ["saved_locally", "transfer_queued", "transfer_started", "transferred", "local_deleted"]


def jpeg(color: tuple[int, int, int], size: tuple[int, int] = (960, 640)) -> bytes:
    """A small photo-like JPEG: a gradient, so the thumbnail has something to show."""
    image = Image.linear_gradient("L").resize(size).convert("RGB")
    overlay = Image.new("RGB", size, color)
    out = io.BytesIO()
    Image.blend(image, overlay, 0.6).save(out, format="JPEG", quality=85)
    return out.getvalue()


def card(page: Any, title: str) -> Any:
    return page.locator("[data-photo-id]", has=page.get_by_role("heading", name=title))


def host(url: str) -> str:
    return urlsplit(url).netloc


def wait_for_picture_from(page: Any, card_locator: Any, netloc: str) -> str:
    """Wait until the card's picture is loaded from ``netloc``; its src
    (without the query string of a signed URL)."""
    image = card_locator.locator("img")
    image.element_handle().wait_for_element_state("visible")
    page.wait_for_function(
        """([img, netloc]) => new URL(img.src).host === netloc
                && img.complete && img.naturalWidth > 0""",
        arg=[image.element_handle(), netloc],
    )
    return str(image.get_attribute("src")).split("?")[0]


def events_of(page: Any, name: str) -> list[tuple[str, str]]:
    """(event, "web" or "worker") of each row of the log about ``name``."""
    rows = page.eval_on_selector_all(
        "tr[data-kind]",
        "(rows, name) => rows.filter(r => r.querySelector('td.file').textContent === name)"
        ".map(r => [r.dataset.kind, r.querySelector('td.process').textContent])",
        name,
    )
    return [(kind, process.split()[0]) for kind, process in rows]


def event_kinds(page: Any, name: str) -> list[str]:
    return [kind for kind, _ in events_of(page, name)]


def screenshot(page: Any, filename: str) -> None:
    folder = os.environ.get("GALLERY_SCREENSHOTS")
    if folder:
        page.screenshot(path=str(Path(folder) / filename), full_page=False)


def drop_files(page: Any, selector: str, files: dict[str, bytes]) -> None:
    """Drop files on an element the way a user's drag and drop does."""
    page.evaluate(
        """([selector, files]) => {
            const transfer = new DataTransfer();
            for (const [name, data] of Object.entries(files)) {
                const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
                transfer.items.add(new File([bytes], name, { type: "image/jpeg" }));
            }
            const zone = document.querySelector(selector);
            for (const type of ["dragenter", "dragover", "drop"]) {
                zone.dispatchEvent(new DragEvent(type, { dataTransfer: transfer, bubbles: true }));
            }
        }""",
        [selector, {name: base64.b64encode(data).decode() for name, data in files.items()}],
    )


def test_upload_goes_local_then_remote_with_the_whole_lifecycle(page: Any, stack: Any) -> None:
    from playwright.sync_api import expect

    stack.start("s3", "web")  # no worker yet: the upload waits in the local storage

    page.goto(stack.url + "upload/")
    drop_files(page, "[data-dropzone]", {"harbour.jpg": jpeg((30, 90, 160))})
    expect(page.locator("[data-picked] li")).to_contain_text(["harbour.jpg"])
    page.get_by_label("Title").fill("Harbour")
    page.get_by_role("button", name="Upload").click()

    page.wait_for_url(stack.url)
    expect(page.get_by_role("status")).to_contain_text("1 photo saved locally and queued")
    photo = card(page, "Harbour")
    expect(photo.locator("[data-field=status]")).to_have_text("queued")
    expect(photo.locator("[data-field=where]")).to_have_text("local")
    local_url = str(photo.locator("[data-field=url]").get_attribute("href"))
    assert local_url.startswith(stack.url + "media/photos/")
    assert local_url.endswith("/harbour.jpg")
    # Until it is transferred, the local storage serves the original.
    wait_for_picture_from(page, photo, host(stack.url))

    stack.start("worker")
    expect(photo.locator("[data-field=status]")).to_have_text("remote")
    expect(photo.locator("[data-field=where]")).to_have_text("remote")
    remote_url = str(photo.locator("[data-field=url]").get_attribute("href")).split("?")[0]
    assert remote_url == f"{stack.s3_endpoint}/gallery/{local_url.split('/media/')[1]}"
    # The thumbnail, made by the worker at transfer_started, comes from S3.
    src = wait_for_picture_from(page, photo, host(stack.s3_endpoint))
    assert src.endswith("/harbour.small.webp")
    expect(photo.locator("form[data-transfer]")).to_be_hidden()
    screenshot(page, "gallery.png")

    name = remote_url.split("/gallery/", 1)[1]
    photo.get_by_role("link", name="Events").click()
    page.wait_for_function(
        "(name) => [...document.querySelectorAll('tr[data-kind]')]"
        ".filter(r => r.querySelector('td.file').textContent === name).length >= 5",
        arg=name,
    )
    # Each signal is recorded by the process that sent it.
    assert events_of(page, name) == [
        ("saved_locally", "web"),
        ("transfer_queued", "web"),
        ("transfer_started", "worker"),
        ("transferred", "worker"),
        ("local_deleted", "worker"),
    ]
    # The worker saved and queued the thumbnail itself, while another of its
    # threads may already have started it: the same events, ends certain.
    thumbnail = name.replace(".jpg", ".small.webp")
    page.wait_for_function(
        "(name) => [...document.querySelectorAll('tr[data-kind=local_deleted]')]"
        ".some(r => r.querySelector('td.file').textContent === name)",
        arg=thumbnail,
    )
    assert {process for _, process in events_of(page, thumbnail)} == {"worker"}
    kinds = event_kinds(page, thumbnail)
    assert sorted(kinds) == sorted(LIFECYCLE)
    assert kinds[-2:] == ["transferred", "local_deleted"]
    screenshot(page, "events.png")

    # The ledger's admin (storage_hooks/admin.py) lists both files as remote.
    page.goto(stack.url + "admin/storage_hooks/storedfile/?status__exact=remote")
    page.get_by_label("Username").fill("admin")
    page.get_by_label("Password").fill("admin")
    page.get_by_role("button", name="Log in").click()
    rows = page.locator("#result_list tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.filter(has_text=thumbnail)).to_have_count(1)


def test_failed_transfer_shows_then_recovers_on_retry(page: Any, stack: Any) -> None:
    from playwright.sync_api import expect

    stack.start()
    stack.stop("s3")  # S3 is down: every attempt fails to connect

    page.goto(stack.url + "upload/")
    page.get_by_label("Images").set_input_files(
        [{"name": "dunes.jpg", "mimeType": "image/jpeg", "buffer": jpeg((200, 140, 60))}]
    )
    page.get_by_role("button", name="Upload").click()
    page.wait_for_url(stack.url)

    photo = card(page, "Dunes")
    # RETRIES=1: two attempts, then FAILED; the local copy still serves it.
    expect(photo.locator("[data-field=status]")).to_have_text("failed")
    expect(photo.locator("[data-field=where]")).to_have_text("local")
    # Visitors read a fixed sentence for the failure's kind, never the
    # error's text (the endpoint, the bucket): that is for the admin.
    expect(photo.locator("[data-field=error]")).to_have_text(PUBLIC_MESSAGES)
    assert "Endpoint" not in str(photo.locator("[data-field=error]").text_content())
    wait_for_picture_from(page, photo, host(stack.url))
    retry = photo.get_by_role("button", name="Retry")
    expect(retry).to_be_visible()
    screenshot(page, "failed.png")

    stack.start("s3")  # the same port, an empty bucket again
    retry.click()
    expect(photo.locator("[data-field=status]")).to_have_text("remote")
    src = wait_for_picture_from(page, photo, host(stack.s3_endpoint))
    assert src.endswith("/dunes.small.webp")
    expect(photo.locator("[data-field=error]")).to_be_hidden()
    expect(retry).to_be_hidden()

    photo.get_by_role("link", name="Events").click()
    name = src.split("/gallery/", 1)[1].replace(".small.webp", ".jpg")
    page.wait_for_function(
        "(name) => [...document.querySelectorAll('tr[data-kind=local_deleted]')]"
        ".some(r => r.querySelector('td.file').textContent === name)",
        arg=name,
    )
    details = page.eval_on_selector_all(
        "tr[data-kind=transfer_failed] td.details", "cells => cells.map(c => c.textContent)"
    )
    assert len(details) >= 2  # the original's two attempts, and its thumbnail's
    assert all(PUBLIC_MESSAGES.search(text) for text in details)
    assert not any("Endpoint" in text or "127.0.0.1" in text for text in details)
    kinds = event_kinds(page, name)
    # Two failed attempts, then the retry queues a third, which succeeds.
    # (With a worker already running, it may note an attempt's start a moment
    # before the web server notes the queueing: the two processes write their
    # events independently, so only counts and the ends are certain.)
    assert kinds[0] == "saved_locally"
    assert kinds.count("transfer_failed") == 2
    assert kinds.count("transfer_queued") == 2
    assert kinds.count("transfer_started") == 3
    assert kinds[-2:] == ["transferred", "local_deleted"]


def fits(page: Any, selector: str) -> bool:
    """Whether the element's content fits its width (no horizontal scroll)."""
    return bool(page.eval_on_selector(selector, "e => e.scrollWidth <= e.clientWidth + 1"))


def test_cards_line_up_and_admin_lists_fit_at_1280px(page: Any, stack: Any) -> None:
    """Portrait and landscape photos get cards of one size, and the photos'
    and the ledger's admin lists fit a 1280 px window without scrolling."""
    from playwright.sync_api import expect

    stack.start("s3", "web")  # no worker: the local copies are shown
    page.goto(stack.url + "upload/")
    long_name = "a-very-long-name-for-a-panorama-of-the-whole-mountain-range.jpg"
    shapes = {"tower.jpg": (480, 900), "lake.jpg": (900, 480), long_name: (1600, 400)}
    page.get_by_label("Images").set_input_files(
        [
            {"name": name, "mimeType": "image/jpeg", "buffer": jpeg((90, 90, 160), size)}
            for name, size in shapes.items()
        ]
    )
    page.get_by_role("button", name="Upload").click()
    page.wait_for_url(stack.url)
    cards = [card(page, "Tower"), card(page, "Lake")]
    for each in cards:
        wait_for_picture_from(page, each, host(stack.url))
    boxes = [each.bounding_box() for each in cards]
    frames = [each.locator(".photo-frame").bounding_box() for each in cards]
    assert boxes[0]["y"] == boxes[1]["y"]
    assert boxes[0]["height"] == boxes[1]["height"]
    assert frames[0]["height"] == frames[1]["height"]
    assert abs(frames[0]["height"] / frames[0]["width"] - 3 / 4) < 0.01

    page.goto(stack.url + "admin/photos/photo/")
    page.get_by_label("Username").fill("admin")
    page.get_by_label("Password").fill("admin")
    page.get_by_role("button", name="Log in").click()
    expect(page.locator("#result_list tbody tr")).to_have_count(3)
    # Before its transfer a photo has no thumbnail: no 7 MB original here.
    expect(page.locator("#result_list img")).to_have_count(0)
    expect(page.locator(".preview-pending")).to_have_count(3)
    assert fits(page, "#changelist .results")
    page.goto(stack.url + "admin/storage_hooks/storedfile/")
    expect(page.locator("#result_list tbody tr")).to_have_count(3)
    assert fits(page, "#changelist .results")
    screenshot(page, "admin-ledger.png")


def jpeg_with_gps(color: tuple[int, int, int]) -> bytes:
    """A JPEG with EXIF: camera make and a GPS position."""
    image = Image.linear_gradient("L").resize((960, 640)).convert("RGB")
    image = Image.blend(image, Image.new("RGB", image.size, color), 0.6)
    exif = Image.Exif()
    exif[0x010F] = "DemoCam"  # Make
    exif[0x8825] = {1: "N", 2: (48.0, 51.0, 24.0), 3: "E", 4: (2.0, 21.0, 3.0)}  # GPS
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=85, exif=exif.tobytes())
    return out.getvalue()


def test_metadata_is_stripped_before_s3_and_the_log_shows_it(page: Any, stack: Any) -> None:
    import boto3
    from playwright.sync_api import expect

    upload = jpeg_with_gps((200, 80, 40))
    assert Image.open(io.BytesIO(upload)).getexif().get_ifd(0x8825)
    stack.start()
    page.goto(stack.url + "upload/")
    page.get_by_label("Images").set_input_files(
        [{"name": "paris.jpg", "mimeType": "image/jpeg", "buffer": upload}]
    )
    page.get_by_role("button", name="Upload").click()
    page.wait_for_url(stack.url)
    photo = card(page, "Paris")
    expect(photo.locator("[data-field=status]")).to_have_text("remote")
    name = str(photo.locator("[data-field=url]").get_attribute("href")).split("?")[0]
    name = name.split("/gallery/", 1)[1]

    s3 = boto3.client(
        "s3", endpoint_url=stack.s3_endpoint, region_name="us-east-1",
        aws_access_key_id="demo", aws_secret_access_key="demo",
    )  # fmt: skip
    stored = s3.get_object(Bucket="gallery", Key=name)["Body"].read()
    assert len(stored) < len(upload)
    cleaned = Image.open(io.BytesIO(stored)).getexif()
    assert not cleaned.get_ifd(0x8825)
    assert 0x010F not in cleaned

    photo.get_by_role("link", name="Events").click()
    row = page.locator("tr[data-kind=metadata_stripped]", has_text=name)
    expect(row).to_have_count(1)
    expect(row.locator("td.details")).to_contain_text("\u2192")
    kinds = event_kinds(page, name)
    # Noted by the transfer_started receiver: StripMetadata ran before it.
    assert kinds.index("metadata_stripped") == kinds.index("transfer_started") + 1
    screenshot(page, "events.png")
