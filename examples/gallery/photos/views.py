"""Pages and the two small JSON endpoints their scripts poll."""

from __future__ import annotations

from pathlib import PurePosixPath

from django.contrib import messages
from django.db import transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from .forms import UploadForm
from .models import Event, Photo
from .states import describe, queue_transfers

#: The gallery shows the newest photos only; the admin has them all.
PAGE_SIZE = 48
EVENT_LIMIT = 200


def wants_json(request: HttpRequest) -> bool:
    return "application/json" in request.headers.get("Accept", "")


def title_of(filename: str) -> str:
    """A title made from a file name: "alpine-lake.jpg" -> "Alpine lake"."""
    return PurePosixPath(filename).stem.replace("-", " ").replace("_", " ").strip().capitalize()


@require_GET
def gallery(request: HttpRequest) -> HttpResponse:
    photos = Photo.objects.all()[:PAGE_SIZE]
    return render(request, "photos/gallery.html", {"states": describe(photos, request)})


def upload(request: HttpRequest) -> HttpResponse:
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
        messages.success(
            request, f"{count} photo{'s' if count != 1 else ''} saved locally and queued."
        )
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


def _events(request: HttpRequest) -> tuple[Photo | None, list[Event]]:
    """The events to show: ``?photo=<id>`` narrows them to one photo's
    files (original and thumbnails), ``?after=<id>`` to the newer ones."""
    events = Event.objects.all()
    photo = None
    photo_id = request.GET.get("photo", "")
    if photo_id.isdigit():
        photo = Photo.objects.filter(pk=int(photo_id)).first()
        events = events.filter(name__in=photo.file_names if photo else [])
    after = request.GET.get("after", "")
    if after.isdigit():
        return photo, list(events.filter(pk__gt=int(after))[:EVENT_LIMIT])
    # The newest events, shown oldest first so the log reads like a story.
    return photo, list(events.order_by("-pk")[:EVENT_LIMIT])[::-1]


@require_GET
def events(request: HttpRequest) -> HttpResponse:
    photo, rows = _events(request)
    last_id = rows[-1].pk if rows else 0
    context = {"events": rows, "photo": photo, "last_id": last_id}
    return render(request, "photos/events.html", context)


@require_GET
def event_rows(request: HttpRequest) -> JsonResponse:
    """``?after=<id>[&photo=<id>]``: the events recorded since that one."""
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
                    "error": e.error,
                    "will_retry": e.will_retry,
                }
                for e in rows
            ]
        }
    )
