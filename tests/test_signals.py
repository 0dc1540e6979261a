"""The six lifecycle signals: who sends them, when, with which keywords, and
what a receiver's exception does."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any

import blinker
import pytest
from django.core.files.base import ContentFile

from storage_hooks import Status, signals
from storage_hooks.hooks import DeleteLocal

from .conftest import unique_key
from .testapp.storages import ALL_SIGNALS, fs_pair, names_of, recording

pytestmark = pytest.mark.django_db(transaction=True)

DATA = b"signal me"


def test_the_signals_are_the_librarys_own() -> None:
    for signal in ALL_SIGNALS:
        assert signal is not blinker.signal(str(signal.name))
    assert [s.name for s in ALL_SIGNALS] == [
        "saved_locally",
        "transfer_queued",
        "transfer_started",
        "transferred",
        "transfer_failed",
        "local_deleted",
    ]


def test_a_transfer_sends_its_signals_in_order_with_their_keywords(
    local_dir: Path, remote_dir: Path
) -> None:
    storage = fs_pair(local_dir, remote_dir, unique_key(), hooks=[DeleteLocal()])
    senders: list[Any] = []

    def sender_of(sender: Any, **kwargs: Any) -> None:
        senders.append(sender)

    with recording(storage) as events, signals.transferred.connected_to(sender_of):
        name = storage.save("a.txt", ContentFile(DATA))
    assert names_of(events) == [
        "saved_locally",
        "transfer_queued",
        "transfer_started",
        "transferred",
        "local_deleted",
    ]
    assert senders == [storage]
    sent = dict(events)
    checksum = hashlib.sha256(DATA).hexdigest()
    assert sent["saved_locally"] == {"name": name, "size": len(DATA), "checksum": checksum}
    assert sent["transfer_queued"] == {"name": name}
    assert sent["transfer_started"] == {"name": name, "attempt": 1}
    duration = sent["transferred"].pop("duration")
    assert isinstance(duration, float)
    assert duration >= 0
    assert sent["transferred"] == {
        "name": name,
        "size": len(DATA),
        "checksum": checksum,
        "proof": "readback",  # a FileSystemStorage remote: read back and hashed
    }
    assert sent["local_deleted"] == {"name": name}


def test_transfer_failed_keywords(local_dir: Path, remote_dir: Path, settings: Any) -> None:
    settings.STORAGE_HOOKS = {"RUNNER": "immediate", "RETRIES": 1}
    (remote_dir / "sub").write_bytes(b"a file where a directory is needed")
    storage = fs_pair(local_dir, remote_dir, unique_key())
    with recording(storage, signals.transfer_failed) as events:
        name = storage.save("sub/a.txt", ContentFile(DATA))
    assert [set(kw) for _, kw in events] == [{"name", "exception", "attempt", "will_retry"}] * 2
    assert [(kw["name"], kw["attempt"], kw["will_retry"]) for _, kw in events] == [
        (name, 1, True),
        (name, 2, False),
    ]
    assert all(isinstance(kw["exception"], OSError) for _, kw in events)


def test_a_scoped_receiver_sees_only_its_storage(tmp_path: Path) -> None:
    mine = fs_pair(tmp_path / "l1", tmp_path / "r1", unique_key())
    other = fs_pair(tmp_path / "l2", tmp_path / "r2", unique_key())
    with recording(mine) as seen:
        other.save("theirs.txt", ContentFile(DATA))
        mine.save("mine.txt", ContentFile(DATA))
    assert {kw["name"] for _, kw in seen} == {"mine.txt"}
    assert len(seen) == 4


@pytest.mark.parametrize(
    "signal",
    [
        signals.saved_locally,
        signals.transfer_queued,
        signals.transferred,
        signals.local_deleted,
    ],
    ids=lambda s: s.name,
)
def test_a_raising_receiver_is_logged_and_undoes_nothing(
    local_dir: Path,
    remote_dir: Path,
    caplog: pytest.LogCaptureFixture,
    signal: blinker.Signal,
) -> None:
    storage = fs_pair(local_dir, remote_dir, unique_key(), hooks=[DeleteLocal()])
    later: list[str] = []

    def broken(sender: Any, **kwargs: Any) -> None:
        raise RuntimeError("receiver bug")

    def after(sender: Any, *, name: str, **kwargs: Any) -> None:
        later.append(name)

    with (
        caplog.at_level(logging.ERROR, logger="storage_hooks"),
        signal.connected_to(broken, sender=storage),
        signal.connected_to(after, sender=storage),
    ):
        name = storage.save("a.txt", ContentFile(DATA))
    assert later == [name]  # the other receivers still ran
    assert f"A receiver of storage_hooks.signals.{signal.name} raised for 'a.txt'" in caplog.text
    assert "RuntimeError: receiver bug" in caplog.text
    # The file went all the way, whatever the receiver did.
    assert storage.status(name) == Status.REMOTE
    assert (remote_dir / name).read_bytes() == DATA
    assert not (local_dir / name).exists()


def test_a_raising_transfer_failed_receiver_is_logged(
    local_dir: Path, remote_dir: Path, settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
    settings.STORAGE_HOOKS = {"RUNNER": "immediate", "RETRIES": 0}
    (remote_dir / "sub").write_bytes(b"a file where a directory is needed")
    storage = fs_pair(local_dir, remote_dir, unique_key())

    def broken(sender: Any, **kwargs: Any) -> None:
        raise RuntimeError("receiver bug")

    with signals.transfer_failed.connected_to(broken, sender=storage):
        name = storage.save("sub/a.txt", ContentFile(DATA))
    assert "A receiver of storage_hooks.signals.transfer_failed raised" in caplog.text
    assert storage.status(name) == Status.FAILED


def test_receivers_run_in_the_order_they_were_connected(fs_storage: Any) -> None:
    calls: list[int] = []
    receivers = [lambda sender, i=i, **kw: calls.append(i) for i in range(30)]
    for receiver in receivers:
        signals.transfer_queued.connect(receiver, sender=fs_storage)
    try:
        signals.send_robust(signals.transfer_queued, fs_storage, name="x")
        signals.send(signals.transfer_queued, fs_storage, name="x")
    finally:
        for receiver in receivers:
            signals.transfer_queued.disconnect(receiver)
    assert calls == [*range(30), *range(30)]


def test_blinkers_muted_silences_a_signal(local_dir: Path, remote_dir: Path) -> None:
    """The signals are plain blinker signals sent with blinker's send():
    its documented muted() works (round 1 re-implemented dispatch and
    ignored it)."""
    storage = fs_pair(local_dir, remote_dir, unique_key(), hooks=[DeleteLocal()])
    with recording(storage) as events, signals.transferred.muted():
        name = storage.save("quiet.txt", ContentFile(DATA))
    # transferred muted: neither its recorder nor DeleteLocal ran.
    assert names_of(events) == ["saved_locally", "transfer_queued", "transfer_started"]
    assert storage.status(name) == Status.REMOTE
    assert (local_dir / name).exists()


def test_hook_receivers_run_after_the_others(local_dir: Path, remote_dir: Path) -> None:
    """A receiver of transferred connected after the storage was built can
    still read the local copy that DeleteLocal removes."""
    storage = fs_pair(local_dir, remote_dir, unique_key(), hooks=[DeleteLocal()])
    seen: list[bytes] = []

    def reader(sender: Any, name: str, **kwargs: Any) -> None:
        seen.append((local_dir / name).read_bytes())

    with signals.transferred.connected_to(reader, sender=storage):
        name = storage.save("read-me.txt", ContentFile(DATA))
    assert seen == [DATA]
    assert not (local_dir / name).exists()
