"""Worker processes of the integration tests (Celery's, and the db_worker of
Django's Tasks framework), and waiting for them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from ..services import die_with_parent
from .config import Deployment

ROOT = Path(__file__).resolve().parents[2]

T = TypeVar("T")


def wait_for(
    check: Callable[[], T], what: str, timeout: float = 30, on_timeout: Callable[[], str] = str
) -> T:
    """Poll ``check`` until it returns something true; return that."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"Timed out after {timeout}s waiting for {what}.\n{on_timeout()}")
        time.sleep(0.05)


def worker_env(deployment: Deployment) -> dict[str, str]:
    """The environment of a process of the deployment (worker, manage.py)."""
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    return {
        **os.environ,
        **deployment.to_env(),
        "DJANGO_SETTINGS_MODULE": "tests.integration.settings",
        "PYTHONPATH": path,
    }


class Worker:
    """One ``celery worker`` process (solo pool) consuming ``queues``."""

    def __init__(self, deployment: Deployment, queues: list[str], nodename: str, log: Path):
        self.deployment = deployment
        self.queues = queues
        self.nodename = nodename
        self.log_path = log
        env = worker_env(deployment)
        with open(log, "ab") as out:
            self.process = subprocess.Popen(
                self.command(),
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=die_with_parent,
            )

    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "tests.integration.celery_app",
            "worker",
            "--pool=solo",
            "--queues",
            ",".join(self.queues),
            "--hostname",
            self.nodename,
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "--loglevel=INFO",
        ]

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def log(self, lines: int = 60) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""
        return f"--- log of {self.nodename} ---\n" + "\n".join(text.splitlines()[-lines:])

    def kill(self) -> None:
        """SIGKILL: no warm shutdown, no acknowledgement, nothing restored."""
        if self.alive():
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)

    def stop(self, timeout: float = 15) -> None:
        """Warm shutdown (SIGTERM); SIGKILL if it takes too long."""
        if not self.alive():
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()


class DBWorker(Worker):
    """One ``manage.py db_worker`` process of django-tasks-db: the worker of
    Django's Tasks framework on the database backend."""

    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "django",
            "db_worker",
            "--queue-name",
            ",".join(self.queues),
            "--interval",
            "0.05",
            "--no-startup-delay",
            "--no-reload",
            "--worker-id",
            self.nodename.partition("@")[0],
            "--verbosity",
            "2",
        ]
