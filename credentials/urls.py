from django.urls import path

from .views import portal

urlpatterns = [
    path("e/<slug:slug>/credentials/", portal.credential_list, name="credentials"),
    path("e/<slug:slug>/credentials/access/", portal.access_history, name="access_history"),
    path("e/<slug:slug>/credentials/clients/new/", portal.client_new, name="client_new"),
    path("e/<slug:slug>/credentials/clients/<str:client_id>/", portal.client_detail, name="client_detail"),
    path(
        "e/<slug:slug>/credentials/clients/<str:client_id>/new-credential/",
        portal.credential_new,
        name="credential_new",
    ),
    path("e/<slug:slug>/credentials/<uuid:credential_id>/secret/", portal.credential_secret, name="credential_secret"),
    path("e/<slug:slug>/credentials/<uuid:credential_id>/rename/", portal.credential_rename, name="credential_rename"),
    path(
        "e/<slug:slug>/credentials/<uuid:credential_id>/invalidate/",
        portal.credential_invalidate,
        name="credential_invalidate",
    ),
    path(
        "e/<slug:slug>/credentials/<uuid:credential_id>/revoke-tokens/",
        portal.credential_revoke_tokens,
        name="credential_revoke_tokens",
    ),
]
