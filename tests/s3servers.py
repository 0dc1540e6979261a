"""S3 servers of other kinds than moto, for the tests that must tell them
apart: Ceph's radosgw (Debian's packages) and npm's s3rver (``tests/node``).

Each runs in a throwaway directory, on free loopback ports, plain http, as
child processes that die with the test process (``services.die_with_parent``).
``make test`` installs both; when one is missing its tests fail under
``CI=true`` and are skipped elsewhere (``services.missing``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import services

#: The s3rver that ``npm ci`` installs from tests/node/package-lock.json.
S3RVER_JS = Path(__file__).parent / "node" / "node_modules" / "s3rver" / "bin" / "s3rver.js"
#: What the radosgw harness runs: the daemons and the tools that set them up.
CEPH_PROGRAMS = ("monmaptool", "ceph-mon", "ceph", "ceph-osd", "radosgw", "radosgw-admin")


@dataclass(frozen=True)
class S3Server:
    """A running S3 server: where it is and the credentials it accepts."""

    name: str
    endpoint: str
    access_key: str = "testing"
    secret_key: str = "testing"

    def client(self) -> Any:
        return services.s3_client(
            self.endpoint, access_key=self.access_key, secret_key=self.secret_key
        )

    def storage_options(self, bucket: str) -> dict[str, object]:
        """OPTIONS for django-storages' S3Storage: path-style, over http."""
        options = services.s3_options(
            self.endpoint, bucket, access_key=self.access_key, secret_key=self.secret_key
        )
        return {**options, "addressing_style": "path"}

    def create_bucket(self, bucket: str) -> None:
        self.client().create_bucket(Bucket=bucket)


def _daemon(stack: ExitStack, args: list[str], **kwargs: Any) -> subprocess.Popen[bytes]:
    """Start a server process that is stopped when ``stack`` closes."""
    proc = subprocess.Popen(
        args,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=services.die_with_parent,
        **kwargs,
    )
    stack.callback(services.stop, proc)
    return proc


# -- npm's s3rver ---------------------------------------------------------------


@contextmanager
def s3rver(root: Path) -> Iterator[S3Server]:
    """npm's s3rver 3.7.1, its objects in ``root``. It accepts only its own
    default credentials (``S3RVER``)."""
    node = shutil.which("node")
    if node is None or not S3RVER_JS.exists():
        services.missing(
            "npm's s3rver 3.7.1 (needs node and tests/node/node_modules: `make s3rver` "
            "runs npm ci there)"
        )
    port = services.free_port()
    args = [node, str(S3RVER_JS), "--directory", str(root), "--address", "127.0.0.1"]
    args += ["--port", str(port), "--silent", "--no-vhost-buckets"]
    # As s3rver's recipe for Node 20 asks (plain PUT and GET work without it).
    env = {**os.environ, "NODE_OPTIONS": "--openssl-legacy-provider"}
    with ExitStack() as stack:
        services.wait_for_port(port, _daemon(stack, args, env=env))
        yield S3Server("s3rver", f"http://127.0.0.1:{port}", "S3RVER", "S3RVER")


# -- Ceph's radosgw --------------------------------------------------------------


def _ceph_conf(root: Path, fsid: str, mon_port: int, rgw_port: int) -> str:
    """One monitor, one OSD that keeps its data in memory, radosgw in front;
    no authentication between them, every file under ``root``."""
    return f"""\
[global]
fsid = {fsid}
mon host = v1:127.0.0.1:{mon_port}
public addr = 127.0.0.1
ms bind ipv6 = false
auth cluster required = none
auth service required = none
auth client required = none
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd crush chooseleaf type = 0
mon max pg per osd = 1000
mon data avail warn = 0
mon data avail crit = 0
run dir = {root}/run
admin socket = {root}/run/$name.asok
log file = {root}/log/$name.log
[mon.a]
mon data = {root}/mon
# radosgw creates its pools one map change at a time, each waiting for the
# next proposal (1 s by default): 11 s of its start, 1 s with these.
paxos propose interval = 0.05
paxos min wait = 0.01
[osd.0]
osd data = {root}/osd
osd objectstore = memstore
# Ceph 16's OSD may send these start-up commands before it has the monitor
# map; refused ("wrong fsid"), it never boots. The harness places it itself.
osd crush update on start = false
osd class update on start = false
memstore device bytes = 1073741824
osd op num shards = 1
osd op num threads per shard = 2
[client.rgw.a]
rgw frontends = beast endpoint=127.0.0.1:{rgw_port}
rgw data = {root}/rgw
rgw enable usage log = false
"""


@contextmanager
def radosgw(root: Path) -> Iterator[S3Server]:
    """Ceph's radosgw over a one-node cluster (``ceph-mon``, a ``memstore``
    ``ceph-osd``), its configuration, logs and sockets in ``root``."""
    absent = [program for program in CEPH_PROGRAMS if shutil.which(program) is None]
    if absent:
        services.missing(
            f"Ceph's radosgw (no {', '.join(absent)}: `make radosgw` installs Debian's "
            "radosgw ceph-mon ceph-osd)"
        )
    for sub in ("mon", "osd", "rgw", "run", "log"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    mon_port, rgw_port = services.free_port(), services.free_port()
    fsid, mon_address = str(uuid.uuid4()), f"[v1:127.0.0.1:{mon_port}]"
    conf = root / "ceph.conf"
    conf.write_text(_ceph_conf(root, fsid, mon_port, rgw_port))
    env = {**os.environ, "CEPH_CONF": str(conf)}

    def setup(*args: str) -> None:
        done = subprocess.run(args, env=env, capture_output=True, timeout=60, check=False)
        if done.returncode:
            raise RuntimeError(
                f"{' '.join(args)} exited with {done.returncode} (logs in {root / 'log'}): "
                f"{done.stderr.decode(errors='replace').strip()}"
            )

    # The daemons run in the foreground (-f), as children of the test process.
    with ExitStack() as stack:
        monmap = str(root / "monmap")
        setup("monmaptool", "--create", "--fsid", fsid, "--addv", "a", mon_address, monmap)
        setup("ceph-mon", "--id", "a", "--mkfs", "--monmap", monmap, "--keyring", "/dev/null")
        (root / "mon" / "keyring").touch()
        _daemon(stack, ["ceph-mon", "--id", "a", "-f"], env=env)
        setup("ceph", "osd", "create")
        setup("ceph", "osd", "crush", "add", "osd.0", "1", "root=default", "host=localhost")
        setup("ceph-osd", "--id", "0", "--mkfs")
        _daemon(stack, ["ceph-osd", "--id", "0", "-f"], env=env)
        gateway = _daemon(stack, ["radosgw", "--name", "client.rgw.a", "-f"], env=env)
        try:
            services.wait_for_port(rgw_port, gateway, timeout=60)
        except RuntimeError as exc:
            raise RuntimeError(f"radosgw did not start: {exc} (logs in {root / 'log'})") from exc
        server = S3Server("radosgw", f"http://127.0.0.1:{rgw_port}", "RADOSGWKEY", "RADOSGWSECRET")
        setup(
            "radosgw-admin", "user", "create", "--uid", "tests", "--display-name", "tests",
            "--access-key", server.access_key, "--secret-key", server.secret_key,
        )  # fmt: skip
        yield server
