"""Loading Django's ``tests/file_storage`` and deriving, from each of its test
classes, one class per storage flavour with only the storage swapped."""

from __future__ import annotations

import functools
import gc
import importlib
import inspect
import os
import shutil
import sys
import unittest
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from django.apps import apps
from django.conf import settings
from django.core.files.storage import FileSystemStorage
from django.db import connection, models
from django.test import LiveServerTestCase, SimpleTestCase, TestCase

from .. import services
from . import source, storages

HERE = Path(__file__).parent
#: What Django's own test settings (tests/test_sqlite.py, runtests.py) give
#: these tests and tests/settings.py does not; a test class's own overrides win.
DJANGO_TEST_SETTINGS = {
    "USE_TZ": False,
    "STATIC_URL": "/static/",
    "ROOT_URLCONF": f"{source.PACKAGE}.urls",
}
#: Django's modules in tests/file_storage that hold test classes.
MODULES = ("tests", "test_generate_filename", "test_base", "test_inmemory_storage")


@dataclass(frozen=True)
class Entry:
    """One line of a list file: which flavours, which test, why."""

    flavours: frozenset[str]
    target: str  # "Class" or "Class.test_method"
    reason: str
    vendor: str | None = None  # only on this database (connection.vendor)

    def applies(self, flavour: str) -> bool:
        return flavour in self.flavours and self.vendor in (None, connection.vendor)


def read_list(path: Path) -> list[Entry]:
    """``<flavours>[@vendor] <Class[.test]> <reason>`` lines; ``*`` is every
    flavour, several are comma-separated; ``#`` starts a comment line."""
    entries = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            flavours, target, reason = line.split(None, 2)
        except ValueError:
            message = f"{path.name}:{number}: expected '<flavours> <test> <reason>'"
            raise ValueError(message) from None
        flavours, _, vendor = flavours.partition("@")
        names = frozenset(storages.FLAVOURS if flavours == "*" else flavours.split(","))
        if names - set(storages.FLAVOURS):
            raise ValueError(f"{path.name}:{number}: unknown flavour in {flavours!r}")
        entries.append(Entry(names, target, reason.strip(), vendor or None))
    return entries


INAPPLICABLE = read_list(HERE / "inapplicable.txt")
#: STORAGE_HOOKS_CONFORMANCE_ALL=1 runs the expected failures as plain tests,
#: to see how each one fails today.
EXPECTED_FAILURES = (
    []
    if os.environ.get("STORAGE_HOOKS_CONFORMANCE_ALL")
    else read_list(HERE / "expected_failures.txt")
)


def lookup(
    entries: list[Entry], flavour: str, cls: type, method: str | None, *, inherited: bool = True
) -> Entry | None:
    """The entry for ``cls.method`` (named by the class that runs it, or with
    ``inherited`` by the class that defines it), or for the whole class when
    ``method`` is None."""
    if method is None:
        targets = {cls.__name__}
    else:
        targets = {cls.__name__, f"{cls.__name__}.{method}"}
        if inherited:
            targets.add(f"{getattr(cls, method).__qualname__.split('.')[0]}.{method}")
    for entry in entries:
        if entry.applies(flavour) and entry.target in targets:
            return entry
    return None


def load() -> dict[str, ModuleType]:
    """Django's test modules, importable as the ``file_storage`` app; skips
    (or under CI=true fails) the whole module when they cannot be had."""
    try:
        root = source.suite_dir()
    except source.SourceUnavailable as exc:
        message = f"Django's file_storage tests are not available: {exc}"
        if services.in_ci():
            pytest.fail(f"{message} (CI=true: required)", pytrace=False)
        pytest.skip(message, allow_module_level=True)
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    if not apps.is_installed(source.PACKAGE):
        # Django's Storage model (tests/file_storage/models.py) needs its app;
        # the test database, made after collection, then has its table.
        apps.set_installed_apps([*settings.INSTALLED_APPS, source.PACKAGE])
    loaded = {}
    for name in MODULES:
        try:
            loaded[name] = importlib.import_module(f"{source.PACKAGE}.{name}")
        except ModuleNotFoundError:
            continue  # not in this Django version
    return loaded


def test_classes(modules: dict[str, ModuleType]) -> Iterator[type[unittest.TestCase]]:
    for module in modules.values():
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if issubclass(cls, unittest.TestCase) and cls.__module__ == module.__name__:
                yield cls


class _Swapped:
    """Mixed in front of a Django test class: builds the flavour's storage
    where the test would have built a FileSystemStorage."""

    flavour: str
    storage: Any

    def setUp(self) -> None:
        self._scratch_from = len(storages.scratch_dirs)
        super().setUp()  # type: ignore[misc]
        if type(getattr(self, "storage", None)) is FileSystemStorage and self.flavour != "control":
            self.storage = storages.rebuild(self.flavour, self.storage)

    def tearDown(self) -> None:
        super().tearDown()  # type: ignore[misc]
        if isinstance(self, LiveServerTestCase):
            # Django's test leaves its urlopen() responses to the garbage
            # collector; collect them here, not in whichever test is next.
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ResourceWarning)
                gc.collect()
        made = storages.scratch_dirs[self._scratch_from :]
        del storages.scratch_dirs[self._scratch_from :]
        for path in made:
            shutil.rmtree(path, ignore_errors=True)


