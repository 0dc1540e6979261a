"""verify by listing (a streaming merge of the remote's listing and the
ledger) and by checksum, on file systems and on S3 (moto's server)."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path
from typing import Any

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import FileSystemStorage, InMemoryStorage

from storage_hooks import Status
from storage_hooks.models import StoredFile
from storage_hooks.ops.listing import ledger_in_order, walk
from storage_hooks.ops.verify import verify_remote
from storage_hooks.storage import QueuedStorage

from . import services
from .conftest import unique_key

pytestmark = pytest.mark.django_db(transaction=True)


def test_walk_yields_names_in_code_point_order(tmp_path: Path) -> None:
    names = ["a.txt", "a/b.txt", "a-b.txt", "a0.txt", "b/c/d.txt", "b/c.txt", "é.txt", "Z.txt"]
    for name in names:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    assert list(walk(FileSystemStorage(location=tmp_path))) == sorted(names)


def test_the_ledger_streams_in_the_same_order(fs_storage: QueuedStorage) -> None:
    names = ["b.txt", "a/b.txt", "a.txt", "A.txt", "ä.txt", "a-b.txt"]
    StoredFile.objects.bulk_create(
        StoredFile(storage_key=fs_storage.key, name=name, status=Status.REMOTE) for name in names
    )
    assert [row.name for row in ledger_in_order(fs_storage.key)] == sorted(names)


def remote_files(storage: QueuedStorage, remote_dir: Path, count: int) -> list[str]:
    names = [f"d{i % 7}/f{i:04d}.txt" for i in range(count)]
    for name in names:
        storage.save(name, ContentFile(name.encode()))
    assert all((remote_dir / name).exists() for name in names)
    return names


def test_verify_by_listing_finds_missing_and_resized_files(
    fs_storage: QueuedStorage, remote_dir: Path
) -> None:
    names = remote_files(fs_storage, remote_dir, 40)
    (remote_dir / names[3]).unlink()
    (remote_dir / names[17]).write_bytes(b"longer than it was")
    (remote_dir / "unrecorded.txt").write_bytes(b"someone else's")  # not a problem

    report = verify_remote([fs_storage.key])

    assert report.checked == 40
    assert sorted((p.name, p.kind) for p in report.problems) == sorted(
        [(names[3], "missing"), (names[17], "size")]
    )


def test_verify_fix_requeues_or_marks_lost(
    fs_storage: QueuedStorage, local_dir: Path, remote_dir: Path
) -> None:
    names = remote_files(fs_storage, remote_dir, 3)
    (remote_dir / names[0]).unlink()
    (remote_dir / names[1]).unlink()
    (local_dir / names[1]).unlink()

    report = verify_remote([fs_storage.key], fix=True)

    actions = {p.name: p.action for p in report.problems}
    assert actions == {names[0]: "requeued", names[1]: "lost"}
    assert (remote_dir / names[0]).exists()  # sent again (immediate runner)
    assert fs_storage.status(names[0]) == Status.REMOTE
    assert fs_storage.status(names[1]) == Status.LOST
    assert not fs_storage.exists(names[1])
    # LOST stays a problem until the file comes back from a backup.
    again = verify_remote([fs_storage.key])
    assert [(p.name, p.kind) for p in again.problems] == [(names[1], "lost")]
    (local_dir / names[1]).write_bytes(names[1].encode())  # restored
    restored = verify_remote([fs_storage.key], fix=True)
    assert [(p.name, p.action) for p in restored.problems] == [(names[1], "requeued")]
    assert fs_storage.status(names[1]) == Status.REMOTE
    assert (remote_dir / names[1]).read_bytes() == names[1].encode()
    assert verify_remote([fs_storage.key]).problems == []


def test_verify_checksums_reads_back_other_storages(
    local_dir: Path,
) -> None:
    remote = InMemoryStorage()
    storage = QueuedStorage(
        local=FileSystemStorage(location=local_dir), remote=remote, key=unique_key("mem")
    )
    storage.save("same.txt", ContentFile(b"abcd"))
    storage.save("flipped.txt", ContentFile(b"abcd"))
    remote.delete("flipped.txt")
    remote.save("flipped.txt", ContentFile(b"abce"))  # same size, other bytes

    assert verify_remote([storage.key]).problems == []  # the listing sees sizes only
    deep = verify_remote([storage.key], checksums=True)
    assert deep.mode == "checksums"
    assert [(p.name, p.kind) for p in deep.problems] == [("flipped.txt", "checksum")]
    assert hashlib.sha256(b"abce").hexdigest() in deep.problems[0].detail


# -- S3 ---------------------------------------------------------------------


def s3_storage(endpoint: str, bucket: str, local_dir: Path, location: str = "media"):  # type: ignore[no-untyped-def]
    from storages.backends.s3 import S3Storage

    remote = S3Storage(**services.s3_options(endpoint, bucket), location=location)
    storage = QueuedStorage(
        local=FileSystemStorage(location=local_dir), remote=remote, key=unique_key("s3v")
    )
    return storage, remote


def count_requests(client, operation: str) -> list[int]:  # type: ignore[no-untyped-def]
    seen = [0]

    def count(**kwargs: object) -> None:
        seen[0] += 1

    client.meta.events.register(f"before-call.s3.{operation}", count)
    return seen


def test_verify_on_s3_lists_a_thousand_keys_per_request(
    s3_endpoint: str, s3_bucket: str, local_dir: Path
) -> None:
    storage, remote = s3_storage(s3_endpoint, s3_bucket, local_dir)
    client = services.s3_client(s3_endpoint)
    count = 1150
    names = [f"p/{i:05d}.bin" for i in range(count)]
    for name in names:  # written behind the library's back, recorded by hand
        client.put_object(Bucket=s3_bucket, Key=f"media/{name}", Body=b"12345")
    StoredFile.objects.bulk_create(
        StoredFile(storage_key=storage.key, name=name, status=Status.REMOTE, size=5)
        for name in names
    )
    client.delete_object(Bucket=s3_bucket, Key=f"media/{names[500]}")
    s3client = remote.connection.meta.client
    lists = count_requests(s3client, "ListObjectsV2")
    heads = count_requests(s3client, "HeadObject")

    report = verify_remote([storage.key])

    assert report.checked == count
    assert [(p.name, p.kind) for p in report.problems] == [(names[500], "missing")]
    assert lists[0] == 2  # 1,149 keys: two pages
    assert heads[0] == 0


def test_sync_remote_on_s3_lists_a_thousand_keys_per_request(
    s3_endpoint: str, s3_bucket: str, local_dir: Path
) -> None:
    from storage_hooks.ops.sync import sync_storage

    storage, remote = s3_storage(s3_endpoint, s3_bucket, local_dir)
    client = services.s3_client(s3_endpoint)
    names = [f"old/{i:05d}.bin" for i in range(1050)]
    for name in names:
        client.put_object(Bucket=s3_bucket, Key=f"media/{name}", Body=b"abc")
    StoredFile.objects.create(storage_key=storage.key, name=names[7], status=Status.REMOTE)
    s3client = remote.connection.meta.client
    lists = count_requests(s3client, "ListObjectsV2")
    heads = count_requests(s3client, "HeadObject")

    report = sync_storage(storage, remote=True)

    assert report.seen_remote == 1050
    assert len(report.recorded_remote) == 1049
    assert lists[0] == 2
    assert heads[0] == 0
    assert StoredFile.objects.filter(storage_key=storage.key, size=3).count() == 1049


def checksum_fixture(s3_endpoint: str, s3_bucket: str, local_dir: Path, body: bytes):  # type: ignore[no-untyped-def]
    storage, remote = s3_storage(s3_endpoint, s3_bucket, local_dir)
    client = services.s3_client(s3_endpoint)
    client.put_object(Bucket=s3_bucket, Key="media/a.txt", Body=body)
    StoredFile.objects.create(
        storage_key=storage.key,
        name="a.txt",
        status=Status.REMOTE,
        size=len(body),
        checksum=hashlib.sha256(body).hexdigest(),
    )
    s3client = remote.connection.meta.client
    heads: list[dict[str, Any]] = []
    s3client.meta.events.register(
        "before-call.s3.HeadObject", lambda params, **kw: heads.append(dict(params))
    )
    return storage, client, s3client, heads


def test_verify_checksums_on_s3_reads_back_when_no_checksum_is_stored(
    s3_endpoint: str, s3_bucket: str, local_dir: Path
) -> None:
    body = b"proven bytes"
    storage, client, s3client, heads = checksum_fixture(s3_endpoint, s3_bucket, local_dir, body)
    gets = count_requests(s3client, "GetObject")

    assert verify_remote([storage.key], checksums=True).problems == []
    # HeadObject asks for the checksum; moto returns none, so one GET reads it back.
    assert [h["headers"].get("x-amz-checksum-mode") for h in heads] == ["ENABLED"]
    assert gets[0] == 1

    client.put_object(Bucket=s3_bucket, Key="media/a.txt", Body=b"other bytes!")
    report = verify_remote([storage.key], checksums=True)
    assert [(p.name, p.kind) for p in report.problems] == [("a.txt", "checksum")]


@pytest.mark.parametrize(
    ("checksum_type", "stored_right"),
    [("FULL_OBJECT", True), ("FULL_OBJECT", False), ("COMPOSITE", False)],
)
def test_verify_checksums_on_s3_trusts_the_checksum_s3_returns(
    s3_endpoint: str, s3_bucket: str, local_dir: Path, checksum_type: str, stored_right: bool
) -> None:
    body = b"proven bytes"
    storage, _client, s3client, heads = checksum_fixture(s3_endpoint, s3_bucket, local_dir, body)
    gets = count_requests(s3client, "GetObject")
    stored = hashlib.sha256(body if stored_right else b"what S3 holds").digest()

    # moto keeps no checksum: answer as AWS does for an object written with
    # ChecksumSHA256 (the only part of the exchange that is simulated).
    def add_checksum(parsed: dict[str, Any], **kwargs: Any) -> None:
        parsed["ChecksumSHA256"] = base64.b64encode(stored).decode()
        parsed["ChecksumType"] = checksum_type

    s3client.meta.events.register("after-call.s3.HeadObject", add_checksum)

    report = verify_remote([storage.key], checksums=True)

    assert len(heads) == 1
    if checksum_type == "COMPOSITE":
        # A multipart upload's checksum of its parts' checksums is not the
        # file's SHA-256: the bytes are read back instead.
        assert gets[0] == 1
        assert report.problems == []
        return
    assert gets[0] == 0
    if stored_right:
        assert report.problems == []
    else:
        assert [(p.name, p.kind) for p in report.problems] == [("a.txt", "checksum")]


def test_verify_checksums_on_s3_reads_back_a_large_object_whole(
    s3_endpoint: str, s3_bucket: str, local_dir: Path
) -> None:
    body = bytes(range(256)) * 6144  # 1.5 MiB: read back in more than one chunk
    storage, client, _s3client, _heads = checksum_fixture(s3_endpoint, s3_bucket, local_dir, body)
    assert verify_remote([storage.key], checksums=True).problems == []
    client.put_object(Bucket=s3_bucket, Key="media/a.txt", Body=body[:-1] + b"!")
    report = verify_remote([storage.key], checksums=True)
    assert [(p.name, p.kind) for p in report.problems] == [("a.txt", "checksum")]


# -- what is reported, and what --fix does ----------------------------------


def memory_remote(local_dir: Path) -> tuple[QueuedStorage, InMemoryStorage]:
    remote = InMemoryStorage()
    storage = QueuedStorage(
        local=FileSystemStorage(location=local_dir), remote=remote, key=unique_key("mem")
    )
    return storage, remote


def test_verify_checksums_finds_missing_and_resized_files(local_dir: Path) -> None:
    storage, remote = memory_remote(local_dir)
    for name in ("gone.txt", "grown.txt", "kept.txt"):
        storage.save(name, ContentFile(b"abcd"))
    remote.delete("gone.txt")
    remote.delete("grown.txt")
    remote.save("grown.txt", ContentFile(b"abcdef"))

    report = verify_remote([storage.key], checksums=True)

    assert report.checked == 3
    assert [(p.name, p.kind, p.expected_size, p.actual_size) for p in report.problems] == [
        ("gone.txt", "missing", 4, None),
        ("grown.txt", "size", 4, 6),
    ]


def test_verify_without_fix_changes_nothing(fs_storage: QueuedStorage, remote_dir: Path) -> None:
    names = remote_files(fs_storage, remote_dir, 2)
    (remote_dir / names[0]).unlink()

    report = verify_remote([fs_storage.key])

    assert [(p.name, p.kind, p.action) for p in report.problems] == [(names[0], "missing", "")]
    assert fs_storage.status(names[0]) == Status.REMOTE
    assert not (remote_dir / names[0]).exists()


def test_a_remote_file_that_cannot_be_sized_is_an_error_and_never_fixed(
    fs_storage: QueuedStorage, remote_dir: Path
) -> None:
    fs_storage.save("a.txt", ContentFile(b"abc"))
    (remote_dir / "a.txt").unlink()
    (remote_dir / "a.txt").symlink_to(remote_dir / "nowhere")  # listed, not readable

    report = verify_remote([fs_storage.key], fix=True)

    (problem,) = report.problems
    assert (problem.name, problem.kind, problem.expected_size, problem.action) == (
        "a.txt",
        "error",
        3,
        "",
    )
    assert problem.detail.startswith("FileNotFoundError: ")
    assert not report.ok
    assert fs_storage.status("a.txt") == Status.REMOTE  # the remote could not be asked
    assert (remote_dir / "a.txt").is_symlink()


def test_fix_requeues_to_the_host_that_holds_the_local_copy(
    fs_storage: QueuedStorage, remote_dir: Path
) -> None:
    from django.test import override_settings

    from .test_commands import RecordingRunner

    fs_storage.save("a.txt", ContentFile(b"abc"))
    StoredFile.objects.filter(storage_key=fs_storage.key, name="a.txt").update(host="web-7")
    (remote_dir / "a.txt").unlink()
    RecordingRunner.calls.clear()
    runner = {"RUNNER": "tests.test_commands.RecordingRunner", "HOSTNAME": "cron-1"}

    with override_settings(STORAGE_HOOKS=runner):
        report = verify_remote([fs_storage.key], fix=True)
        assert fs_storage.status("a.txt") == Status.QUEUED  # served locally meanwhile
        assert fs_storage.url("a.txt") == fs_storage.local.url("a.txt")

    assert [(p.name, p.action) for p in report.problems] == [("a.txt", "requeued")]
    assert RecordingRunner.calls == [(fs_storage.key, "a.txt", "web-7")]


def test_fix_reports_files_lost_before_with_those_it_finds_lost(
    fs_storage: QueuedStorage, local_dir: Path, remote_dir: Path
) -> None:
    for name in ("a.txt", "b.txt"):
        fs_storage.save(name, ContentFile(b"abc"))
        (remote_dir / name).unlink()
        (local_dir / name).unlink()
    verify_remote([fs_storage.key], fix=True)  # both LOST
    StoredFile.objects.filter(storage_key=fs_storage.key, name="a.txt").update(
        status=Status.REMOTE  # a.txt: recorded REMOTE again (a restored ledger)
    )

    report = verify_remote([fs_storage.key], fix=True)

    assert [(p.name, p.kind, p.action) for p in report.problems] == [
        ("a.txt", "missing", "lost"),
        ("b.txt", "lost", ""),
    ]


def test_verify_json_says_its_layout(fs_storage: QueuedStorage, remote_dir: Path) -> None:
    from .test_commands import run

    remote_files(fs_storage, remote_dir, 1)
    document = run("verify", "--json", "--storage", fs_storage.key).json()
    assert (document["schema"], document["command"], document["ok"]) == (1, "verify", True)
