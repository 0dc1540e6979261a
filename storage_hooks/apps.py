from django.apps import AppConfig


class StorageHooksConfig(AppConfig):
    name = "storage_hooks"
    verbose_name = "Storage hooks"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import checks  # noqa: F401  (registers the system checks)
