"""Real services for the tests: find them, or fail (CI) / skip (a developer).

Each test names what it needs; under ``CI=true`` a missing service fails the
test with its name, anywhere else the test is skipped with the same message.
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

#: prctl(2), where the C library has it (Linux).
_prctl = getattr(ctypes.CDLL(None), "prctl", None) if sys.platform == "linux" else None
PR_SET_PDEATHSIG = 1

REDIS = ("127.0.0.1", 6379)
POSTGRES = ("127.0.0.1", 5432)


def die_with_parent() -> None:
    """In a child, before exec: be killed when the test process dies, so an
    interrupted run leaves no server or worker behind (Linux only)."""
    if _prctl is not None:
        _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def missing(what: str) -> None:
    """Fail under CI, skip elsewhere, naming the missing service."""
    message = f"{what} is not available"
    if in_ci():
        pytest.fail(f"{message} (CI=true: required)", pytrace=False)
    pytest.skip(message)


def reachable(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def require(name: str, address: tuple[str, int]) -> None:
    if not reachable(*address):
        missing(f"{name} at {address[0]}:{address[1]}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server on port {port} exited with {proc.returncode}")
        if reachable("127.0.0.1", port, 0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port} after {timeout}s")


@contextmanager
def moto_server(port: int | None = None) -> Iterator[str]:
    """moto's S3-compatible server in its own process, on loopback."""
    try:
        import moto.server  # noqa: F401
    except ImportError:
        missing("moto[server] (pip install 'moto[server]')")
    port = port or free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=die_with_parent,
    )
    try:
        wait_for_port(port, proc)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(proc)


def stop(proc: subprocess.Popen[bytes], timeout: float = 10) -> None:
    """End a server the tests started: SIGTERM, then SIGKILL after ``timeout``."""
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def s3_options(
    endpoint: str, bucket: str, *, access_key: str = "testing", secret_key: str = "testing"
) -> dict[str, object]:
    """OPTIONS for django-storages' S3Storage against a moto server (or
    another S3 server, with its credentials)."""
    return {
        "bucket_name": bucket,
        "endpoint_url": endpoint,
        "access_key": access_key,
        "secret_key": secret_key,
        "region_name": "us-east-1",
        "file_overwrite": True,
        "querystring_auth": False,
    }


def s3_client(endpoint: str, *, access_key: str = "testing", secret_key: str = "testing") -> Any:
    """A boto3 S3 client for a moto server (moto accepts any credentials),
    or another S3 server with its credentials."""
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        region_name="us-east-1",
    )


def create_bucket(endpoint: str, bucket: str) -> None:
    s3_client(endpoint).create_bucket(Bucket=bucket)
