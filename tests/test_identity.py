"""A storage's identity (its key) depends on where its files live, and on
nothing else; credentials are never written into migrations or pickles."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import pytest
from django.core.files.base import ContentFile
from django.db import migrations, models
from django.db.migrations.writer import MigrationWriter

from storage_hooks import Status
from storage_hooks.hooks import DeleteLocal, Thumbnails
from storage_hooks.storage import QueuedStorage

FS = "django.core.files.storage.FileSystemStorage"
S3 = "storages.backends.s3.S3Storage"
SECRET = "wJalrXUtnFEMI-do-not-ship"
URL_PASSWORD = "pw-in-url-do-not-ship"


def fs_storage(local: Path, remote: Path, **kwargs: Any) -> QueuedStorage:
    return QueuedStorage(
        local=FS,
        local_options={"location": str(local)},
        remote=FS,
        remote_options={"location": str(remote)},
        **kwargs,
    )


def test_behaviour_options_never_change_the_key(tmp_path: Path) -> None:
    base = fs_storage(tmp_path / "l", tmp_path / "r")
    assert base.key.startswith("queuedstorage-")
    for behaviour in (
        {"hooks": [DeleteLocal()]},
        {"hooks": [DeleteLocal(), Thumbnails({"small": (10, 10)})]},
        {"delayed": True},
        {"check_remote": True},
    ):
        assert fs_storage(tmp_path / "l", tmp_path / "r", **behaviour).key == base.key
    assert fs_storage(tmp_path / "l", tmp_path / "elsewhere").key != base.key


def s3_storage(secret: str, **kwargs: Any) -> QueuedStorage:
    return QueuedStorage(
        local=FS,
        local_options={"location": "/srv/media"},
        remote=S3,
        remote_options={
            "bucket_name": "media",
            "access_key": "AKIA-do-not-ship",
            "secret_key": secret,
            "endpoint_url": f"https://user:{URL_PASSWORD}@s3.example.com/?token=x",
        },
        **kwargs,
    )


def test_credentials_take_no_part_in_the_identity() -> None:
    assert s3_storage(SECRET).key == s3_storage("rotated").key


@pytest.mark.django_db(transaction=True)
def test_a_transferred_file_keeps_its_identity_when_a_hook_is_added(
    tmp_path: Path, settings: Any
) -> None:
    """The observed failure: adding Thumbnails changed the key, and a
    transferred file reported status None and the local URL."""
    settings.STORAGE_HOOKS = {"RUNNER": "immediate"}
    before = fs_storage(tmp_path / "l", tmp_path / "r", hooks=[DeleteLocal()])
    name = before.save("kept.txt", ContentFile(b"x"))
    after = fs_storage(
        tmp_path / "l", tmp_path / "r", hooks=[DeleteLocal(), Thumbnails({"s": (8, 8)})]
    )
    assert after.status(name) == Status.REMOTE
    assert after.exists(name)
    assert after.url(name).startswith("/")  # FileSystemStorage remote's url


def test_makemigrations_writes_no_credentials() -> None:
    field = models.FileField(storage=s3_storage(SECRET, key="documents"), upload_to="docs")
    migration = migrations.Migration("0002_document_file", "testapp")
    migration.operations = [
        migrations.AddField(model_name="document", name="attachment", field=field)
    ]
    written = MigrationWriter(migration).as_string()
    assert "storage_hooks.storage.QueuedStorage" in written
    assert "'bucket_name': 'media'" in written
    for secret in (SECRET, "AKIA-do-not-ship", URL_PASSWORD, "token=x"):
        assert secret not in written
    assert "https://s3.example.com/" in written


def test_pickles_carry_no_credentials() -> None:
    storage = s3_storage(SECRET, key="pickled-docs")
    data = pickle.dumps(storage)
    for secret in (SECRET.encode(), b"AKIA-do-not-ship", URL_PASSWORD.encode()):
        assert secret not in data
    assert pickle.loads(data) is storage  # this process has it: the same storage
