"""Real services for the benchmarks: moto's S3 server, PostgreSQL and Redis
databases of their own, Celery worker processes, and memory readings.

Only the standard library is imported at module level, and the syntax
stays valid for Python 3.8: the django-queued-storage side (its own
Python 3.8 environment) uses the worker and polling helpers too.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres"}
REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
S3_CREDENTIALS = {
    "access_key": "testing",
    "secret_key": "testing",
    "region_name": "us-east-1",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def reachable(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


def poll_until(
    check: Callable[[], Any], *, timeout: float, interval: float = 0.02, what: str = "it"
) -> Any:
    """Call ``check`` until it returns something true; return that."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"gave up waiting for {what} after {timeout:.0f}s")
        time.sleep(interval)


@contextlib.contextmanager
def moto_server() -> Iterator[str]:
    """moto's S3 server in its own process on loopback; yields its URL."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        poll_until(
            lambda: proc.poll() is not None or reachable(port), timeout=30, what="moto server"
        )
        if proc.poll() is not None:
            raise RuntimeError(f"moto's server exited with {proc.returncode}")
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(proc)


def stop(proc: subprocess.Popen[Any]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def s3_client(endpoint: str, pool: int = 10) -> Any:
    """A boto3 client of the S3 server, with ``pool`` connections."""
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=S3_CREDENTIALS["access_key"],
        aws_secret_access_key=S3_CREDENTIALS["secret_key"],
        region_name=S3_CREDENTIALS["region_name"],
        config=Config(max_pool_connections=pool),
    )


def empty_prefix(endpoint: str, bucket: str, prefix: str) -> None:
    """Delete every object under ``prefix``: moto keeps objects in memory and
    slows down as it holds more, so each measurement starts from the same
    server state, not after the previous one's bytes."""
    client = s3_client(endpoint)
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys = [{"Key": item["Key"]} for item in page.get("Contents", ())]
        if keys:
            client.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})


@contextlib.contextmanager
def postgres_database(name: str) -> Iterator[str]:
    """A PostgreSQL database of our own, created fresh and dropped after."""
    import psycopg

    def run(sql: str) -> None:
        with psycopg.connect(dbname="postgres", autocommit=True, **PG) as conn:  # type: ignore[arg-type]
            conn.execute(sql)

    run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    run(f'CREATE DATABASE "{name}"')
    try:
        yield name
    finally:
        run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.contextmanager
def redis_databases(count: int, avoid: Sequence[int] = ()) -> Iterator[list[int]]:
    """``count`` Redis database numbers that are empty now (highest first,
    none of ``avoid``), flushed again when done."""
    import redis

    admin = redis.Redis(REDIS_HOST, REDIS_PORT)
    total = int(admin.config_get("databases").get("databases", 16))
    used = {int(key[2:]) for key in admin.info("keyspace") if key.startswith("db")}
    free = [n for n in range(total - 1, 0, -1) if n not in used and n not in avoid][:count]
    admin.close()
    if len(free) < count:
        raise RuntimeError(f"Redis has fewer than {count} empty databases; flush some.")
    try:
        yield free
    finally:
        for number in free:
            client = redis.Redis(REDIS_HOST, REDIS_PORT, db=number)
            client.flushdb()
            client.close()


def read_status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak) of a process, in bytes."""
    values = {}
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0]) * 1024
    return values


def reset_peak(pid: int) -> None:
    """Start a new peak-RSS (VmHWM) measurement for ``pid``."""
    with open(f"/proc/{pid}/clear_refs", "w") as fh:
        fh.write("5")


class Worker:
    """A Celery worker process (solo pool: the process we start does the
    work, so its pid is the one to measure)."""

    def __init__(
        self,
        python: str,
        app: str,
        name: str,
        queues: Sequence[str],
        env: dict[str, str],
        cwd: str = ROOT,
        threads: int = 0,
    ) -> None:
        self.name = name
        cmd = [python, "-m", "celery", "-A", app, "worker"]
        # solo: the process we start does the work (its RSS is the one to
        # read); threads: concurrent I/O-bound transfers in one process.
        cmd += ["--pool", "threads", "-c", str(threads)] if threads else ["--pool", "solo"]
        cmd += ["-n", name, "-Q", ",".join(queues), "-l", "INFO"]
        cmd += ["--without-gossip", "--without-mingle", "--without-heartbeat"]
        self.proc = subprocess.Popen(
            cmd,
            env={**os.environ, **env},
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.log: list[str] = []
        self._ready = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.log.append(line.rstrip())
            if " ready." in line:
                self._ready.set()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def wait_ready(self, timeout: float = 60) -> None:
        if (
            not poll_until(
                lambda: self._ready.is_set() or self.proc.poll() is not None,
                timeout=timeout,
                what=f"worker {self.name}",
            )
            or not self._ready.is_set()
        ):
            raise RuntimeError(f"worker {self.name} died:\n" + "\n".join(self.log[-30:]))

    def errors(self) -> list[str]:
        return [line for line in self.log if "ERROR" in line or "Traceback" in line]

    def stop(self) -> None:
        stop(self.proc)


@contextlib.contextmanager
def workers(*specs: dict[str, Any]) -> Iterator[list[Worker]]:
    """Start workers (keyword dicts for ``Worker``), wait until each is ready,
    and stop them all at the end."""
    started = [Worker(**spec) for spec in specs]
    try:
        for worker in started:
            worker.wait_ready()
        yield started
    finally:
        for worker in started:
            worker.stop()
