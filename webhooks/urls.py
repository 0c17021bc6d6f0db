from django.urls import path

from .views import erasure, history, jwks, portal, promotion, receiver_auth, reconciliation, recovery, rotation

urlpatterns = [
    path("e/<slug:slug>/webhooks/", portal.webhook_list, name="webhooks"),
    path("e/<slug:slug>/webhooks/jwks.json", jwks.webhook_jwks, name="webhook_jwks"),
    path("e/<slug:slug>/webhooks/new/", portal.webhook_new, name="webhook_new"),
    path("e/<slug:slug>/webhooks/promote/", promotion.promote_integration, name="promote_integration"),
    path("e/<slug:slug>/webhooks/<id:webhook_id>/", portal.webhook_detail, name="webhook_detail"),
    path("e/<slug:slug>/webhooks/<id:webhook_id>/edit/", portal.webhook_edit, name="webhook_edit"),
    path("e/<slug:slug>/webhooks/<id:webhook_id>/secret/", portal.webhook_secret, name="webhook_secret"),
    path("e/<slug:slug>/webhooks/<id:webhook_id>/test/", portal.webhook_test, name="webhook_test"),
    path("e/<slug:slug>/webhooks/<id:webhook_id>/verify/", portal.webhook_verify, name="webhook_verify"),
    path(
        "e/<slug:slug>/webhooks/<id:webhook_id>/waive-verification/",
        portal.webhook_waive_verification,
        name="webhook_waive_verification",
    ),
    path("e/<slug:slug>/webhooks/<id:webhook_id>/self-test/", portal.webhook_self_test, name="webhook_self_test"),
    path("e/<slug:slug>/webhooks/<id:webhook_id>/pause/", portal.webhook_pause, name="webhook_pause"),
    path("e/<slug:slug>/webhooks/<id:webhook_id>/resume/", portal.webhook_resume, name="webhook_resume"),
    path("e/<slug:slug>/webhooks/<id:webhook_id>/retry-now/", portal.webhook_retry_now, name="webhook_retry_now"),
    path("e/<slug:slug>/webhooks/<id:webhook_id>/rotate/", portal.webhook_rotate, name="webhook_rotate"),
    path(
        "e/<slug:slug>/webhooks/<id:webhook_id>/stop-old-keys/",
        portal.webhook_stop_old_keys,
        name="webhook_stop_old_keys",
    ),
    path("e/<slug:slug>/webhooks/<id:webhook_id>/bulk-resend/", portal.webhook_bulk_resend, name="webhook_bulk_resend"),
    path(
        "e/<slug:slug>/webhooks/<id:webhook_id>/recoveries/<id:job_id>/",
        recovery.recovery_page,
        name="webhook_recovery",
    ),
    path("e/<slug:slug>/webhooks/<id:webhook_id>/delete/", portal.webhook_delete, name="webhook_delete"),
    path("e/<slug:slug>/webhooks/<id:webhook_id>/deliveries/", history.webhook_history, name="webhook_history"),
    path("e/<slug:slug>/deliveries/", history.environment_history, name="deliveries"),
    path(
        "e/<slug:slug>/webhooks/<id:webhook_id>/receiver-auth/",
        receiver_auth.webhook_receiver_auth,
        name="webhook_receiver_auth",
    ),
    path("e/<slug:slug>/deliveries/erase/", erasure.erase_payloads, name="erase_payloads"),
    path("e/<slug:slug>/deliveries/reconciliation/", reconciliation.reconciliation_page, name="reconciliation"),
    path("e/<slug:slug>/deliveries/reconciliation.csv", reconciliation.reconciliation_csv, name="reconciliation_csv"),
    path("e/<slug:slug>/deliveries/<id:delivery_id>/", history.delivery_detail, name="delivery_detail"),
    path("e/<slug:slug>/deliveries/<id:delivery_id>/resend/", history.delivery_resend, name="delivery_resend"),
    path("e/<slug:slug>/deliveries/<id:delivery_id>/discard/", history.delivery_discard, name="delivery_discard"),
    path("e/<slug:slug>/credentials/clients/<str:client_id>/rotation/", rotation.rotation_page, name="client_rotation"),
    path(
        "e/<slug:slug>/credentials/clients/<str:client_id>/rotation/<str:step>/",
        rotation.rotation_action,
        name="client_rotation_action",
    ),
]
