"""Pages and the two small JSON endpoints their scripts poll."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import PurePosixPath

from django.conf import settings
from django.contrib import messages
from django.db import transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.template.defaultfilters import filesizeformat
from django.utils.dateparse import parse_datetime
from django.views.decorators.http import require_GET, require_POST

from .forms import UploadForm, max_upload_bytes
from .models import Event, Photo, photo_storage
from .states import describe, queue_transfers

#: The gallery shows the newest photos only; the admin has them all.
PAGE_SIZE = 48
EVENT_LIMIT = 200
#: The event log's polling asks again for this much of the past: an event
#: recorded inside a transaction (an upload's saved_locally) shows up when
#: the transaction commits, after events that happened later.
EVENT_SLACK = timedelta(seconds=30)
#: Room for the form fields and multipart headers beside the images.
FORM_OVERHEAD = 1024 * 1024


def wants_json(request: HttpRequest) -> bool:
    return "application/json" in request.headers.get("Accept", "")


def title_of(filename: str) -> str:
    """A title made from a file name: "alpine-lake.jpg" -> "Alpine lake"."""
    return PurePosixPath(filename).stem.replace("-", " ").replace("_", " ").strip().capitalize()


@require_GET
def gallery(request: HttpRequest) -> HttpResponse:
    photos = Photo.objects.all()[:PAGE_SIZE]
    return render(request, "photos/gallery.html", {"states": describe(photos, request)})


def too_large(request: HttpRequest) -> bool:
    """Whether the request announces more bytes than the largest allowed
    upload (checked before Django reads the body)."""
    limit = max_upload_bytes() * int(getattr(settings, "MAX_UPLOAD_FILES", 20)) + FORM_OVERHEAD
    try:
        return int(request.META.get("CONTENT_LENGTH") or 0) > limit
    except ValueError:
        return True


def upload(request: HttpRequest) -> HttpResponse:
    if request.method == "POST" and too_large(request):
        error = (
            f"This upload is too large: up to {filesizeformat(max_upload_bytes())} per image "
            f"and {getattr(settings, 'MAX_UPLOAD_FILES', 20)} images at once."
        )
        context = {"form": UploadForm(), "error": error}
        return render(request, "photos/upload.html", context, status=413)
    form = UploadForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        files = form.cleaned_data["images"]
        # Each save writes the local copy and a ledger row now; the transfers
        # are queued when this transaction commits, so a failed request
        # leaves nothing queued.
        with transaction.atomic():
            for upload in files:
                title = form.cleaned_data["title"] or title_of(upload.name)
                Photo.objects.create(title=title, image=upload)
        count = len(files)
        photos = f"{count} photo{'s' if count != 1 else ''}"
        if photo_storage().delayed:
            messages.success(
                request,
                f"{photos} saved locally. Nothing is transferred until you press "
                "\u201cTransfer now\u201d on a card.",
            )
        else:
            messages.success(request, f"{photos} saved locally and queued for S3.")
        return redirect("photos:gallery")
    return render(request, "photos/upload.html", {"form": form})


@require_GET
def photo_states(request: HttpRequest) -> JsonResponse:
    """``?ids=3,2,1``: the state of those photos (unknown ids are left out)."""
    try:
        ids = [int(i) for i in request.GET.get("ids", "").split(",") if i]
    except ValueError:
        return JsonResponse({"error": "ids must be comma-separated numbers"}, status=400)
    photos = Photo.objects.filter(pk__in=ids[:PAGE_SIZE])
    return JsonResponse({"photos": [state.as_dict() for state in describe(photos, request)]})


@require_POST
def transfer(request: HttpRequest, pk: int) -> HttpResponse:
    """The "Transfer now" / "Retry" button: queue what waits or failed."""
    photo = get_object_or_404(Photo, pk=pk)
    queued = queue_transfers(photo)
    if wants_json(request):
        [state] = describe([photo], request)
        return JsonResponse({"queued": queued, "photo": state.as_dict()})
    if queued:
        messages.info(request, f"Queued {', '.join(queued)}.")
    else:
        messages.info(request, f"Nothing of {photo} was waiting to be transferred.")
    return redirect("photos:gallery")


def _since(request: HttpRequest) -> datetime | None:
    value = request.GET.get("since", "")
    try:
        return parse_datetime(value) if value else None
    except ValueError:
        return None


def _events(request: HttpRequest) -> tuple[Photo | None, list[Event]]:
    """The events to show, in time order: ``?photo=<id>`` narrows them to
    one photo's files (original and thumbnails), ``?since=<time>`` to the
    ones recorded at that time or later (and a little earlier: see
    EVENT_SLACK; the page skips the ones it has)."""
    events = Event.objects.order_by("time", "pk")
    photo = None
    photo_id = request.GET.get("photo", "")
    if photo_id.isdigit():
        photo = Photo.objects.filter(pk=int(photo_id)).first()
        events = events.filter(name__in=photo.file_names if photo else [])
    since = _since(request)
    if since is not None:
        events = events.filter(time__gte=since - EVENT_SLACK)
    # The newest events (so that a burst never holds the polling back),
    # shown oldest first so the log reads like a story.
    return photo, list(events.reverse()[:EVENT_LIMIT])[::-1]


@require_GET
def events(request: HttpRequest) -> HttpResponse:
    photo, rows = _events(request)
    since = max((e.time for e in rows), default=None)
    context = {"events": rows, "photo": photo, "since": since.isoformat() if since else ""}
    return render(request, "photos/events.html", context)


@require_GET
def event_rows(request: HttpRequest) -> JsonResponse:
    """``?since=<time>[&photo=<id>]``: the events recorded since then. What
    a visitor sees of a failure is its fixed public message, never the
    error's text (that is in the admin)."""
    _, rows = _events(request)
    return JsonResponse(
        {
            "events": [
                {
                    "id": e.pk,
                    "time": e.time.isoformat(),
                    "kind": e.kind,
                    "label": e.get_kind_display(),
                    "name": e.name,
                    "process": e.process,
                    "attempt": e.attempt,
                    "duration": e.duration,
                    "note": e.note,
                    "error": e.public_error,
                    "will_retry": e.will_retry,
                }
                for e in rows
            ]
        }
    )
