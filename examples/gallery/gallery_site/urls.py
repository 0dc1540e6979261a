from django.conf import settings
from django.contrib import admin
from django.urls import include, path, re_path
from django.views.static import serve

urlpatterns = [
    path("", include("photos.urls")),
    path("admin/", admin.site.urls),
    # The local half of the photo storage. Django serves it here so the demo
    # is one process; in production let the web server serve MEDIA_ROOT.
    re_path(r"^media/(?P<path>.*)$", serve, {"document_root": settings.MEDIA_ROOT}),
]
