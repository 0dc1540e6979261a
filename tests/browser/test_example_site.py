"""The gallery example's pages and admin, with its own settings in a fresh
process and Django's test client: the event log in time order, the delayed
mode's message, the admin's thumbnails and its explanations, the "metadata
stripped" event; and demo.py's check of an S3 of one's own."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest

from .conftest import load_demo
from .test_example_security import client_script

EVENTS = """
from datetime import timedelta
from django.utils import timezone
from photos.models import Event

now = timezone.now()
# Recorded in this order (ids 1, 2, 3), but the first one happened last:
# an event written inside a transaction that committed late.
Event.objects.create(kind='transfer_queued', name='b.jpg', process='web', time=now)
Event.objects.create(kind='saved_locally', name='a.jpg', process='web',
                     time=now - timedelta(seconds=2))
Event.objects.create(kind='transfer_started', name='a.jpg', process='worker',
                     time=now - timedelta(seconds=1))
page = client.get('/events/').content.decode()
result['page'] = [kind for kind in ('saved_locally', 'transfer_started', 'transfer_queued')
                  if f'data-kind="{kind}"' in page]
result['page_order'] = sorted(result['page'], key=lambda kind: page.index(f'data-kind="{kind}"'))
since = (now - timedelta(seconds=1)).isoformat()
rows = client.get('/api/events/', {'since': since}).json()['events']
result['since'] = [row['kind'] for row in rows]
"""


def test_the_event_log_is_in_time_order(tmp_path: Path) -> None:
    result = client_script(tmp_path, EVENTS, GALLERY_DEBUG="1")
    assert result["page_order"] == ["saved_locally", "transfer_started", "transfer_queued"]
    # "since" asks again for a little of the past (an event committed late
    # shows up), in time order; the page skips the rows it has.
    assert result["since"] == ["saved_locally", "transfer_started", "transfer_queued"]


DELAYED = """
import io
from PIL import Image
from django.core.files.uploadedfile import SimpleUploadedFile
from storage_hooks.models import StoredFile

out = io.BytesIO()
Image.new('RGB', (32, 24)).save(out, format='JPEG')
response = client.post('/upload/', {'images': SimpleUploadedFile('a.jpg', out.getvalue())},
                       follow=True)
result['messages'] = [str(m) for m in response.context['messages']]
result['statuses'] = list(StoredFile.objects.values_list('status', flat=True))
"""


def test_the_delayed_mode_says_saved_locally(tmp_path: Path) -> None:
    result = client_script(tmp_path, DELAYED, GALLERY_DEBUG="1", GALLERY_DELAYED="1")
    [message] = result["messages"]
    assert message.startswith("1 photo saved locally.")
    assert "queued" not in message
    assert "Transfer now" in message
    assert result["statuses"] == ["local"]


ADMIN = """
from django.contrib.auth.models import User
from django.core.files.storage import storages
from storage_hooks.models import StoredFile
from photos.models import Photo

key = storages['photos'].key
admin = User.objects.create_superuser('staff', 'staff@localhost', 'x')
client.force_login(admin)
with_thumb = Photo.objects.create(title='A', image='photos/a.jpg', width=1, height=1)
StoredFile.objects.create(storage_key=key, name='photos/a.jpg', status='remote', size=7_000_000)
StoredFile.objects.create(storage_key=key, name='photos/a.small.webp', status='local', size=900,
                          derived_from='photos/a.jpg', variant='small')
without = Photo.objects.create(title='B', image='photos/b.jpg', width=1, height=1)
StoredFile.objects.create(storage_key=key, name='photos/b.jpg', status='queued', size=10)
page = client.get('/admin/photos/photo/').content.decode()
result['thumbnail'] = '/media/photos/a.small.webp' in page
result['original'] = 'src="/media/photos/a.jpg"' in page
result['pending'] = 'no thumbnail yet' in page
response = client.post('/admin/photos/photo/', {
    'action': 'retry', '_selected_action': [with_thumb.pk, without.pk]}, follow=True)
