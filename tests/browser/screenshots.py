"""Make the screenshots of the docs (docs/img/*.png) from the real demo.

    .venv/bin/python -m tests.browser.screenshots [docs/img]

It starts the gallery's stack in a temporary directory, uploads a few
generated pictures so that the gallery shows every kind of badge (remote,
failed, queued), and photographs the gallery, the event log, the upload
page and the ledger's admin with headless Chromium.
"""

from __future__ import annotations

import io
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFilter

from tests import services
from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS, FAST_RETRIES, load_demo

#: (title, sky top, sky bottom, sun, hills) of each generated picture.
SCENES = [
    ("Harbour at dawn", (255, 183, 130), (255, 236, 210), (255, 250, 235), (46, 74, 98)),
    ("Dunes", (250, 210, 150), (255, 240, 215), (255, 255, 240), (196, 132, 70)),
    ("Alpine lake", (120, 170, 230), (220, 236, 250), (255, 255, 255), (60, 100, 90)),
    ("Meadow", (150, 200, 240), (235, 245, 250), (255, 248, 220), (92, 150, 70)),
    ("Night sky", (15, 20, 50), (60, 60, 120), (235, 235, 210), (20, 25, 40)),
    ("Coast", (110, 180, 215), (225, 240, 245), (255, 252, 240), (40, 110, 140)),
]


#: The part of a page the docs show (the top 660 pixels).
CLIP = {"x": 0, "y": 0, "width": 1240, "height": 660}


def picture(sky_top: Any, sky_bottom: Any, sun: Any, hills: Any, seed: int) -> bytes:
    """A simple landscape: a sky gradient, a sun and two rows of hills."""
    width, height = 1200, 800
    mask = Image.linear_gradient("L").resize((width, height))
    image = Image.composite(
        Image.new("RGB", mask.size, sky_bottom), Image.new("RGB", mask.size, sky_top), mask
    )
    draw = ImageDraw.Draw(image)
    cx = 300 + seed * 130 % 700
    draw.ellipse((cx - 70, 170, cx + 70, 310), fill=sun)
    for row, (base, shade) in enumerate(((520, 0.75), (620, 1.0))):
        color = tuple(int(c * shade) for c in hills)
        points = [(0, height)]
        for x in range(0, width + 100, 100):
            y = base - (((x // 100 + seed + row * 3) * 37) % 90)
            points.append((x, y))
        points.append((width, height))
        draw.polygon(points, fill=color)
    out = io.BytesIO()
    image.filter(ImageFilter.GaussianBlur(1.2)).save(out, format="JPEG", quality=82)
    return out.getvalue()


def upload(page: Any, url: str, scenes: list[tuple[Any, ...]]) -> None:
    page.goto(url + "upload/")
    files = [
        {"name": f"{title.lower().replace(' ', '-')}.jpg", "mimeType": "image/jpeg",
         "buffer": picture(*colors, seed=i)}
        for i, (title, *colors) in enumerate(scenes)
    ]  # fmt: skip
    page.get_by_label("Images").set_input_files(files)
    page.get_by_role("button", name="Upload").click()
    page.wait_for_url(url)


def wait_for_badges(page: Any, count: int, status: str) -> None:
    page.wait_for_function(
        "([n, s]) => document.querySelectorAll(`[data-status=${s}]`).length >= n",
        arg=[count, status],
        timeout=30_000,
    )


def bucket(stack: Any) -> Any:
    """A boto3 client of the demo's moto server."""
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=stack.s3_endpoint,
        region_name="us-east-1",
        aws_access_key_id="demo",
        aws_secret_access_key="demo",
    )


def main(out: Path) -> None:
    from playwright.sync_api import sync_playwright

    out.mkdir(parents=True, exist_ok=True)
    demo = load_demo()
    with tempfile.TemporaryDirectory() as tmp, open(Path(tmp) / "stack.log", "w") as log:
        stack = demo.Stack(
            var_dir=Path(tmp) / "var", port=services.free_port(), env=FAST_RETRIES, log=log
        )
        try:
            stack.migrate(superuser=True)
            stack.start()
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                page = browser.new_page(viewport={"width": 1240, "height": 900})
                upload(page, stack.url, SCENES[:4])
                wait_for_badges(page, 4, "remote")
                page.wait_for_function(
                    "() => [...document.querySelectorAll('[data-photo-id] img')]"
                    ".every(i => i.src.includes('.small.webp') && i.naturalWidth > 0)"
                )
                # Someone else's file already has the next photo's name in the
                # bucket: storage_hooks refuses to overwrite it (FAILED at once).
                month = datetime.now(timezone.utc).strftime("%Y/%m")
                bucket(stack).put_object(
                    Bucket=demo.DEMO_BUCKET, Key=f"photos/{month}/night-sky.jpg", Body=b"theirs"
                )
                upload(page, stack.url, SCENES[4:5])
                wait_for_badges(page, 1, "failed")
                stack.stop("worker")
                upload(page, stack.url, SCENES[5:6])
                wait_for_badges(page, 1, "queued")
                page.goto(stack.url)  # without the "saved" message
                page.wait_for_function(
                    "() => [...document.images].every(i => i.complete && i.naturalWidth > 0)"
                )
                page.screenshot(path=str(out / "gallery.png"), full_page=True)

                page.goto(stack.url + "events/?photo=1")
                page.screenshot(path=str(out / "events.png"), clip=CLIP)

                page.goto(stack.url + "upload/")
                page.get_by_label("Images").set_input_files(
                    [
                        {
                            "name": "meadow.jpg",
                            "mimeType": "image/jpeg",
                            "buffer": picture(*SCENES[3][1:], seed=3),
                        }
                    ]
                )
                page.screenshot(path=str(out / "upload.png"), clip=CLIP)

                page.set_viewport_size({"width": 1440, "height": 660})
                page.goto(stack.url + "admin/storage_hooks/storedfile/")
                page.get_by_label("Username").fill("admin")
                page.get_by_label("Password").fill("admin")
                page.get_by_role("button", name="Log in").click()
                page.wait_for_selector("#result_list")
                page.click("#toggle-nav-sidebar")  # more room for the columns
                page.evaluate("window.scrollTo(0, 0)")
                page.screenshot(path=str(out / "admin-ledger.png"))
                browser.close()
        finally:
            stack.stop()
    for png in sorted(out.glob("*.png")):
        shrink(png)
        print(f"{png} ({png.stat().st_size // 1024} KB)")


def shrink(png: Path) -> None:
    """256 colours are plenty for a screenshot, at a third of the size."""
    with Image.open(png) as image:
        small = image.convert("RGB").quantize(
            256, Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE
        )
    small.save(png, optimize=True)


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/img"))
