"""The publisher thread (PUBLISH = "background"): what it sends, together
and apart, what it logs, and that a process exiting or forking loses or
repeats nothing. The Celery runner through it, on a real broker, is in
tests/integration/test_runner_celery.py."""

from __future__ import annotations

import logging
import multiprocessing
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command

from storage_hooks.runners.publisher import Publisher

Call = tuple[Any, str, list[str], str]


class Sink:
    """Records each send; ``hold()`` makes the next send wait until
    ``release()``, so that names can be handed over while it is busy."""

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.entered = threading.Event()
        self.gate = threading.Event()
        self.gate.set()
        self.fail: set[str] = set()

    def hold(self) -> None:
        self.gate.clear()
        self.entered.clear()

    def release(self) -> None:
        self.gate.set()

    def __call__(self, app: Any, key: str, names: list[str], queue: str) -> None:
        self.entered.set()
        assert self.gate.wait(10)
        if set(names) & self.fail:
            raise ConnectionError("broker down")
        self.calls.append((app, key, names, queue))


@pytest.fixture
def sink() -> Sink:
    return Sink()


@pytest.fixture
def publisher(sink: Sink) -> Publisher:
    return Publisher(sink, lambda app: f"broker of {app}")


def test_a_lone_name_is_sent_at_once_alone(publisher: Publisher, sink: Sink) -> None:
    publisher.submit("app", "media", ["a.txt"], "q")
    assert publisher.drain(10)
    assert sink.calls == [("app", "media", ["a.txt"], "q")]


def test_names_handed_over_while_it_sends_go_together(publisher: Publisher, sink: Sink) -> None:
    """Saves of separate requests arriving during a send become one send
    per app, storage and queue, in the order they came."""
    sink.hold()
    publisher.submit("app", "media", ["first.txt"], "q")
    assert sink.entered.wait(10)
    publisher.submit("app", "media", ["b.txt"], "q")
    publisher.submit("app", "thumbs", ["t.txt"], "q")
    publisher.submit("app", "media", ["c.txt", "d.txt", "b.txt"], "q")
    publisher.submit("app", "media", ["e.txt"], "q.host2")
    publisher.submit("other-app", "media", ["f.txt"], "q")
    assert not publisher.drain(0.05)  # still sending the first
    sink.release()
    assert publisher.drain(10)
    assert sink.calls == [
        ("app", "media", ["first.txt"], "q"),
        ("app", "media", ["b.txt", "c.txt", "d.txt"], "q"),
        ("app", "thumbs", ["t.txt"], "q"),
        ("app", "media", ["e.txt"], "q.host2"),
        ("other-app", "media", ["f.txt"], "q"),
    ]


def test_a_send_that_fails_is_logged_and_the_next_ones_go_on(
    publisher: Publisher, sink: Sink, caplog: pytest.LogCaptureFixture
) -> None:
    sink.fail = {"lost.txt"}
    with caplog.at_level(logging.ERROR, logger="storage_hooks"):
        publisher.submit("app", "media", ["lost.txt"], "q")
        assert publisher.drain(10)
        publisher.submit("app", "media", ["next.txt"], "q")
        assert publisher.drain(10)
    assert sink.calls == [("app", "media", ["next.txt"], "q")]
    (record,) = caplog.records
    assert "Could not queue the transfer of 'lost.txt' through broker of app" in record.message
    assert "retry --stuck-after 0" in record.message
    assert record.exc_info is not None
    assert record.exc_info[0] is ConnectionError


def test_drain_waits_only_as_long_as_it_is_told(publisher: Publisher, sink: Sink) -> None:
    assert publisher.drain(0)  # nothing handed over: nothing to wait for
    sink.hold()
    publisher.submit("app", "media", ["slow.txt"], "q")
    assert sink.entered.wait(10)
    assert not publisher.drain(0.05)
    sink.release()
    assert publisher.drain(10)


def test_what_it_holds_at_exit_is_sent_before_the_process_ends(tmp_path: Path) -> None:
    """A script (or a management command) that saves and exits at once:
    the atexit drain sends what the thread still holds."""
    out = tmp_path / "sent.txt"
    script = textwrap.dedent(
        f"""
        import time
        from storage_hooks.runners.publisher import Publisher

        def send(app, key, names, queue):
            time.sleep(0.3)  # a slow broker
            with open({str(out)!r}, "a") as fh:
                fh.write(",".join(names) + "\\n")

        publisher = Publisher(send, str)
        publisher.submit("app", "media", ["one.txt"], "q")
        publisher.submit("app", "media", ["two.txt"], "q")
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    sent = [name for line in out.read_text().split() for name in line.split(",")]
    assert sorted(sent) == ["one.txt", "two.txt"]


def _child(publisher: Publisher, sink: Sink, out: Any) -> None:
    sink.release()  # the child's copy of the gate
    before = len(sink.calls)
    publisher.submit("app", "media", ["child.txt"], "q")
    ok = publisher.drain(10)
    out.send((ok, [call[2] for call in sink.calls[before:]]))


@pytest.mark.skipif(sys.platform == "win32", reason="fork")
def test_a_forked_child_sends_its_own_names_not_its_parents(
    publisher: Publisher, sink: Sink
) -> None:
    """A web server forking workers after the parent handed names over: the
    child starts a thread of its own and never sends the parent's names
    (the parent does)."""
    sink.hold()
    publisher.submit("app", "media", ["parent.txt"], "q")
    assert sink.entered.wait(10)
    publisher.submit("app", "media", ["parent-waiting.txt"], "q")
    context = multiprocessing.get_context("fork")
    here, there = context.Pipe()
    child = context.Process(target=_child, args=(publisher, sink, there))
    child.start()
    ok, child_sent = here.recv()
    child.join(10)
    assert ok
    assert child_sent == [["child.txt"]]
    sink.release()
    assert publisher.drain(10)
    assert ["parent-waiting.txt"] in [call[2] for call in sink.calls]


@pytest.mark.django_db
def test_publish_must_be_background_or_inline(settings: Any) -> None:
    from django.core.checks import run_checks

    settings.STORAGE_HOOKS = {"RUNNER": "immediate", "PUBLISH": "later"}
    (error,) = [e for e in run_checks() if e.id == "storage_hooks.E016"]
    assert "'background', 'inline'" in error.msg
    assert "'later'" in error.msg
    settings.STORAGE_HOOKS = {"RUNNER": "immediate", "PUBLISH": "inline"}
    assert not [e for e in run_checks() if e.id == "storage_hooks.E016"]
    call_command("check")  # the default passes
