"""The quick start of the documentation runs as written.

A brand-new project from ``django-admin startproject``, the files and
commands of ``docs/getting-started.rst`` and nothing else, against moto's S3
server and Redis: a file saved through the model reaches the bucket by way of
a real Celery worker started with the page's command.
"""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import services

from . import snippets

#: How a command of the page is run here: the same programs, from this
#: interpreter's environment.
PROGRAMS = {
    "python": [sys.executable],
    "django-admin": [sys.executable, "-m", "django"],
    "celery": [sys.executable, "-m", "celery"],
}


def test_the_page_has_every_step() -> None:
    blocks = snippets.console_blocks()
    assert set(blocks) >= {
        "quickstart-install",
        "quickstart-project",
        "quickstart-migrate",
        "quickstart-worker",
    }
    worker = [["celery", "-A", "proj", "worker", "-Q", "storage_hooks"]]
    assert blocks["quickstart-worker"] == worker
    included = snippets.included_files()
    assert set(included) == set(snippets.DESTINATIONS) | set(snippets.SHELL_SCRIPTS)
    for name, (destination, _) in snippets.DESTINATIONS.items():
        assert destination in snippets.snippet(name), f"{name} does not say where it goes"


def test_the_install_command_names_real_extras() -> None:
    [command] = snippets.console_blocks()["quickstart-install"]
    assert command[:2] == ["pip", "install"]
    requirement = command[2]
    package, _, extras = requirement.partition("[")
    offered = importlib.metadata.metadata(package).get_all("Provides-Extra") or []
    for extra in extras.rstrip("]").split(","):
        assert extra in offered, f"the quick start installs an unknown extra {extra!r}"
    # Celery's Redis transport needs the redis extra (issue 14).
    assert {"celery", "redis", "s3"} <= set(extras.rstrip("]").split(","))


@pytest.fixture
def redis_url() -> Iterator[str]:
    """A Redis database of this test's own: one that is empty, claimed with a
    key so that no other run takes it, and flushed afterwards."""
    services.require("Redis", services.REDIS)
    import redis

    token = uuid.uuid4().hex
    for db in range(15, 1, -1):
        client = redis.Redis(*services.REDIS, db=db)
        if client.dbsize() == 0 and client.set("storage_hooks_quickstart", token, nx=True):
            if client.dbsize() == 1:
                break
            client.delete("storage_hooks_quickstart")
        client.close()
    else:
        pytest.fail("no empty Redis database (2-15) for the quick start test")
    try:
        yield f"redis://{services.REDIS[0]}:{services.REDIS[1]}/{db}"
    finally:
        if client.get("storage_hooks_quickstart") == token.encode():
            client.flushdb()
        client.close()


def run(argv: list[str], cwd: Path, env: dict[str, str]) -> str:
    command = PROGRAMS.get(argv[0], [argv[0]]) + argv[1:]
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"{argv} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def shell(script: str, cwd: Path, env: dict[str, str]) -> str:
    """The last line the script printed (the shell may print a line of its
    own first: "N objects imported automatically")."""
    output = run(["python", "manage.py", "shell", "-c", script], cwd, env)
    return output.strip().splitlines()[-1]


def write_snippets(project: Path) -> None:
    for name, (destination, how) in snippets.DESTINATIONS.items():
        text = snippets.snippet(name)
        if text.startswith("# ruff:"):  # the linter's line, not shown on the page
            text = text.split("\n", 1)[1]
        path = project / destination
        if how == "append":
            path.write_text(path.read_text() + "\n" + text)
        else:
            path.write_text(text)


@pytest.mark.integration
def test_a_file_reaches_s3_through_a_real_worker(tmp_path: Path, redis_url: str) -> None:
    blocks = snippets.console_blocks()
    bucket = f"quickstart-{uuid.uuid4().hex[:12]}"
    with services.moto_server() as endpoint:
        env = {
            **os.environ,
            "PYTHONPATH": str(snippets.REPO),
            "S3_BUCKET": bucket,
            "S3_REGION": "us-east-1",
            "S3_ENDPOINT_URL": endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "REDIS_URL": redis_url,
        }
        env.pop("DJANGO_SETTINGS_MODULE", None)
        cwd = tmp_path
        for argv in blocks["quickstart-project"]:
            if argv[0] == "cd":
                cwd = cwd / argv[1]
            else:
                run(argv, cwd, env)
        write_snippets(cwd)
        for argv in blocks["quickstart-migrate"]:
            output = run(argv, cwd, env)
            if argv[2:] == ["check"]:
                assert "System check identified no issues (0 silenced)." in output, output
        assert "Created the bucket" in shell(snippets.snippet("create_bucket.py"), cwd, env)

        [worker_argv] = blocks["quickstart-worker"]
        log = (tmp_path / "worker.log").open("w+")
        worker = subprocess.Popen(
            PROGRAMS[worker_argv[0]] + worker_argv[1:],
            cwd=cwd,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=services.die_with_parent,
        )
        try:
            output = shell(snippets.snippet("try_it.py"), cwd, env)
            name, status, url = output.split()
            assert name == "documents/hello.txt"
            assert status in ("queued", "transferring", "remote")
            assert url == "/media/documents/hello.txt" or status != "queued"
            s3 = services.s3_client(endpoint)
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline:
                listed = s3.list_objects_v2(Bucket=bucket).get("Contents", [])
                if [item["Key"] for item in listed] == ["documents/hello.txt"]:
                    break
                assert worker.poll() is None, "the worker exited:\n" + log_text(log)
                time.sleep(0.25)
            else:
                pytest.fail("the file did not reach the bucket:\n" + log_text(log))
            body = s3.get_object(Bucket=bucket, Key="documents/hello.txt")["Body"].read()
            assert body == b"Hello, S3!"
            check = "from uploads.models import Document; d = Document.objects.get(); "
            check += "print(d.file.status.value, d.file.url)"
            status, url = shell(check, cwd, env).split()
            assert status == "remote"
            assert url.startswith(f"{endpoint}/{bucket}/documents/hello.txt")
        finally:
            worker.terminate()
            try:
                worker.wait(20)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()
            log.close()


def log_text(log: object) -> str:
    handle = log  # the worker's log file, opened w+
    handle.flush()  # type: ignore[attr-defined]
    handle.seek(0)  # type: ignore[attr-defined]
    return handle.read()  # type: ignore[attr-defined,no-any-return]
