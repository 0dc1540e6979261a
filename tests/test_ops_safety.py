"""A local root that holds the Django project is refused; the project's
files are never adopted by ``sync``."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from django.core.files.storage import FileSystemStorage, InMemoryStorage

from storage_hooks.models import StoredFile
from storage_hooks.project import is_project_file, project_root_problem
from storage_hooks.storage import QueuedStorage

from .conftest import unique_key
from .test_commands import run, write

pytestmark = pytest.mark.django_db(transaction=True)

TESTS = Path(__file__).resolve().parent


def storage_at(location: Path | str, remote: Path) -> QueuedStorage:
    return QueuedStorage(
        local=FileSystemStorage(location=location),
        remote=FileSystemStorage(location=remote),
        key=unique_key("safety"),
    )


def test_the_working_directory_is_refused(tmp_path: Path, monkeypatch, remote_dir: Path) -> None:
    monkeypatch.chdir(tmp_path)
    problem = project_root_problem(storage_at(tmp_path, remote_dir))
    assert problem
    assert "is the working directory" in problem
    assert "MEDIA_ROOT" in problem  # says how to fix it
    # A FileSystemStorage without a location writes into the working directory.
    assert "working directory" in (project_root_problem(storage_at("", remote_dir)) or "")


def test_a_parent_of_base_dir_is_refused_a_media_folder_inside_is_fine(
    tmp_path: Path, settings, remote_dir: Path
) -> None:
    settings.BASE_DIR = tmp_path / "site"
    (tmp_path / "site" / "media").mkdir(parents=True)
    problem = project_root_problem(storage_at(tmp_path, remote_dir))
    assert problem
    assert "is a parent of settings.BASE_DIR" in problem
    assert project_root_problem(storage_at(tmp_path / "site", remote_dir))
    assert project_root_problem(storage_at(tmp_path / "site" / "media", remote_dir)) is None


def test_the_settings_package_and_manage_py_are_refused(tmp_path: Path, remote_dir: Path) -> None:
    # tests.settings is the settings module: its package is the tests folder.
    problem = project_root_problem(storage_at(TESTS, remote_dir))
    assert problem
    assert "the package of the settings module tests.settings" in problem
    (tmp_path / "manage.py").write_text("# a project\n")
    assert "it holds manage.py" in (project_root_problem(storage_at(tmp_path, remote_dir)) or "")


def test_storages_off_the_file_system_are_fine() -> None:
    assert project_root_problem(InMemoryStorage()) is None


def test_sync_refuses_a_project_root_with_exit_2(tmp_path: Path, settings, remote_dir) -> None:
    settings.BASE_DIR = tmp_path
    write(tmp_path, "mysite/settings.py", b"SECRET_KEY = 'do not upload me'")
    storage = storage_at(tmp_path, remote_dir)

    result = run("sync", "--dry-run", "--storage", storage.key)

    assert result.code == 2
    assert f"sync refuses the storage {storage.key!r}" in result.err
    assert "settings.BASE_DIR" in result.err
    assert not StoredFile.objects.filter(storage_key=storage.key).exists()


def test_sync_never_adopts_project_files_below_an_accepted_root(
    local_dir: Path, remote_dir: Path
) -> None:
    write(local_dir, "photos/cat.jpg", b"meow")
    write(local_dir, "old-site/manage.py", b"#!/usr/bin/env python")
    storage = storage_at(local_dir, remote_dir)
    assert project_root_problem(storage) is None
    assert is_project_file(local_dir / "old-site" / "manage.py")
    assert not is_project_file(local_dir / "photos" / "cat.jpg")

    doc = run("sync", "--json", "--storage", storage.key).json()["storages"][0]

    assert doc["adopted"] == ["photos/cat.jpg"]
    assert [(s["name"], s["kind"]) for s in doc["skipped"]] == [("old-site/manage.py", "project")]


def test_is_project_file_knows_the_settings_package() -> None:
    assert is_project_file(TESTS / "settings.py")
    assert is_project_file(os.path.join(TESTS, "sub", "..", "settings.py"))
