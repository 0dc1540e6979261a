"""The django.tasks runner on a Tasks backend with a real queue: the
database backend of django-tasks-db (its rows in the shared PostgreSQL
database) and its ``db_worker`` as a separate process, to S3 on moto."""

from __future__ import annotations

import pytest
from django.core.files.base import ContentFile
from django.db import transaction

from storage_hooks import Status

from .harness import ALIAS, Site, bucket_comes_late

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        not __import__("importlib.util").util.find_spec("django.tasks"),
        reason="django.tasks is Django 6.0+",
    ),
]


@pytest.fixture
def tasks_site(site: Site) -> Site:
    pytest.importorskip("django_tasks_db", reason="django-tasks-db is in the test dependencies")
    site.configure(runner="tasks")
    return site


def queued_tasks(site: Site) -> list[tuple[str, list[object]]]:
    from django_tasks_db.models import DBTaskResult

    rows = DBTaskResult.objects.using(ALIAS).filter(queue_name=site.deployment.queue)
    return [(row.task_path, row.args_kwargs["args"]) for row in rows.order_by("enqueued_at")]


def test_a_db_worker_transfers_a_saved_file(tasks_site: Site) -> None:
    site = tasks_site
    name = site.storage.save("tasks/hello.txt", ContentFile(b"hello tasks"))
    # The task is a row of the shared database, with only the key and name.
    assert queued_tasks(site) == [
        ("storage_hooks.runners.django_tasks.transfer", [site.deployment.key, name])
    ]

    site.start_db_worker()
    site.wait_status(name, Status.REMOTE)

    assert site.remote_bytes(name) == b"hello tasks"
    assert not site.local_path(name).exists()
    assert [e["name"] for e in site.events("transferred")] == [name]
    assert [e["name"] for e in site.events("local_deleted")] == [name]


def test_a_rolled_back_save_enqueues_no_task(tasks_site: Site) -> None:
    site = tasks_site
    names = []

    def view() -> None:
        with transaction.atomic(using=ALIAS):
            names.append(site.storage.save("tasks/gone.txt", ContentFile(b"never")))
            raise RuntimeError("the view failed")

    with pytest.raises(RuntimeError):
        view()
    assert queued_tasks(site) == []
    assert site.storage.status(names[0]) is None


def test_failed_attempts_wait_and_come_back_as_deferred_tasks(tasks_site: Site) -> None:
    """No bucket at first: each failure enqueues the next attempt with a
    ``run_after`` (the backend defers it); then the bucket exists."""

    def save() -> str:
        tasks_site.start_db_worker()
        return tasks_site.storage.save("tasks/later.txt", ContentFile(b"later"))

    name = bucket_comes_late(tasks_site, save)
    assert tasks_site.remote_bytes(name) == b"later"