result['retry'] = [str(m) for m in response.context['messages']]
"""


def test_the_photos_admin_shows_thumbnails_and_says_why_nothing_was_queued(
    tmp_path: Path,
) -> None:
    result = client_script(tmp_path, ADMIN, GALLERY_DEBUG="1")
    assert result["thumbnail"] is True
    assert result["original"] is False  # never the 7 MB original
    assert result["pending"] is True
    assert result["retry"] == [
        "Nothing was queued: this action queues failed files, and the selected photos' files "
        "are 1 local, 1 queued, 1 remote, 1 not in the ledger. A remote file needs no "
        "transfer; a queued or transferring one is on its way."
    ]


STRIPPED = """
from types import SimpleNamespace
from photos import receivers
from photos.models import Event
from storage_hooks.hooks import StripMetadata

# The local copies as StripMetadata left them (it runs before the
# transfer_started receivers): a.jpg lost its EXIF, b.jpg had none.
sizes = {'a.jpg': 2_400_000, 'b.jpg': 1000, 'c.jpg': 900}
local = SimpleNamespace(size=sizes.__getitem__)
storage = SimpleNamespace(hooks=[StripMetadata()], local=local)
plain = SimpleNamespace(hooks=[], local=local)
for sender, name, size in [(storage, 'a.jpg', 2_500_000), (storage, 'b.jpg', 1000),
                           (plain, 'c.jpg', 1000)]:
    receivers.on_saved_locally(sender, name=name, size=size)
    receivers.on_transfer_started(sender, name=name, attempt=1)
    receivers.on_transfer_started(sender, name=name, attempt=2)  # a retry
result['events'] = [[e.kind, e.name, e.note] for e in Event.objects.all()]
"""


def test_the_event_log_shows_stripped_metadata(tmp_path: Path) -> None:
    result = client_script(tmp_path, STRIPPED, GALLERY_DEBUG="1")
    assert result["events"] == [
        ["saved_locally", "a.jpg", ""],
        ["transfer_started", "a.jpg", ""],
        ["metadata_stripped", "a.jpg", "2.4\xa0MB \u2192 2.3\xa0MB"],
        ["transfer_started", "a.jpg", ""],
        ["saved_locally", "b.jpg", ""],
        ["transfer_started", "b.jpg", ""],
        ["transfer_started", "b.jpg", ""],
        ["saved_locally", "c.jpg", ""],
        ["transfer_started", "c.jpg", ""],
        ["transfer_started", "c.jpg", ""],
    ]


@pytest.fixture
def no_aws_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE",
                 "AWS_SESSION_TOKEN"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def stack(tmp_path: Path, **env: str) -> Any:
    return load_demo().Stack(var_dir=tmp_path, port=0, env=env, log=io.StringIO())


@pytest.mark.usefixtures("no_aws_credentials")
def test_an_own_s3_without_credentials_says_what_to_set(tmp_path: Path) -> None:
    remote = stack(tmp_path, GALLERY_S3_ENDPOINT="https://s3.example.com")
    with pytest.raises(RuntimeError, match="boto3 finds no credentials") as error:
        remote.check_s3()
    assert "Set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE)" in str(error.value)
    assert "GALLERY_S3_BUCKET" in str(error.value)


@pytest.mark.usefixtures("no_aws_credentials")
def test_an_own_loopback_s3_works_without_credentials(tmp_path: Path) -> None:
    local = stack(tmp_path, GALLERY_S3_ENDPOINT="http://127.0.0.1:9000")
    local.check_s3()
    assert local.child_env()["AWS_ACCESS_KEY_ID"] == "demo"
    assert local.uses_moto is False


def test_given_credentials_are_used_as_they_are(tmp_path: Path) -> None:
    own = stack(
        tmp_path,
        GALLERY_S3_ENDPOINT="https://s3.example.com",
        AWS_ACCESS_KEY_ID="mine",
        AWS_SECRET_ACCESS_KEY="secret",
    )
    own.check_s3()
    assert own.child_env()["AWS_ACCESS_KEY_ID"] == "mine"
