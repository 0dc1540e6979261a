"""The documentation: it builds with warnings as errors, its examples run,
it covers every setting, the README stays a short front page, and the
landing page renders in a real browser."""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from storage_hooks.conf import DEFAULTS
from tests import services

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
README = REPO / "README.rst"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"

#: The pages the site must have (issue 14), by file name.
PAGES = [
    "getting-started",
    "concepts",
    "configuration",
    "deployment",
    "operations",
    "fallback",
    "migration",
    "benchmarks",
    "api",
    "changelog",
    "contributing",
]


def sphinx(builder: str, out: Path) -> subprocess.CompletedProcess[str]:
    """Run sphinx-build with warnings as errors, as ``make docs`` does."""
    try:
        import furo  # noqa: F401
        import sphinx  # noqa: F401
    except ImportError:
        services.missing("Sphinx and Furo (the 'docs' dependency group)")
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    return subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", builder, DOCS, out],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


@pytest.fixture(scope="module")
def html(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("html")
    done = sphinx("html", out)
    assert done.returncode == 0, done.stdout + done.stderr
    return out


def test_the_site_builds_without_a_warning(html: Path) -> None:
    for page in PAGES:
        assert (html / f"{page}.html").exists(), page
    api = (html / "api.html").read_text()
    # autodoc found the objects and their docstrings, not only the headings.
    for name in (
        "storage.QueuedStorage",
        "storage.QueuedStorage.transfer",
        "storage.QueuedStorage.status",
        "fallback.FallbackStorage",
        "status.Status.DELETING",
        "status.Status.LOST",
        "fields.QueuedFileMixin.status",
        "signals.transfer_started",
        "hooks.Preprocess.process",
        "exceptions.Rejected",
    ):
        anchor = api.find(f'id="storage_hooks.{name}"')
        assert anchor > 0, f"{name} is not in the API reference"
        description = api[anchor:].split("<dd>", 1)[1].split("</dd>", 1)[0]
        assert "<p>" in description, f"{name} has no description"


def test_the_examples_run(tmp_path: Path) -> None:
    done = sphinx("doctest", tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    summary = (tmp_path / "output.txt").read_text()
    assert "0 failures in tests" in summary
    tests = int(summary.split("Doctest summary")[1].split()[1])
    assert tests >= 20  # the examples are there, and were run


def python_blocks(text: str) -> list[str]:
    """The bodies of the ``code-block:: python`` directives of a page."""
    blocks = []
    for part in text.split(".. code-block:: python\n")[1:]:
        lines = []
        for line in part.splitlines():
            if line.strip() and not line.startswith(" "):
                break
            lines.append(line)
        body = "\n".join(line for line in lines if not line.strip().startswith(":"))
        blocks.append(textwrap.dedent(body))
    return blocks


@pytest.mark.parametrize("page", sorted(p.name for p in DOCS.glob("*.rst")))
def test_every_python_example_is_valid_python(page: str) -> None:
    """The examples that are not doctests (they need S3, Celery or a project
    of their own) must at least be Python."""
    for block in python_blocks((DOCS / page).read_text()):
        signature = re.fullmatch(r"\s*([A-Za-z_][\w.]*)(\(.*\))\s*", block, re.DOTALL)
        try:
            compile(block, page, "exec")
        except SyntaxError:
            if not signature:
                raise
            # A signature, such as Thumbnails(sizes, *, format=None).
            name = signature.group(1).rsplit(".", 1)[-1]
            compile(f"def {name}{signature.group(2)}: pass", page, "exec")


def test_every_setting_is_documented() -> None:
    page = (DOCS / "configuration.rst").read_text()
    missing = [name for name in DEFAULTS if f"``{name}``" not in page]
    assert not missing, f"configuration.rst does not describe {missing}"


#: References to the README's old section files, in files that other people
#: are editing this round; each should name the page that replaced it
#: (docs/fallback.rst).
STALE_REFERENCES: set[str] = set()


def test_every_reference_to_a_docs_page_leads_to_one() -> None:
    """Code and docs that say "see docs/<page>.rst" name a page that exists."""
    broken = []
    checked = 0
    for root, dirs, files in os.walk(REPO):
        dirs[:] = [d for d in dirs if not d.startswith(".") and d not in ("_build", "node_modules")]
        for file in files:
            path = Path(root) / file
            if path.suffix not in (".py", ".rst", ".toml", ".ini", ".cfg"):
                continue
            if path.resolve() == Path(__file__).resolve():
                continue
            for target in re.findall(r"\bdocs/[\w/.-]+?\.rst\b", path.read_text(errors="replace")):
                if not (REPO / target).exists():
                    broken.append(f"{path.relative_to(REPO)}: {target}")
                checked += 1
    assert checked >= 10  # the README alone names a dozen pages
    new = sorted(set(broken) - STALE_REFERENCES)
    assert not new, "references to pages that do not exist:\n" + "\n".join(new)
    fixed = sorted(STALE_REFERENCES - set(broken))
    assert not fixed, f"fixed, remove them from STALE_REFERENCES: {fixed}"


def test_the_readme_is_a_short_front_page() -> None:
    text = README.read_text()
    assert len(text.splitlines()) <= 150
    for command in ("make demo", "make test"):
        assert command in text
    assert "make test" in (REPO / ".ci" / "run").read_text()
    quick_install = 'pip install "django-storage-hooks[celery,redis,s3]"'
    assert quick_install in text
    assert quick_install in (DOCS / "getting-started.rst").read_text()


def test_the_readme_quick_start_is_an_excerpt_of_the_tested_one() -> None:
    """No third settings example: each line of the README's Python blocks
    (but the elisions) is a line of the tested quick start's files."""
    text = README.read_text().split("Quick start\n")[1].split("\nDocumentation\n")[0]
    tested = set()
    for path in (DOCS / "quickstart").glob("*.py"):
        tested |= {line.strip() for line in path.read_text().splitlines()}
    blocks = [b for b in text.split(".. code-block:: python\n")[1:]]
    assert len(blocks) == 2
    for block in blocks:
        for line in block.splitlines():
            if line and not line.startswith("   "):
                break
            line = line.strip()
            if line and "..." not in line:
                assert line in tested, f"README line not in docs/quickstart/: {line!r}"


def test_the_readme_renders_cleanly() -> None:
    """PyPI renders the README with docutils and drops it on any problem."""
    try:
        from docutils.core import publish_doctree
    except ImportError:
        services.missing("docutils (the 'docs' dependency group)")
    errors = io.StringIO()
    publish_doctree(
        README.read_text(),
        settings_overrides={"warning_stream": errors, "report_level": 2, "halt_level": 5},
    )
    assert errors.getvalue() == ""


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        services.missing(f"Chromium at {CHROMIUM} (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        services.missing("playwright (pip install playwright)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"],
        )
        yield browser
        browser.close()


@pytest.mark.browser
def test_the_landing_page_in_chromium(html: Path, browser: Any, tmp_path: Path) -> None:
    from PIL import Image

    page = browser.new_page(viewport={"width": 1280, "height": 860})
    try:
        page.goto((html / "index.html").as_uri())
        assert page.title().startswith("storage_hooks")
        heading = page.locator("article h1").first
        assert heading.is_visible()
        assert heading.inner_text().startswith("storage_hooks")
        # The navigation lists the pages, and a link leads to one.
        sidebar = page.locator(".sidebar-tree")
        assert sidebar.is_visible()
        for title in ("Getting started", "Concepts", "Configuration reference", "API reference"):
            assert sidebar.get_by_role("link", name=title, exact=True).is_visible(), title
        shot = tmp_path / "index.png"
        page.screenshot(path=str(shot))
        image = Image.open(shot).convert("L")
        assert image.size == (1280, 860)
        # Not blank: text, a sidebar and a background make many shades, and
        # the dark pixels of text cover a fair part of the page.
        histogram = image.histogram()
        assert sum(1 for count in histogram if count) > 20
        dark = sum(histogram[:128]) / (image.size[0] * image.size[1])
        assert 0.005 < dark < 0.5
        # The sidebar (left) and the article (middle) both have ink.
        left = image.crop((0, 100, 300, 800))
        middle = image.crop((400, 100, 1100, 800))
        assert min(left.getextrema()) < 128
        assert min(middle.getextrema()) < 128
        page.get_by_role("link", name="Getting started", exact=True).first.click()
        page.wait_for_load_state()
        assert page.locator("article h1").first.inner_text().startswith("Getting started")
    finally:
        page.close()
