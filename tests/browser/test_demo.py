"""``make demo`` (examples/gallery/demo.py) as a user runs it: one command
that starts everything, prints the URL, and stops everything on Ctrl-C.
(SIGTERM goes through the same handler.)"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests import services

from .conftest import REPO

pytestmark = pytest.mark.integration


def processes_using(var_dir: Path) -> list[int]:
    """Pids of the processes whose environment names ``var_dir`` (Linux)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if f"GALLERY_VAR_DIR={var_dir}".encode() in environ.split(b"\0"):
            found.append(int(entry.name))
    return found


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc to find the children")
@pytest.mark.usefixtures("_gallery_env")
def test_one_command_starts_the_site_and_ctrl_c_stops_everything(
    migrated_db: Path, tmp_path: Path
) -> None:
    var_dir = tmp_path / "var"
    var_dir.mkdir()
    shutil.copy(migrated_db, var_dir / migrated_db.name)
    port = services.free_port()
    demo = subprocess.Popen(
        [
            sys.executable,
            "examples/gallery/demo.py",
            "--port",
            str(port),
            "--var-dir",
            str(var_dir),
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert demo.stdout is not None
    output = []
    try:
        for line in demo.stdout:
            output.append(line)
            if "The gallery runs at" in line:
                break
        assert f"The gallery runs at http://127.0.0.1:{port}/" in "".join(output)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/") as response:
            assert response.status == 200
            assert b"<h1>Gallery</h1>" in response.read()
        children = processes_using(var_dir.resolve())
        assert len(children) == 3  # S3, worker, web

        demo.send_signal(signal.SIGINT)  # what Ctrl-C in a terminal sends
        rest, _ = demo.communicate(timeout=30)
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.communicate()
    assert demo.returncode == 0, "".join(output) + rest
    assert "Stopping..." in rest
    deadline = time.monotonic() + 5
    while processes_using(var_dir.resolve()) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert processes_using(var_dir.resolve()) == []
    assert not services.reachable("127.0.0.1", port)


@pytest.mark.usefixtures("_gallery_env")
def test_moto_keeps_the_bucket_across_restarts(tmp_path: Path) -> None:
    """moto keeps its buckets in memory; the demo records what it was sent
    and replays it at the next start, so files transferred in an earlier run
    are not broken images after a restart. Reads are left out of the
    recording (it grows with what is stored, not with page views)."""
    import boto3

    from .conftest import load_demo

    with (tmp_path / "stack.log").open("w") as log:
        stack = load_demo().Stack(var_dir=tmp_path, port=0, log=log, persist_s3=True)

        def client() -> Any:
            return boto3.client(
                "s3", endpoint_url=stack.s3_endpoint, region_name="us-east-1",
                aws_access_key_id="demo", aws_secret_access_key="demo",
            )  # fmt: skip

        try:
            stack.start("s3")
            client().put_object(Bucket="gallery", Key="photos/kept.jpg", Body=b"kept")
            client().put_object(Bucket="gallery", Key="photos/gone.jpg", Body=b"gone")
            client().delete_object(Bucket="gallery", Key="photos/gone.jpg")
            assert client().get_object(Bucket="gallery", Key="photos/kept.jpg")["Body"].read()
            stack.stop("s3")
            with stack.s3_recording.open("a") as recording:
                recording.write('{"method": "PUT", "url": "http://127.0.0.1')  # cut short
            stack.start("s3")  # a new moto process, on the same port
            kept = client().get_object(Bucket="gallery", Key="photos/kept.jpg")
            assert kept["Body"].read() == b"kept"
            listed = client().list_objects_v2(Bucket="gallery").get("Contents", [])
            assert [item["Key"] for item in listed] == ["photos/kept.jpg"]
        finally:
            stack.stop()
    methods = [json.loads(line)["method"] for line in stack.s3_recording.read_text().splitlines()]
    # The first run's two reads (the bucket list, one object) were dropped
    # at the restart; the second run's three are there until the next one.
    assert methods.count("GET") == 3
    assert methods.count("DELETE") == 1
