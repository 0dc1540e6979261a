"""The ledger in Django's admin.

Every file saved through a QueuedStorage, filterable by status and storage,
with two actions: retry the failed transfers, and transfer now (a delayed
file, or one waiting for its next attempt). The rows are read-only and
cannot be deleted here: the ledger is the source of truth about where a file
is, and a file is deleted through its storage (``storage.delete(name)``),
which removes the row too.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.apps import apps
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.template.defaultfilters import filesizeformat
from django.utils.text import Truncator

from .exceptions import UnknownStorageKey
from .models import StoredFile
from .registry import get_storage
from .status import Status

#: Statuses "Transfer now" acts on; a file on the remote or being copied
#: right now is left alone.
TRANSFERABLE = (Status.LOCAL, Status.QUEUED, Status.FAILED)


class StoredFileAdmin(admin.ModelAdmin):
    list_display = (
        "name",
        "storage_key",
        "status",
        "file_size",
        "attempts",
        "short_error",
        "updated_at",
    )
    list_filter = ("status", "storage_key")
    search_fields = ("name",)
    ordering = ("-updated_at",)
    fieldsets = (
        (None, {"fields": ("storage_key", "name", "status", "last_error")}),
        ("File", {"fields": ("size", "checksum", "host")}),
        ("History", {"fields": ("attempts", "created_at", "updated_at", "transferred_at")}),
    )
    readonly_fields = (
        "storage_key",
        "name",
        "status",
        "last_error",
        "size",
        "checksum",
        "host",
        "attempts",
        "created_at",
        "updated_at",
        "transferred_at",
    )
    actions = ["retry", "transfer_now"]

    # -- read-only rows ------------------------------------------------------

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # The change permission allows the actions on the list; a row's own
        # page is always read-only.
        return obj is None and super().has_change_permission(request)

    # -- columns -------------------------------------------------------------

    @admin.display(description="size", ordering="size")
    def file_size(self, row: StoredFile) -> str:
        return "" if row.size is None else filesizeformat(row.size)

    @admin.display(description="last error")
    def short_error(self, row: StoredFile) -> str:
        return Truncator(row.last_error).chars(80)

    # -- actions -------------------------------------------------------------

    @admin.action(description="Retry the failed transfers", permissions=["change"])
    def retry(self, request: HttpRequest, queryset: QuerySet[StoredFile]) -> None:
        self._transfer(request, queryset, (Status.FAILED,), "failed")

    @admin.action(description="Transfer now", permissions=["change"])
    def transfer_now(self, request: HttpRequest, queryset: QuerySet[StoredFile]) -> None:
        self._transfer(request, queryset, TRANSFERABLE, "local, queued or failed")

    def _transfer(
        self,
        request: HttpRequest,
        queryset: QuerySet[StoredFile],
        statuses: Iterable[Status],
        wanted: str,
    ) -> None:
        """Queue each selected file whose status is one of ``statuses``
        through its own storage, and tell the user what happened."""
        selected = queryset.count()
        eligible = list(queryset.filter(status__in=list(statuses)).only("storage_key", "name"))
        queued = 0
        unknown: dict[str, int] = {}
        for row in eligible:
            try:
                storage = get_storage(row.storage_key)
            except UnknownStorageKey:
                unknown[row.storage_key] = unknown.get(row.storage_key, 0) + 1
                continue
            storage.transfer(row.name)
            queued += 1
        if queued:
            self.message_user(request, f"Queued {queued} transfer{_s(queued)}.", messages.SUCCESS)
        skipped = selected - len(eligible)
        if skipped:
            self.message_user(
                request,
                f"Skipped {skipped} file{_s(skipped)}: this action queues {wanted} files only.",
                messages.WARNING,
            )
        if unknown:
            self.message_user(
                request,
                f"Could not queue {sum(unknown.values())} file{_s(sum(unknown.values()))}: no "
                f"storage with the key {', '.join(map(repr, sorted(unknown)))} exists in the web "
                "process. Define it in settings.STORAGES, or give it that key= where it is built "
                "in a module the web process imports (such as models.py).",
                messages.ERROR,
            )


def _s(count: int) -> str:
    return "" if count == 1 else "s"


# Django's admin imports this module when it is installed; registering only
# then keeps the class importable (and testable) in projects without it.
if apps.is_installed("django.contrib.admin"):
    admin.site.register(StoredFile, StoredFileAdmin)
