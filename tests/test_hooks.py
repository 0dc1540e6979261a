"""Hooks in general (storage_hooks.hooks): the base class, how hooks are
given (instances, dotted paths, in settings.STORAGES), and connect() once
per storage. DeleteLocal and Thumbnails have their own test modules."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.files.base import ContentFile
from django.core.files.storage import storages
from django.test import override_settings

from storage_hooks import Status
from storage_hooks.hooks import DeleteLocal, Hook, Thumbnails, resolve_hook

from .conftest import unique_key
from .testapp import hooks as testapp_hooks
from .testapp.hooks import LogSlowTransfers, Recorder, recorder
from .testapp.storages import fs_pair


@pytest.fixture
def fresh_recorder() -> Iterator[Recorder]:
    recorder.seen.clear()
    recorder.connected.clear()
    yield recorder
    recorder.seen.clear()
    recorder.connected.clear()


def test_the_base_class_asks_for_connect() -> None:
    with pytest.raises(NotImplementedError):
        Hook().connect(None)  # type: ignore[arg-type]


def test_hooks_compare_and_show_by_their_arguments() -> None:
    assert Thumbnails({"s": (10, 10)}, format="WEBP") == Thumbnails({"s": (10, 10)}, format="WEBP")
    assert Thumbnails({"s": (10, 10)}) != Thumbnails({"s": (20, 20)})
    assert DeleteLocal() == DeleteLocal()
    assert DeleteLocal() != Thumbnails({"s": (10, 10)})
    assert (
        repr(Thumbnails({"s": (10, 10)}, quality=70)) == "Thumbnails({'s': (10, 10)}, quality=70)"
    )


def test_resolve_hook_takes_instances_and_dotted_paths() -> None:
    hook = DeleteLocal()
    assert resolve_hook(hook) is hook
    assert resolve_hook("storage_hooks.hooks.DeleteLocal") == DeleteLocal()
    assert resolve_hook("tests.testapp.hooks.recorder") is recorder


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("tests.testapp.hooks.Nowhere", r"The hook 'tests\.testapp\.hooks\.Nowhere' cannot be"),
        ("nowhere.at.all", r"The hook 'nowhere\.at\.all' cannot be imported"),
        (DeleteLocal, r"as an instance \(DeleteLocal\(\)\) or a dotted path"),
        (object(), "is not a hook: it has no connect"),
        ("storage_hooks.hooks.resolve_hook", "is not a hook"),
    ],
)
def test_resolve_hook_explains_what_is_wrong(spec: Any, message: str) -> None:
    with pytest.raises(ImproperlyConfigured, match=message):
        resolve_hook(spec)


@pytest.mark.django_db(transaction=True)
def test_hooks_by_dotted_path_in_storages_options(
    local_dir: Path, remote_dir: Path, fresh_recorder: Recorder
) -> None:
    media = {
        "BACKEND": "storage_hooks.QueuedStorage",
        "OPTIONS": {
            "local": "django.core.files.storage.FileSystemStorage",
            "local_options": {"location": str(local_dir)},
            "remote": "django.core.files.storage.FileSystemStorage",
            "remote_options": {"location": str(remote_dir)},
            "hooks": ["storage_hooks.hooks.DeleteLocal", "tests.testapp.hooks.recorder"],
        },
    }
    with override_settings(STORAGES={**storages.backends, "media": media}):
        storage = storages["media"]
        name = storage.save("a.txt", ContentFile(b"x"))
        assert storage.hooks == [DeleteLocal(), recorder]
        assert storage.status(name) == Status.REMOTE
    assert fresh_recorder.seen == [("media", name)]
    assert not (local_dir / name).exists()  # DeleteLocal, built from its path
    assert (remote_dir / name).read_bytes() == b"x"


@pytest.mark.django_db(transaction=True)
def test_one_hook_connects_once_to_each_of_its_storages(
    tmp_path: Path, fresh_recorder: Recorder
) -> None:
    first = fs_pair(tmp_path / "l1", tmp_path / "r1", unique_key(), hooks=[recorder])
    second = fs_pair(tmp_path / "l2", tmp_path / "r2", unique_key(), hooks=[recorder])
    first.save("a.txt", ContentFile(b"1"))
    first.save("b.txt", ContentFile(b"2"))
    second.save("a.txt", ContentFile(b"3"))
    assert fresh_recorder.connected == [first, second]
    assert fresh_recorder.seen == [
        (first.key, "a.txt"),
        (first.key, "b.txt"),
        (second.key, "a.txt"),
    ]


@pytest.mark.django_db(transaction=True)
def test_the_documented_example_hook(
    local_dir: Path, remote_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    storage = fs_pair(local_dir, remote_dir, unique_key(), hooks=[LogSlowTransfers(seconds=0)])
    quick = fs_pair(
        local_dir, remote_dir, unique_key(), hooks=["tests.testapp.hooks.LogSlowTransfers"]
    )
    with caplog.at_level(logging.WARNING, logger=testapp_hooks.__name__):
        storage.save("slow.txt", ContentFile(b"x"))
        quick.save("quick.txt", ContentFile(b"x"))
    assert [r.getMessage().split()[0] for r in caplog.records] == ["slow.txt"]
