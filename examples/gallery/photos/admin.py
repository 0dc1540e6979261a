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

from .models import Event, Photo, photo_storage
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
    list_display = ("preview", "title", "file_status", "image", "uploaded_at")
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

    @admin.display(description="preview")
    def preview(self, photo: Photo) -> str:
        if not photo.image:
            return ""
        return format_html(
            '<img src="{}" alt="" width="64" height="64" style="object-fit: cover">',
            photo.image.url,
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
            self.message_user(request, f"Queued {len(names)} file(s): {', '.join(names)}.")
        else:
            self.message_user(request, "None of these photos had a file to queue.", messages.INFO)


@admin.register(Event)
class EventAdmin(admin.ModelAdmin):
    list_display = ("time", "kind", "name", "process", "attempt", "duration", "error")
    list_filter = ("kind", "process")
    search_fields = ("name",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
