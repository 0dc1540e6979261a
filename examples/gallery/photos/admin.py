"""The photo and event admins. The ledger's admin comes with storage_hooks
(``storage_hooks/admin.py``): Admin > Storage hooks > Stored files."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import OuterRef, QuerySet, Subquery
from django.http import HttpRequest
from django.utils.html import format_html

from storage_hooks import Status
from storage_hooks.models import StoredFile

from .models import Event, Photo, photo_storage, thumbnails_of
from .states import queue_transfers


class FileStatusFilter(admin.SimpleListFilter):
    """Filter photos by the ledger status of their original file."""

    title = "status"
    parameter_name = "status"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(status.value, status.label) for status in Status]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Photo]) -> QuerySet[Photo]:
        if self.value():
            return queryset.filter(file_status=self.value())
        return queryset


@admin.register(Photo)
class PhotoAdmin(admin.ModelAdmin):
    list_display = ("preview", "title", "file_status", "file_name", "uploaded_at")
    list_display_links = ("preview", "title")
    list_filter = (FileStatusFilter, "uploaded_at")
    search_fields = ("title", "image")
    readonly_fields = ("preview", "file_status", "width", "height")
    actions = ["retry", "transfer_now"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Photo]:
        # The status lives in the ledger, a plain model: a subquery gives
        # every row its status in the same query, and lets the list filter
        # and sort by it.
        ledger = StoredFile.objects.filter(
            storage_key=photo_storage().key, name=OuterRef("image")
        ).values("status")[:1]
        return super().get_queryset(request).annotate(file_status=Subquery(ledger))

    @admin.display(description="status", ordering="file_status")
    def file_status(self, photo: Photo) -> str:
        return getattr(photo, "file_status", None) or "unknown"

    @admin.display(description="file", ordering="image")
    def file_name(self, photo: Photo) -> str:
        # The path wraps at its slashes (templates/admin/base_site.html).
        return format_html('<span class="file-path">{}</span>', photo.image.name)

    @admin.display(description="preview")
    def preview(self, photo: Photo) -> str:
        """The thumbnail, never the original (a photo can weigh megabytes);
        a placeholder until the worker has made it."""
        if not photo.image:
            return ""
        storage = photo_storage()
        names = thumbnails_of([photo.image.name])[photo.image.name]
        made = [name for name, status in storage.statuses(names).items() if status]
        if not made:
            return format_html('<span class="preview-pending">{}</span>', "no thumbnail yet")
        return format_html(
            '<img src="{}" alt="" width="64" height="64" loading="lazy" '
            'style="object-fit: cover; border-radius: 4px">',
            storage.url(made[0]),
        )

    @admin.action(description="Retry the failed transfers", permissions=["change"])
    def retry(self, request: HttpRequest, queryset: QuerySet[Photo]) -> None:
        self._queue(request, queryset, (Status.FAILED,))

    @admin.action(description="Transfer now", permissions=["change"])
    def transfer_now(self, request: HttpRequest, queryset: QuerySet[Photo]) -> None:
        self._queue(request, queryset, (Status.LOCAL, Status.QUEUED, Status.FAILED))

    def _queue(
        self, request: HttpRequest, queryset: QuerySet[Photo], statuses: tuple[Status, ...]
    ) -> None:
        names = [name for photo in queryset for name in queue_transfers(photo, statuses)]
        if names:
            self.message_user(
                request, f"Queued {len(names)} file{'s' if len(names) != 1 else ''}: "
                f"{', '.join(names)}."
            )  # fmt: skip
            return
        self.message_user(request, nothing_queued(queryset, statuses), messages.WARNING)


def nothing_queued(queryset: QuerySet[Photo], statuses: tuple[Status, ...]) -> str:
    """Why an action queued nothing: the statuses the selected photos'
    files are in, beside the ones the action acts on."""
    storage = photo_storage()
    names = [name for photo in queryset for name in photo.file_names]
    found_statuses = list(storage.statuses(names).values())
    counts = [(found_statuses.count(status), status.value) for status in Status]
    counts.append((found_statuses.count(None), "not in the ledger"))
    found = ", ".join(f"{count} {label}" for count, label in counts if count)
    wanted = " or ".join(status.value for status in statuses)
    return (
        f"Nothing was queued: this action queues {wanted} files, and the selected photos' "
        f"files are {found or 'none'}. A remote file needs no transfer; a queued or "
        "transferring one is on its way."
    )


@admin.register(Event)
class EventAdmin(admin.ModelAdmin):
    list_display = ("time", "kind", "name", "process", "attempt", "duration", "failure", "error")
    list_filter = ("kind", "process")
    search_fields = ("name",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
