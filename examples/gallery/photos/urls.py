from django.urls import path

from . import views

app_name = "photos"
urlpatterns = [
    path("", views.gallery, name="gallery"),
    path("upload/", views.upload, name="upload"),
    path("photos/<int:pk>/transfer/", views.transfer, name="transfer"),
    path("events/", views.events, name="events"),
    path("api/photos/", views.photo_states, name="photo-states"),
    path("api/events/", views.event_rows, name="event-rows"),
]
