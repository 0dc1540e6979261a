from django.apps import AppConfig


class StorageHooksConfig(AppConfig):
    name = "storage_hooks"
    verbose_name = "Storage hooks"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import checks  # noqa: F401  (registers the system checks)
        from .runners.celery import remember_app

        remember_app()  # the project's Celery app, for threads that lack it
