"""The gallery example's Django project."""

# Load the Celery app with Django, so that tasks sent by the web process
# (the transfers) use this app's broker settings.
from .celery import app as celery_app

__all__ = ["celery_app"]
