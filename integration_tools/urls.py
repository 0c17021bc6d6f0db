"""Top-level URL map: the portal pages live in each app's `urls`; the Overview and the Data API compose them."""

from django.contrib.auth import views as auth_views
from django.urls import include, path

from credentials.views import oauth
from dataapi.api import api
from observability.views import metrics

urlpatterns = [
    # Sign-in, second factors, own password and security, invitations and the People page.
    path("", include("people.urls")),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("oauth/token", oauth.token, name="oauth_token"),
    path("oauth/revoke", oauth.revoke, name="oauth_revoke"),
    path("api/v1/", api.urls),
    path("metrics", metrics, name="metrics"),
    path("", include("credentials.urls")),
    path("", include("webhooks.urls")),
    path("", include("overview.urls")),
    path("", include("notifications.urls")),
    path("", include("environments.urls")),
]

handler403 = "environments.views.errors.forbidden"
handler404 = "environments.views.errors.not_found"
handler500 = "environments.views.errors.server_error"
