"""The ledger in Django's admin.

Every file saved through a QueuedStorage, filterable by status and storage,
with three actions: retry the failed transfers, transfer now (a delayed
file, or one waiting for its next attempt), and delete the rejected files.
The rows are read-only and cannot be deleted here: the ledger is the source
of truth about where a file is, and a file is deleted through its storage
(``storage.delete(name)``), which removes the row too.

Built for ledgers of millions of rows: the storage filter lists the keys of
the configured storages (and those the ledger holds, one index probe each)
instead of ``SELECT DISTINCT``; the number of results is counted exactly up
to :data:`EXACT_COUNT_UP_TO` and estimated by PostgreSQL beyond; no count of
the whole table is shown; the search matches names by exact value or prefix
(case-sensitive), through an index.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.apps import apps
from django.contrib import admin, messages
from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.http import HttpRequest
from django.template.defaultfilters import filesizeformat
from django.utils.functional import cached_property
from django.utils.text import Truncator

from .exceptions import UnknownStorageKey
from .management.text import n
from .models import StoredFile
from .ops.common import estimate, is_postgresql, ledger_keys, process_storages
from .ops.purge import purge_rejected
from .registry import get_storage
from .status import Status

#: Result counts are exact up to this many rows, estimated beyond (PostgreSQL).
EXACT_COUNT_UP_TO = 10_000


class EstimatedCountPaginator(Paginator):
    """A paginator that never counts a whole big table: it counts at most
    ``EXACT_COUNT_UP_TO + 1`` rows, and beyond that takes PostgreSQL's
    estimate (other databases count exactly)."""

    @cached_property
    def count(self) -> int:
        query = self.object_list
        if not isinstance(query, QuerySet):
            return len(query)
        capped = query.order_by()[: EXACT_COUNT_UP_TO + 1].count()
        if capped <= EXACT_COUNT_UP_TO:
            return capped
        if is_postgresql():
            return max(estimate(query), capped)
        return query.count()


class StorageKeyFilter(admin.SimpleListFilter):
    """The storage keys of this process's storages and of the ledger (found
    with one index probe per key, never by reading the table)."""

    title = "storage"
    parameter_name = "storage_key"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        keys = {*process_storages(), *ledger_keys()}
        return [(key, key) for key in sorted(keys)]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        return queryset.filter(storage_key=value) if value else queryset


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
        "failure",
        "short_error",
        "updated_at",
    )
    list_filter = ("status", StorageKeyFilter)
    search_fields = ("name",)
    search_help_text = (
        "A file name, or the start of one (case-sensitive): 'photos/2024/' finds every file "
        "under that folder."
    )
    ordering = ("-updated_at",)
    show_full_result_count = False
    paginator = EstimatedCountPaginator
    fieldsets = (
        (None, {"fields": ("storage_key", "name", "status", "failure", "last_error")}),
        ("File", {"fields": ("file_size", "checksum", "host", "remote_etag", "preprocessed")}),
        ("Derivative", {"fields": ("derived_from", "variant")}),
        ("History", {"fields": ("attempts", "created_at", "updated_at", "transferred_at")}),
    )
    readonly_fields = (
        "storage_key",
        "name",
        "status",
        "failure",
        "last_error",
        "file_size",
        "checksum",
        "host",
        "remote_etag",
        "preprocessed",
        "derived_from",
        "variant",
        "attempts",
        "created_at",
        "updated_at",
        "transferred_at",
    )
    actions = ["retry", "transfer_now", "delete_rejected"]

    # -- read-only rows ------------------------------------------------------

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # The change permission allows the actions on the list; a row's own
        # page is always read-only.
        return obj is None and super().has_change_permission(request)

    def has_purge_permission(self, request: HttpRequest) -> bool:
        """Deleting files takes the model's delete permission (rows are
        never deleted one by one here; files are deleted through their
        storage)."""
        opts = self.opts
        return bool(request.user.has_perm(f"{opts.app_label}.delete_{opts.model_name}"))

    # -- search --------------------------------------------------------------

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[StoredFile], search_term: str
    ) -> tuple[QuerySet[StoredFile], bool]:
        """Names equal to the term or starting with it: an index range scan
        (``name LIKE 'term%'`` on the ``varchar_pattern_ops`` index on
        PostgreSQL), where Django's default ``icontains`` reads every row."""
        term = search_term.strip()
        if not term:
            return queryset, False
        return queryset.filter(name__startswith=term), False

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

    @admin.action(description="Delete the rejected files", permissions=["purge"])
    def delete_rejected(self, request: HttpRequest, queryset: QuerySet[StoredFile]) -> None:
        """Delete the selected files a preprocessor refused for good, each
        through its storage (the local copy and the row; the remote was
        never written). Other selected files are left alone."""
        selected = queryset.count()
        report = purge_rejected(rows=queryset)
        deleted = len(report.deleted)
        if deleted:
            self.message_user(request, f"Deleted {n(deleted, 'rejected file')}.", messages.SUCCESS)
        skipped = selected - deleted - len(report.errors) - sum(report.unknown.values())
        if skipped:
            self.message_user(
                request,
                f"Skipped {n(skipped, 'file')}: this action deletes rejected files only "
                "(failed, failure 'rejected').",
                messages.WARNING,
            )
        for entry in report.errors:
            self.message_user(
                request, f"Could not delete {entry['name']}: {entry['error']}", messages.ERROR
            )
        if report.unknown:
            count = sum(report.unknown.values())
            self.message_user(
                request,
                f"Could not delete {n(count, 'file')}: no storage with the key "
                f"{', '.join(map(repr, report.unknown))} exists in the web process.",
                messages.ERROR,
            )

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
            self.message_user(request, f"Queued {n(queued, 'transfer')}.", messages.SUCCESS)
        skipped = selected - len(eligible)
        if skipped:
            self.message_user(
                request,
                f"Skipped {n(skipped, 'file')}: this action queues {wanted} files only.",
                messages.WARNING,
            )
        if unknown:
            self.message_user(
                request,
                f"Could not queue {n(sum(unknown.values()), 'file')}: no "
                f"storage with the key {', '.join(map(repr, sorted(unknown)))} exists in the web "
                "process. Define it in settings.STORAGES, or give it that key= where it is built "
                "in a module the web process imports (such as models.py).",
                messages.ERROR,
            )


# Django's admin imports this module when it is installed; registering only
# then keeps the class importable (and testable) in projects without it.
if apps.is_installed("django.contrib.admin"):
    admin.site.register(StoredFile, StoredFileAdmin)
