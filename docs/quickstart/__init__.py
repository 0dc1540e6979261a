# proj/__init__.py: load the Celery app in every process that saves files
from .celery import app as celery_app

__all__ = ["celery_app"]
