from django.urls import path

from . import views

urlpatterns = [
    path("notifications/", views.notification_list, name="notifications"),
    path("notifications/<id:notice_id>/open/", views.notification_open, name="notification_open"),
    path("notifications/read/", views.notification_mark_all_read, name="notifications_read"),
    path("notifications/settings/", views.notification_settings, name="notification_settings"),
]
