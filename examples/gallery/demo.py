#!/usr/bin/env python
"""Run the gallery example with one command: ``make demo``.

It migrates the database, starts moto's S3 server on loopback (and makes the
bucket), a Celery worker on kombu's file-system broker, and Django's
development server, then prints the URL. Ctrl-C (or SIGTERM) stops them all.
Everything the site writes goes to ``examples/gallery/var/``.

    python examples/gallery/demo.py [--port 8000] [--var-dir DIR]

Set ``GALLERY_S3_ENDPOINT`` or ``GALLERY_S3_BUCKET`` to use a real S3 instead
of moto, and ``GALLERY_BROKER_URL`` / ``GALLERY_DATABASE_URL`` /
``GALLERY_CACHE_URL`` for Redis and PostgreSQL (every variable is listed in
examples/gallery/README.rst). The tests in tests/browser/ drive the same
:class:`Stack`.

This is a local demo: it turns ``GALLERY_DEBUG`` on (so Django serves the
local files and the demo secret key is accepted), and makes the admin/admin
account only in its own SQLite database. moto keeps its bucket in memory;
the demo records what it was sent (``var/s3-recording.jsonl``) and replays
it at the next start, so photos transferred in an earlier run are still
there.
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
DEMO_BUCKET = "gallery"
SERVICES = ("s3", "worker", "web")
#: A threads pool suits transfers, which wait on the network; the broker
#: features a one-worker demo doesn't use are off.
WORKER_ARGS = (
    "-m celery -A gallery_site worker --pool threads --concurrency 4 --loglevel INFO "
    "--without-gossip --without-mingle --without-heartbeat"
)
#: Credentials for moto, which accepts any.
MOTO_ENV = {"AWS_ACCESS_KEY_ID": "demo", "AWS_SECRET_ACCESS_KEY": "demo"}
#: Where moto's recorder writes every request (see Stack.s3_recording).
S3_RECORDING = "s3-recording.jsonl"
LOOPBACK = ("127.0.0.1", "localhost", "::1", "[::1]")


def aws_credentials_found(env: dict[str, str]) -> bool:
    """Whether boto3 would find credentials: in the environment, or in its
    usual places (~/.aws, an instance role)."""
    if env.get("AWS_ACCESS_KEY_ID") or env.get("AWS_PROFILE"):
        return True
    import boto3

    return boto3.Session().get_credentials() is not None


def port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


if sys.platform == "linux":
    import ctypes

    # Looked up here, in the parent: the child runs no more Python than the call.
    _prctl = ctypes.CDLL(None, use_errno=True).prctl
    PR_SET_PDEATHSIG = 1

    def _die_with_parent() -> None:
        """In the child: SIGTERM when the demo dies without cleaning up."""
        _prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
else:
    _die_with_parent = None


class Service:
    """One child process whose output is copied, line by line, to the log."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], log: IO[str]) -> None:
        self.name = name
        self._lines: list[str] = []
        self._terminated = False
        self.proc = subprocess.Popen(
            args,
            cwd=HERE,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
            # Its own session: the terminal's Ctrl-C reaches the demo only,
            # which then stops the services in order.
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        self._log = log
        self._reader = threading.Thread(target=self._copy_output, daemon=True)
        self._reader.start()

    def _copy_output(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._log.write(f"[{self.name:<6}] {line}")
            self._log.flush()
            if len(self._lines) < 200:  # enough for the start-up lines
                self._lines.append(line)
        self.proc.stdout.close()

    def said(self, text: str) -> bool:
        """Whether one of the first lines it printed contains ``text``."""
        return any(text in line for line in list(self._lines))

    def wait_for(self, ready: Callable[[], bool], what: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not ready():
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode} before {what}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name}: no {what} after {timeout}s")
            time.sleep(0.05)

    def terminate(self) -> None:
        """Ask it to stop (once: a second SIGTERM can hurry Celery along)."""
        if self.proc.poll() is None and not self._terminated:
            self._terminated = True
            self.proc.terminate()

    def stop(self, timeout: float = 15) -> None:
        """Stop it (SIGTERM: Celery finishes the transfers under way), and
        kill it if it takes longer than ``timeout`` seconds."""
        self.terminate()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._reader.join(5)

    @property
    def running(self) -> bool:
        return self.proc.poll() is None


class Stack:
    """The demo's processes: S3 (moto), the Celery worker and the web server.

    ``migrate()``, then ``start()``; ``stop()`` when done. The tests start and
    stop single services (``start("worker")``, ``stop("s3")``).
    """

    def __init__(
        self,
        *,
        var_dir: Path,
        port: int,
        s3_port: int | None = None,
        env: dict[str, str] | None = None,
        log: IO[str] = sys.stdout,
        persist_s3: bool = False,
    ) -> None:
        self.var_dir = Path(var_dir).resolve()
        #: With moto: record its requests and replay them at the next start.
        self.persist_s3 = persist_s3
        self.port = port
        self.log = log
        self.env = {**os.environ, **(env or {})}
        # A real S3 (or MinIO...) when the user names one; moto otherwise.
        self.uses_moto = not (
            self.env.get("GALLERY_S3_ENDPOINT") or self.env.get("GALLERY_S3_BUCKET")
        )
        self.s3_port = (s3_port or free_port()) if self.uses_moto else None
        self.services: dict[str, Service] = {}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    @property
    def s3_endpoint(self) -> str | None:
        if self.uses_moto:
            return f"http://127.0.0.1:{self.s3_port}"
        return self.env.get("GALLERY_S3_ENDPOINT") or None

    @property
    def s3_recording(self) -> Path:
        return self.var_dir / S3_RECORDING

    def check_s3(self) -> None:
        """With an S3 of the user's own: make sure boto3 has credentials for
        it, or say what to set. A loopback endpoint (a moto or MinIO started
        by hand) gets the demo's credentials when there are none."""
        if self.uses_moto or aws_credentials_found(self.env):
            return
        endpoint = self.env.get("GALLERY_S3_ENDPOINT") or ""
        host = endpoint.split("://", 1)[-1].split("/", 1)[0].rsplit(":", 1)[0]
        if host in LOOPBACK:
            self.log.write(
                "[demo  ] No AWS credentials are set; using the demo's (demo/demo) for "
                f"{endpoint}. Set AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY if that server wants others.\n"
            )
            self.env.update(MOTO_ENV)
            return
        where = endpoint or "Amazon S3"
        raise RuntimeError(
            f"GALLERY_S3_ENDPOINT/GALLERY_S3_BUCKET are set, so the gallery uses {where} "
            "instead of moto, but boto3 finds no credentials for it. Set AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY (or AWS_PROFILE), and GALLERY_S3_BUCKET to a bucket that "
            "exists (and GALLERY_S3_REGION if it is not us-east-1)."
        )

    def child_env(self) -> dict[str, str]:
        env = {
            **self.env,
            # A local demo: Django serves the local files, the demo secret
            # key is accepted (GALLERY_DEBUG=0 with a GALLERY_SECRET_KEY of
            # your own tries the production settings).
            "GALLERY_DEBUG": self.env.get("GALLERY_DEBUG") or "1",
            # Always this project's settings, whatever the caller's are.
            "DJANGO_SETTINGS_MODULE": "gallery_site.settings",
            "GALLERY_VAR_DIR": str(self.var_dir),
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), self.env.get("PYTHONPATH")])),
            "PYTHONUNBUFFERED": "1",
        }
        if self.uses_moto:
            env.update(MOTO_ENV)
            env["GALLERY_S3_ENDPOINT"] = str(self.s3_endpoint)
            env["GALLERY_S3_BUCKET"] = DEMO_BUCKET
        return env

    def manage(
        self, *args: str, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run a management command, its output into the log."""
        result = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=HERE,
            env={**self.child_env(), **(env or {})},
            capture_output=True,
            text=True,
        )
        for line in (result.stdout + result.stderr).splitlines():
            self.log.write(f"[manage] {line}\n")
        return result

    # -- the parts ---------------------------------------------------------

    @property
    def own_database(self) -> bool:
        """Whether the site uses the demo's own SQLite database."""
        return not self.env.get("GALLERY_DATABASE_URL")

    def migrate(self, *, superuser: bool = True) -> None:
        """Create or update the database; with ``superuser``, the admin/admin
        account if it does not exist yet, in the demo's own SQLite database
        only (never in one named by GALLERY_DATABASE_URL)."""
        if self.manage("migrate", "--noinput").returncode:
            raise RuntimeError("manage.py migrate failed (see the lines above)")
        if superuser and self.own_database and self.manage("demo_admin").returncode:
            raise RuntimeError("manage.py demo_admin failed (see the lines above)")

    def start(self, *names: str) -> None:
        """Start the named services ("s3", "worker", "web"; all by default)
        side by side, and return once each one is ready."""
        names = names or SERVICES
        if "web" in names and not port_is_free(self.port):
            raise RuntimeError(
                f"Port {self.port} is taken; choose another with --port or GALLERY_PORT."
            )
        if not self.uses_moto:
            names = tuple(name for name in names if name != "s3")
        for name in names:
            if name in self.services and self.services[name].running:
                raise RuntimeError(f"{name} is already running")
            self.services[name] = Service(
                name, self._command(name), self._service_env(name), self.log
            )
        for name in names:
            self._wait_until_ready(self.services[name])

    def _service_env(self, name: str) -> dict[str, str]:
        env = self.child_env()
        if name == "s3" and self.persist_s3:
            env["MOTO_ENABLE_RECORDING"] = "1"
            env["MOTO_RECORDER_FILEPATH"] = str(self.s3_recording)
        return env

    def _command(self, name: str) -> list[str]:
        if name == "s3":
            return [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.s3_port)]
        if name == "worker":
            queue = self.env.get("GALLERY_QUEUE") or "storage_hooks"
            return [
                sys.executable,
                *shlex.split(WORKER_ARGS),
                *("--queues", queue, "--hostname", f"gallery-{os.getpid()}@%h"),
            ]
        if name == "web":
            return [
                sys.executable,
                "manage.py",
                "runserver",
                f"127.0.0.1:{self.port}",
                "--noreload",
            ]
        raise ValueError(f"No service {name!r}; there are {', '.join(SERVICES)}.")

    def _wait_until_ready(self, service: Service) -> None:
        if service.name == "s3":
            port = self.s3_port or 0
            service.wait_for(lambda: listening(port), f"S3 on port {port}")
            self._replay_s3()
            self._create_bucket()
        elif service.name == "worker":
            service.wait_for(lambda: service.said(" ready."), "'ready' line from Celery")
        else:
            service.wait_for(lambda: listening(self.port), f"web server on port {self.port}")

    def _replay_s3(self) -> None:
        """Give moto back what an earlier run stored: replay its recording."""
        if not (self.persist_s3 and self.s3_recording.exists()):
            return
        import json
        import urllib.request

        # Reads change nothing: keep the writes only, so that the recording
        # grows with what is stored, not with every page view.
        writes = []
        for line in self.s3_recording.read_text().splitlines(keepends=True):
            try:
                method = json.loads(line)["method"]
            except (ValueError, KeyError, TypeError):
                continue  # a line cut short when moto was killed mid-write
            if method not in ("GET", "HEAD"):
                writes.append(line if line.endswith("\n") else line + "\n")
        self.s3_recording.write_text("".join(writes))

        request = urllib.request.Request(
            f"{self.s3_endpoint}/moto-api/recorder/replay-recording", method="POST"
        )
        with urllib.request.urlopen(request, timeout=300) as response:
            response.read()
        self.log.write(f"[demo  ] S3: replayed {self.s3_recording.name} (an earlier run's files)\n")

    def _create_bucket(self) -> None:
        import boto3

        client = boto3.client(
            "s3",
            endpoint_url=self.s3_endpoint,
            region_name="us-east-1",
            aws_access_key_id=MOTO_ENV["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=MOTO_ENV["AWS_SECRET_ACCESS_KEY"],
        )
        if DEMO_BUCKET not in [b["Name"] for b in client.list_buckets().get("Buckets", [])]:
            client.create_bucket(Bucket=DEMO_BUCKET)

    def stop(self, *names: str) -> None:
        """Stop the named services (all by default), side by side."""
        stopping = [self.services.pop(name) for name in names or SERVICES if name in self.services]
        for service in stopping:
            service.terminate()
        for service in stopping:
            service.stop()

    def crashed(self) -> str | None:
        """The name of a service that exited on its own, if any."""
        return next((name for name, s in self.services.items() if not s.running), None)


def _stop(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--port", type=int, default=int(os.environ.get("GALLERY_PORT") or 8000),
        help="port of the web server (default 8000, or GALLERY_PORT)",
    )  # fmt: skip
    parser.add_argument(
        "--var-dir", type=Path, default=Path(os.environ.get("GALLERY_VAR_DIR") or HERE / "var"),
        help="where the database, media and broker folders go (default examples/gallery/var)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    # Ctrl-C and SIGTERM both stop the demo (set explicitly: a shell that
    # starts it in the background makes it ignore SIGINT otherwise).
    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    stack = Stack(var_dir=args.var_dir, port=args.port, persist_s3=True)
    try:
        stack.check_s3()
        stack.migrate()
        stack.start()
        admin = (
            "user admin, password admin"
            if stack.own_database
            else "your own account: manage.py createsuperuser"
        )
        print(
            f"\n  The gallery runs at {stack.url}\n"
            f"  Admin: {stack.url}admin/ ({admin})\n"
            f"  S3: {stack.s3_endpoint or 'Amazon S3'}; files under {stack.var_dir}\n"
            "  Press Ctrl-C to stop.\n",
            flush=True,
        )
        while (crashed := stack.crashed()) is None:
            time.sleep(0.5)
        print(f"\nThe {crashed} process stopped; stopping the others.", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nStopping...", flush=True)
        return 0
    except RuntimeError as exc:
        print(f"\nThe demo could not start: {exc}", file=sys.stderr)
        return 1
    finally:
        # A second Ctrl-C must not interrupt the clean-up.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        stack.stop()


if __name__ == "__main__":
    sys.exit(main())
