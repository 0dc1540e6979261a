"""The gallery example's safe defaults, each in a fresh process with the
example's own settings (they are read at start-up, as in production):
DEBUG off unless asked for, no start with the demo secret key, the demo
admin only in the demo's own database, upload limits, /media/ only in debug,
and visitors never reading an error's text."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import REPO

GALLERY = REPO / "examples" / "gallery"
SECRET = "a-long-secret-of-the-deployer-" + "x" * 30


def run(args: list[str], var_dir: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """``args`` with the example's settings, in a clean GALLERY_* environment."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("GALLERY_")}
    return subprocess.run(
        args,
        cwd=GALLERY,
        env={
            **base,
            "DJANGO_SETTINGS_MODULE": "gallery_site.settings",
            "PYTHONPATH": str(REPO),
            "GALLERY_VAR_DIR": str(var_dir),
            "GALLERY_RUNNER": "immediate",
            **env,
        },
        capture_output=True,
        text=True,
        timeout=120,
    )


def manage(var_dir: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return run([sys.executable, "manage.py", *args], var_dir, **env)


def client_script(var_dir: Path, body: str, **env: str) -> dict[str, object]:
    """Run ``body`` with a migrated database and Django's test client
    (``client``) in the example; it sets ``result``, returned here."""
    code = (
        "import json, django\n"
        "django.setup()\n"
        "from django.test.utils import setup_test_environment\n"
        "setup_test_environment()\n"
        "from django.core.management import call_command\n"
        "call_command('migrate', verbosity=0)\n"
        "from django.test import Client\n"
        "client = Client()\n"
        "result = {}\n" + body + "\nprint('RESULT', json.dumps(result))\n"
    )
    done = run([sys.executable, "-c", code], var_dir, GALLERY_ALLOWED_HOSTS="testserver", **env)
    assert done.returncode == 0, done.stderr
    line = next(line for line in done.stdout.splitlines() if line.startswith("RESULT "))
    return json.loads(line.removeprefix("RESULT "))  # type: ignore[no-any-return]


# -- DEBUG and the secret key ----------------------------------------------


@pytest.mark.parametrize("debug", [None, "0"])
def test_without_debug_the_demo_key_is_refused(tmp_path: Path, debug: str | None) -> None:
    env = {"GALLERY_DEBUG": debug} if debug else {}
    done = manage(tmp_path, "check", **env)
    assert done.returncode != 0
    assert "GALLERY_SECRET_KEY must be set to a secret of your own" in done.stderr
    done = manage(tmp_path, "check", GALLERY_SECRET_KEY="demo-only-this-key-is-not-secret", **env)
    assert done.returncode != 0
    assert "GALLERY_SECRET_KEY must be set" in done.stderr


def test_a_key_of_ones_own_starts_without_debug(tmp_path: Path) -> None:
    done = manage(tmp_path, "check", "--deploy", "--fail-level", "ERROR",
                  GALLERY_SECRET_KEY=SECRET)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "storage_hooks." not in done.stderr + done.stdout
    settings = run(
        [sys.executable, "-c", "import django; django.setup(); from django.conf import "
         f"settings as s; print(s.DEBUG, s.SECRET_KEY == {SECRET!r})"],
        tmp_path, GALLERY_SECRET_KEY=SECRET,
    )  # fmt: skip
    assert settings.stdout.split() == ["False", "True"]


def test_debug_on_accepts_the_demo_key(tmp_path: Path) -> None:
    assert manage(tmp_path, "check", GALLERY_DEBUG="1").returncode == 0


# -- the demo admin ----------------------------------------------------------


def test_the_demo_admin_is_made_once_in_the_demo_database(tmp_path: Path) -> None:
    assert manage(tmp_path, "migrate", GALLERY_DEBUG="1").returncode == 0
    first = manage(tmp_path, "demo_admin", GALLERY_DEBUG="1")
    assert first.returncode == 0, first.stderr
    assert "Created the demo admin" in first.stdout
    again = manage(tmp_path, "demo_admin", GALLERY_DEBUG="1")
    assert again.returncode == 0
    assert again.stdout.strip() == "The demo admin 'admin' exists."
    assert again.stderr == ""


def test_no_demo_admin_in_a_database_named_by_the_deployer(tmp_path: Path) -> None:
    other = tmp_path / "shared.sqlite3"
    env = {"GALLERY_DEBUG": "1", "GALLERY_DATABASE_URL": f"sqlite:///{other}"}
    assert manage(tmp_path, "migrate", **env).returncode == 0
    done = manage(tmp_path, "demo_admin", **env)
    assert done.returncode == 1
    assert "only made in the demo's own SQLite database" in done.stderr
    assert "createsuperuser" in done.stderr
    count = run(
        [sys.executable, "-c", "import django; django.setup(); from django.contrib.auth."
         "models import User; print(User.objects.count())"],
        tmp_path, **env,
    )  # fmt: skip
    assert count.stdout.strip() == "0"


def test_demo_py_makes_no_admin_elsewhere(tmp_path: Path) -> None:
    """demo.py's Stack.migrate skips the admin for GALLERY_DATABASE_URL."""
    from .conftest import load_demo

    other = tmp_path / "shared.sqlite3"
    log = (tmp_path / "log.txt").open("w")
    stack = load_demo().Stack(
        var_dir=tmp_path, port=0, env={"GALLERY_DATABASE_URL": f"sqlite:///{other}"}, log=log
    )
    assert stack.own_database is False
    stack.migrate(superuser=True)
    log.close()
    assert "demo_admin" not in (tmp_path / "log.txt").read_text()
    assert "Created the demo admin" not in (tmp_path / "log.txt").read_text()


# -- uploads, media, and what visitors see ------------------------------------

UPLOAD = """
import io
from PIL import Image
from django.core.files.uploadedfile import SimpleUploadedFile

def image(fmt, size=(64, 48), noise=False):
    out = io.BytesIO()
    picture = Image.effect_noise(size, 80).convert('RGB') if noise else Image.new('RGB', size)
    picture.save(out, format=fmt)
    return out.getvalue()

def post(name, data):
    response = client.post('/upload/', {'images': SimpleUploadedFile(name, data)})
    return response.status_code, response.content.decode()

result['small'] = post('small.jpg', image('JPEG'))[0]
status, page = post('big.png', image('PNG', (400, 400), noise=True))
result['big'] = [status, 'per image.' in page and 'big.png is' in page]
status, page = post('scan.tiff', image('TIFF'))
result['tiff'] = [status, 'the gallery takes JPEG, PNG, GIF and WebP' in page]
huge = client.post('/upload/', {'images': SimpleUploadedFile('x.jpg', b'0' * 1_300_000)})
result['huge'] = [huge.status_code, 'This upload is too large' in huge.content.decode()]
from photos.models import Photo
result['photos'] = Photo.objects.count()
"""


def test_uploads_are_limited_in_size_number_and_format(tmp_path: Path) -> None:
    result = client_script(
        tmp_path, UPLOAD, GALLERY_DEBUG="1", GALLERY_MAX_UPLOAD_MB="0.1",
        GALLERY_MAX_UPLOAD_FILES="1",
    )  # fmt: skip
    assert result == {
        "small": 302,
        "big": [200, True],
        "tiff": [200, True],
        "huge": [413, True],
        "photos": 1,
    }


MEDIA = """
from pathlib import Path
from django.conf import settings
(Path(settings.MEDIA_ROOT) / 'photos').mkdir(parents=True, exist_ok=True)
(Path(settings.MEDIA_ROOT) / 'photos' / 'a.jpg').write_bytes(b'local copy')
result['status'] = client.get('/media/photos/a.jpg').status_code
"""


def test_media_is_served_by_django_in_debug_only(tmp_path: Path) -> None:
    assert client_script(tmp_path / "on", MEDIA, GALLERY_DEBUG="1") == {"status": 200}
    off = client_script(tmp_path / "off", MEDIA, GALLERY_SECRET_KEY=SECRET)
    assert off == {"status": 404}


FAILED = """
from django.core.files.storage import storages
from storage_hooks.errors import public_message
from storage_hooks.models import StoredFile
from photos.models import Event, Photo

secret = '/srv/private/media/photos/a.jpg at https://user:pw@s3.internal/b?X-Amz-Signature=f00'
photo = Photo.objects.create(title='A', image='photos/a.jpg', width=1, height=1)
StoredFile.objects.create(storage_key=storages['photos'].key, name='photos/a.jpg',
    status='failed', failure='conflict', last_error='NameConflict: ' + secret)
Event.objects.create(kind='transfer_failed', name='photos/a.jpg', process='worker',
    error='NameConflict: ' + secret, failure='conflict', will_retry=False)
pages = {
    'gallery': client.get('/').content.decode(),
    'api': client.get(f'/api/photos/?ids={photo.pk}').content.decode(),
    'events': client.get('/events/').content.decode(),
    'event_rows': client.get('/api/events/').content.decode(),
}
result['leaks'] = [name for name, page in pages.items()
                   if 'private' in page or 's3.internal' in page or 'f00' in page]
message = public_message('conflict')
result['shown'] = [name for name, page in pages.items() if message in page]
result['api_error'] = json.loads(pages['api'])['photos'][0]['error']
result['message'] = message
"""


def test_visitors_see_the_public_message_never_the_error(tmp_path: Path) -> None:
    result = client_script(tmp_path, FAILED, GALLERY_DEBUG="1")
    assert result["leaks"] == []
    assert result["shown"] == ["gallery", "api", "events", "event_rows"]
    assert result["api_error"] == result["message"]


def test_every_gallery_variable_is_documented() -> None:
    import re

    code = "".join(
        path.read_text() for path in GALLERY.rglob("*.py") if "migrations" not in path.parts
    )
    used = set(re.findall(r"GALLERY_[A-Z0-9_]+", code))
    readme = (GALLERY / "README.rst").read_text()
    documented = set(re.findall(r"``(GALLERY_[A-Z0-9_]+)``", readme))
    assert used - {"GALLERY_"} <= documented, sorted(used - documented)
    assert "GALLERY_DEBUG" in used
