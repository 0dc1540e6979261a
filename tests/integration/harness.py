"""A deployment in action, seen and driven from the test process."""

from __future__ import annotations

import io
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from storage_hooks import Status
from storage_hooks.models import StoredFile

from .broker import Broker
from .config import Deployment
from .workers import ROOT, DBWorker, Worker, wait_for, worker_env

#: The database alias of the shared PostgreSQL database in the test process.
ALIAS = "integration"

__all__ = ["ALIAS", "Site", "bucket_comes_late", "ledger_row", "wait_for"]


def ledger_row(key: str, name: str) -> StoredFile:
    return StoredFile.objects.using(ALIAS).get(storage_key=key, name=name)


class Site:
    """A deployment in action: the test process's side of it (settings,
    storage, broker view) and the worker processes it starts."""

    def __init__(
        self,
        deployment: Deployment,
        settings: Any,
        broker: Broker,
        workdir: Path,
    ) -> None:
        self.deployment = deployment
        self.settings = settings
        self.broker = broker
        self.workdir = workdir
        self.workers: list[Worker] = []
        self._clients: dict[str, Any] = {}
        self.configure()

    # -- the test process --------------------------------------------------

    def configure(self, **changes: Any) -> None:
        """Apply the deployment (with ``changes``) to the test process."""
        from django.core.files.storage import FileSystemStorage
        from storages.backends.s3 import S3Storage

        from storage_hooks.hooks import DeleteLocal
        from storage_hooks.storage import QueuedStorage

        self.deployment = self.deployment.replace(**changes)
        dep = self.deployment
        close_shared_cache()
        Path(dep.local_dir).mkdir(parents=True, exist_ok=True)
        self.settings.STORAGE_HOOKS = {**dep.storage_hooks(), "DATABASE": ALIAS}
        if dep.runner == "tasks":
            # Tasks are rows of the shared database, where the db_worker looks.
            self.settings.TASKS = dep.tasks()
            self.settings.DATABASE_ROUTERS = [f"{__name__}.TasksRouter"]
        self.settings.CACHES = {
            "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
            "shared": dep.cache(),
        }
        self.storage = QueuedStorage(
            local=FileSystemStorage(location=dep.local_dir, base_url="/media/"),
            remote=S3Storage(**dep.s3_options()),
            hooks=[DeleteLocal()],
            key=dep.key,
        )

    def s3(self) -> Any:
        """A boto3 client of the deployment's S3 endpoint, to look behind
        the storage's back."""
        endpoint = self.deployment.endpoint
        if endpoint not in self._clients:
            import boto3

            from .config import ACCESS_KEY, SECRET_KEY

            self._clients[endpoint] = boto3.client(
                "s3",
                endpoint_url=endpoint,
                aws_access_key_id=ACCESS_KEY,
                aws_secret_access_key=SECRET_KEY,
                region_name="us-east-1",
            )
        return self._clients[endpoint]

    def create_bucket(self) -> None:
        self.s3().create_bucket(Bucket=self.deployment.bucket)

    def remote_bytes(self, name: str) -> bytes:
        response = self.s3().get_object(Bucket=self.deployment.bucket, Key=name)
        with response["Body"] as body:
            return bytes(body.read())

    def remote_names(self) -> list[str]:
        response = self.s3().list_objects_v2(Bucket=self.deployment.bucket)
        return sorted(item["Key"] for item in response.get("Contents", []))

    def local_path(self, name: str) -> Path:
        return Path(self.deployment.local_dir) / name

    def status(self, name: str) -> Any:
        return ledger_row(self.deployment.key, name).status

    def wait_status(self, name: str, status: str, timeout: float = 30) -> None:
        """Wait until the ledger says ``status``; for REMOTE, also until the
        task that got it there has returned.

        The ledger turns REMOTE before ``transferred`` is sent, and its
        receivers (DeleteLocal among them) run after that, so a test that
        stopped waiting at the status would race them.
        """
        wait_for(
            lambda: self.status(name) == status,
            f"{name!r} to be {status} (it is {self.status(name)})",
            timeout,
            self.logs,
        )
        if status == Status.REMOTE:
            wait_for(
                lambda: any(self._transferred_by(e, name) for e in self.events("task_postrun")),
                f"the task that transferred {name!r} to return",
                timeout,
                self.logs,
            )

    @staticmethod
    def _transferred_by(event: dict[str, Any], name: str) -> bool:
        """Whether a returned task transferred ``name``: a single transfer
        that returned "done", or a batch that carried it."""
        if event["task"] == "storage_hooks.transfer_batch":
            done = event["retval"].get("done") if isinstance(event["retval"], dict) else 0
            return name in event["args"][1] and bool(done)
        return name in event["args"] and event["retval"] == "done"

    def events(self, event: str | None = None, **match: Any) -> list[dict[str, Any]]:
        return self.broker.events(event, **match)

    # -- workers -------------------------------------------------------------

    def start_worker(
        self, queues: list[str] | None = None, *, wait: bool = True, **changes: Any
    ) -> Worker:
        """Start a worker with this deployment (and ``changes``); with
        ``wait``, return once it consumes."""
        return self.start_workers(1, queues, wait=wait, **changes)[0]

    def start_workers(
        self, count: int, queues: list[str] | None = None, *, wait: bool = True, **changes: Any
    ) -> list[Worker]:
        """Start ``count`` workers at once."""
        deployment = self.deployment.replace(**changes)
        started = []
        for _ in range(count):
            number = len(self.workers) + 1
            worker = Worker(
                deployment,
                queues or [deployment.queue],
                nodename=f"w{number}-{deployment.token}@localhost",
                log=self.workdir / f"worker{number}.log",
            )
            self.workers.append(worker)
            started.append(worker)
        if wait:
            self.wait_ready(*started)
        return started

    def start_db_worker(self) -> DBWorker:
        """Start django-tasks-db's ``db_worker`` on the deployment's queue
        (configure ``runner="tasks"`` first)."""
        assert self.deployment.runner == "tasks", "configure(runner='tasks') first"
        number = len(self.workers) + 1
        worker = DBWorker(
            self.deployment,
            [self.deployment.queue],
            nodename=f"db{number}-{self.deployment.token}@localhost",
            log=self.workdir / f"worker{number}.log",
        )
        self.workers.append(worker)
        return worker

    def wait_ready(self, *workers: Worker) -> None:
        """Return once every one of ``workers`` consumes its queues."""
        for worker in workers:
            wait_for(
                lambda w=worker: not w.alive() or self.events("worker_ready", pid=w.pid),
                f"the worker {worker.nodename} to start",
                timeout=60,
                on_timeout=worker.log,
            )
            if not worker.alive():
                raise AssertionError(f"The worker exited at start.\n{worker.log()}")

    def command(self, *args: str) -> str:
        """Run a management command in this process; return its stdout."""
        from django.core.management import call_command

        out = io.StringIO()
        call_command(*args, stdout=out, stderr=io.StringIO())
        return out.getvalue()

    def manage(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run ``manage.py <args>`` as an operator would: its own process, the
        deployment's settings (those of the worker)."""
        result = subprocess.run(
            [sys.executable, "-m", "django", *args],
            cwd=ROOT,
            env=worker_env(self.deployment),
            capture_output=True,
            text=True,
            timeout=60,
        )
        if check and result.returncode:
            raise AssertionError(
                f"manage.py {' '.join(args)} exited with {result.returncode}:\n"
                f"{result.stdout}\n{result.stderr}"
            )
        return result

    def logs(self) -> str:
        return "\n".join(worker.log() for worker in self.workers)

    def close(self) -> None:
        for worker in self.workers:
            worker.kill()
        for client in self._clients.values():
            client.close()
        StoredFile.objects.using(ALIAS).filter(storage_key=self.deployment.key).delete()
        self.broker.client.delete(self.deployment.events_key)
        close_shared_cache()


def bucket_comes_late(site: Site, save: Callable[[], str]) -> str:
    """Save with the bucket missing (``RETRY_DELAY`` 0.4 s), create the
    bucket after two failed attempts, and check that the file arrived with
    growing, jittered waits between attempts. Returns the name."""
    site.configure(bucket=site.deployment.bucket + "-later", retry_delay=0.4, retry_delay_max=5)
    name = save()
    wait_for(lambda: len(site.events("transfer_failed")) >= 2, "two failures", on_timeout=site.logs)
    site.create_bucket()
    site.wait_status(name, Status.REMOTE)

    failed = {e["attempt"]: e for e in site.events("transfer_failed")}
    started = {e["attempt"]: e for e in site.events("transfer_started")}
    assert all(e["will_retry"] for e in failed.values())
    assert started[2]["at"] - failed[1]["at"] >= 0.2
    assert started[3]["at"] - failed[2]["at"] >= 0.4
    assert [e["name"] for e in site.events("transferred")] == [name]
    assert ledger_row(site.deployment.key, name).attempts == len(failed) + 1
    return name


class TasksRouter:
    """Sends django-tasks-db's rows to the shared database (also those its
    data migrations write, which name no database)."""

    def db_for_read(self, model: Any, **hints: Any) -> str | None:
        return ALIAS if model._meta.app_label == "django_tasks_database" else None

    db_for_write = db_for_read


def close_shared_cache() -> None:
    """Disconnect the pools of the Django cache ``shared`` if it is on Redis
    (a dropped cache would leave its sockets open)."""
    from django.core.cache import caches

    if "shared" not in caches.settings:
        return
    client = caches["shared"].__dict__.get("_cache")
    for pool in getattr(client, "_pools", {}).values():
        pool.disconnect()