class _SwappedFields:
    """For FileFieldStorageTests: the fields of Django's ``Storage`` test
    model, and the module's ``temp_storage``, use the flavour's storage
    around the FileSystemStorage they had, for the class's duration."""

    flavour: str
    django_class: type
    _restore: list[Callable[[], None]]
    _class_scratch: list[str]

    @classmethod
    def setUpClass(cls) -> None:
        cls._restore, cls._class_scratch = [], []
        if cls.flavour == "control":
            super().setUpClass()  # type: ignore[misc]
            return
        tests = sys.modules[cls.django_class.__module__]
        model = tests.Storage
        original = tests.temp_storage
        scratch_from = len(storages.scratch_dirs)
        swapped = storages.rebuild(cls.flavour, original)
        cls._restore.append(lambda: setattr(tests, "temp_storage", original))
        tests.temp_storage = swapped
        for field in model._meta.get_fields():
            if not isinstance(field, models.FileField):
                continue
            old = field.storage
            if not issubclass(type(old), FileSystemStorage):  # not a LazyObject either
                continue
            if old is original:
                field.storage = swapped
            elif type(old) is not FileSystemStorage and old.location == original.location:
                field.storage = storages.rebuild(cls.flavour, old)
            else:
                continue
            cls._restore.append(functools.partial(setattr, field, "storage", old))
        cls._class_scratch = storages.scratch_dirs[scratch_from:]
        del storages.scratch_dirs[scratch_from:]
        super().setUpClass()  # type: ignore[misc]

    @classmethod
    def tearDownClass(cls) -> None:
        try:
            super().tearDownClass()  # type: ignore[misc]
        finally:
            for restore in cls._restore:
                restore()
            for path in cls._class_scratch:
                shutil.rmtree(path, ignore_errors=True)

    def tearDown(self) -> None:
        super().tearDown()  # type: ignore[misc]
        for path in self._class_scratch:  # type: ignore[attr-defined]
            shutil.rmtree(path, ignore_errors=True)  # a file saver makes it again


def _wrap(func: Callable[..., Any]) -> Callable[..., Any]:
    """A new function calling ``func``, to mark without touching Django's."""

    @functools.wraps(func)
    def run(self: Any, *args: Any, **kwargs: Any) -> Any:
        return func(self, *args, **kwargs)

    run.__dict__.clear()
    for marker in ("__unittest_skip__", "__unittest_skip_why__"):
        if hasattr(func, marker):
            setattr(run, marker, getattr(func, marker))
    return run


def _collecting(func: Callable[..., Any]) -> Callable[..., Any]:
    """``func``, then a garbage collection that ignores ResourceWarning:
    Django's tests close their files only when they pass, so an expected
    failure leaves one to the collector, which would blame the next test."""

    @functools.wraps(func)
    def run(self: Any) -> Any:
        try:
            return func(self)
        finally:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ResourceWarning)
                gc.collect()

    return run


def derive(cls: type[unittest.TestCase], flavour: str) -> type[unittest.TestCase]:
    """``cls`` with the flavour's storage, its inapplicable tests skipped
    and its known failures expected, named e.g. ``Queued_FileStorageTests``."""
    name = f"{flavour.capitalize()}_{cls.__name__}"
    namespace: dict[str, Any] = {"flavour": flavour, "django_class": cls, "__module__": __name__}
    whole = lookup(INAPPLICABLE, flavour, cls, None)
    if whole is not None:
        namespace["__unittest_skip__"] = True
        namespace["__unittest_skip_why__"] = f"not applicable: {whole.reason}"
    if flavour != "control" and hasattr(cls, "storage_class"):
        original = cls.storage_class
        if isinstance(original, type) and issubclass(original, FileSystemStorage):
            # staticmethod: a partial class attribute is a method descriptor
            # from Python 3.14 on (3.13 warns).
            namespace["storage_class"] = staticmethod(
                functools.partial(storages.FLAVOURS[flavour], original)
            )
    for method in unittest.TestLoader().getTestCaseNames(cls):
        skip = lookup(INAPPLICABLE, flavour, cls, method)
        failing = lookup(EXPECTED_FAILURES, flavour, cls, method, inherited=False)
        if skip is None and failing is None:
            continue
        run = _wrap(getattr(cls, method))
        if skip is not None:
            run = unittest.skip(f"not applicable: {skip.reason}")(run)
        else:
            run = unittest.expectedFailure(_collecting(run))
        namespace[method] = run
    bases: tuple[type, ...] = (_Swapped, cls)
    if cls.__name__ == "FileFieldStorageTests":
        bases = (_SwappedFields, _Swapped, cls)
    if not issubclass(cls, SimpleTestCase):
        bases = (*bases, SimpleTestCase)  # so pytest-django lets it reach the ledger
    namespace["_overridden_settings"] = {
        **DJANGO_TEST_SETTINGS,
        **(getattr(cls, "_overridden_settings", None) or {}),
    }
    derived = type(name, bases, namespace)
    if flavour == "queued" and not issubclass(cls, TestCase):
        derived.databases = {"default"}  # the ledger; autocommit, so transfers run
        # pytest-django makes the test database only for tests that ask.
        derived = pytest.mark.django_db(derived)
    if flavour == "queued" and getattr(cls, "available_apps", None) is not None:
        # A test that needs no app (available_apps = []) still needs the
        # ledger's app with a QueuedStorage.
        derived.available_apps = [*cls.available_apps, "storage_hooks"]  # type: ignore[attr-defined]
    return derived
