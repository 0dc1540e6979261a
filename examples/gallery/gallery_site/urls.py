from django.conf import settings
from django.conf.urls.static import static
from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("", include("photos.urls")),
    path("admin/", admin.site.urls),
]
# The local half of the photo storage. Django serves it only with DEBUG on
# (static() adds nothing otherwise), so the demo is one process; in
# production the web server serves MEDIA_ROOT (see the example's README).
urlpatterns += static(settings.MEDIA_URL, document_root=settings.MEDIA_ROOT)
