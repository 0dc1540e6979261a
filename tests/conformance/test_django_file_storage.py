"""Django's own file-storage tests (tests/file_storage of the installed
Django's source distribution) against QueuedStorage and FallbackStorage.

Each Django test class appears here once per storage flavour (e.g.
``Queued_FileStorageTests``, ``Fallback_FileStorageTests``) with only the
construction of the storage changed (see ``storages.py``). Tests that read
attributes only FileSystemStorage has are skipped with the reason
(``inapplicable.txt``); the failures not fixed yet are expected failures
(``expected_failures.txt``): an expected failure that passes fails the run.
"""

from __future__ import annotations

from . import storages, suite

_modules = suite.load()

for _django_class in suite.test_classes(_modules):
    for _flavour in storages.FLAVOURS:
        _derived = suite.derive(_django_class, _flavour)
        globals()[_derived.__name__] = _derived
del _django_class, _flavour, _derived


def test_every_listed_test_exists() -> None:
    """A list entry that names no test of a class this Django version has is
    a typo or a test Django removed: say so rather than keep a stale entry.
    (Classes of other supported versions may be listed.)"""
    known = set()
    for cls in suite.test_classes(_modules):
        known.add(cls.__name__)
        for method in suite.unittest.TestLoader().getTestCaseNames(cls):
            known.add(f"{cls.__name__}.{method}")
    stale = [
        entry.target
        for entry in suite.INAPPLICABLE + suite.EXPECTED_FAILURES
        if entry.target.split(".")[0] in known and entry.target not in known
    ]
    assert not stale, f"entries naming no test of Django's suite: {stale}"
