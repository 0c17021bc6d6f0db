from django.urls import path

from . import views

urlpatterns = [
    path("e/<slug:slug>/", views.overview, name="overview"),
]
