"""The Celery 4.4 app of django-queued-storage's workers."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchmarks.legacy.dqs_settings")

app = Celery("dqs")
app.config_from_object("django.conf:settings", namespace="CELERY")
