"""Fixtures of the browser tests: headless Chromium, and the gallery
example's real stack (moto's S3 server, a Celery worker on the file-system
broker, Django's development server) in a temporary var dir."""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests import services

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
#: Short retries, so a failure shows within a second (see test_gallery).
FAST_RETRIES = {
    "GALLERY_RETRIES": "1",
    "GALLERY_RETRY_DELAY": "0.2",
    "GALLERY_S3_MAX_ATTEMPTS": "1",
}


def load_demo() -> ModuleType:
    """examples/gallery/demo.py, which knows how to run the stack."""
    path = REPO / "examples" / "gallery" / "demo.py"
    spec = importlib.util.spec_from_file_location("gallery_demo", path)
    assert spec
    assert spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("gallery_demo", module)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists() and not shutil.which("chromium"):
        services.missing(f"Chromium at {CHROMIUM} (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        services.missing("playwright (pip install playwright)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium"),
            args=CHROMIUM_ARGS,
        )
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    context.set_default_timeout(20_000)
    page = context.new_page()
    yield page
    context.close()


@pytest.fixture(scope="session")
def _gallery_env() -> Iterator[None]:
    """No GALLERY_* variable of the developer's (their Redis or S3) leaks in."""
    with pytest.MonkeyPatch.context() as patch:
        for name in list(os.environ):
            # GALLERY_SCREENSHOTS is the tests' own (where screenshots go).
            if name.startswith("GALLERY_") and name != "GALLERY_SCREENSHOTS":
                patch.delenv(name)
        yield


@pytest.fixture(scope="session")
def migrated_db(_gallery_env: None, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite database with the admin/admin user, made once and
    copied for each test (migrating takes seconds)."""
    var_dir = tmp_path_factory.mktemp("gallery-template")
    with (var_dir / "migrate.log").open("w") as log:
        load_demo().Stack(var_dir=var_dir, port=0, log=log).migrate(superuser=True)
    return var_dir / "gallery.sqlite3"


@pytest.fixture
def stack(migrated_db: Path, tmp_path: Path) -> Iterator[Any]:
    """The gallery's processes, not started yet: each test starts the parts
    it needs, in the order it needs them."""
    var_dir = tmp_path / "var"
    var_dir.mkdir()
    shutil.copy(migrated_db, var_dir / migrated_db.name)
    log_path = tmp_path / "stack.log"
    with log_path.open("w") as log:
        stack = load_demo().Stack(
            var_dir=var_dir, port=services.free_port(), env=FAST_RETRIES, log=log
        )
        try:
            yield stack
        finally:
            stack.stop()
    # Shown by pytest when the test failed: what the processes said.
    print(log_path.read_text()[-8000:])
