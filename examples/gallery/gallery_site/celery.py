"""The Celery app: ``celery -A gallery_site worker -Q storage_hooks``.

Nothing here is specific to storage_hooks: ``autodiscover_tasks()`` finds
its task (``storage_hooks.tasks``) like any app's, and the runner routes
each transfer to the queue named by ``STORAGE_HOOKS["QUEUE"]``.
"""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gallery_site.settings")

app = Celery("gallery_site")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
