from django.apps import AppConfig


class PhotosConfig(AppConfig):
    name = "photos"
    verbose_name = "Photos"

    def ready(self) -> None:
        # Receivers run in the process that sends the signal: saved_locally
        # and transfer_queued in the web server, transfer_* and local_deleted
        # in the Celery worker. Connecting them here, when Django starts,
        # makes both processes record their events.
        from . import receivers

        receivers.connect()
