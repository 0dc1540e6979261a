"""Sphinx configuration of the storage_hooks documentation.

Build it with ``make docs`` (HTML in ``docs/_build/html``, warnings are
errors). The API reference imports the package, so Django is set up first
with the small settings module next to this file.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]
os.environ["DJANGO_SETTINGS_MODULE"] = "docs_settings"  # never the caller's

import django  # noqa: E402

django.setup()

import storage_hooks  # noqa: E402

project = "storage_hooks"
author = "storage_hooks contributors"
copyright = "storage_hooks contributors"
release = storage_hooks.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.doctest",
    "sphinx.ext.intersphinx",
    "sphinx.ext.viewcode",
]

html_theme = "furo"
html_title = f"storage_hooks {release}"
html_static_path: list[str] = []
exclude_patterns = ["_build", "quickstart/*.py"]
nitpicky = False

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {
    "show-inheritance": True,
    # Django's plumbing, not this library's API.
    "exclude-members": "deconstruct, attr_class",
}

# No network at build time: intersphinx inventories are not fetched.
intersphinx_mapping: dict[str, tuple[str, str | None]] = {}

# Every doctest group runs against a fresh in-memory database with the
# tables of the ledger, file-system storages in a temporary folder, and the
# immediate runner (see docs_settings.py).
doctest_global_setup = """
from docs_settings import doctest_setup
doctest_setup()
"""
