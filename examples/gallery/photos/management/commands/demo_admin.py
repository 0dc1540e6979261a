"""``manage.py demo_admin``: the demo's admin/admin account, made once.

Only in the demo's own SQLite database (``settings.DEMO_DATABASE``): a
well-known password must never reach a database the site shares with
anything else, so with ``GALLERY_DATABASE_URL`` set this does nothing but
say how to make an account.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import connections

USERNAME = "admin"
PASSWORD = "admin"


def is_demo_database() -> bool:
    database = connections["default"].settings_dict
    demo = getattr(settings, "DEMO_DATABASE", None)
    return (
        demo is not None
        and database["ENGINE"] == "django.db.backends.sqlite3"
        and Path(str(database["NAME"])).resolve() == Path(demo).resolve()
    )


class Command(BaseCommand):
    help = "Create the demo's admin/admin account in the demo's own SQLite database."

    def handle(self, *args: Any, **options: Any) -> None:
        if not is_demo_database():
            raise CommandError(
                "The demo admin (admin/admin) is only made in the demo's own SQLite database, "
                "and GALLERY_DATABASE_URL points elsewhere. Make an account of your own: "
                "python manage.py createsuperuser"
            )
        users = get_user_model()
        if users.objects.filter(username=USERNAME).exists():
            self.stdout.write(f"The demo admin {USERNAME!r} exists.")
            return
        users.objects.create_superuser(USERNAME, f"{USERNAME}@localhost", PASSWORD)
        self.stdout.write(f"Created the demo admin: user {USERNAME!r}, password {PASSWORD!r}.")
