from django.contrib.auth import views as auth_views
from django.urls import path, reverse_lazy

from .views import invitation, passkeys, people, security, sign_in

urlpatterns = [
    path("login/", sign_in.PortalLoginView.as_view(), name="login"),
    path("login/verify/", sign_in.verify, name="verify_second_factor"),
    path("login/passkey/options/", passkeys.sign_in_options, name="passkey_sign_in_options"),
    path("account/security/", security.security, name="security"),
    path("account/security/passkeys/", passkeys.add, name="add_passkey"),
    path("account/security/passkeys/options/", passkeys.registration_options, name="passkey_registration_options"),
    path("account/security/passkeys/<int:passkey_id>/remove/", passkeys.remove, name="remove_passkey"),
    path("account/password/", security.PasswordChange.as_view(), name="password_change"),
    path(
        "password-reset/",
        auth_views.PasswordResetView.as_view(
            template_name="people/password_reset.html",
            email_template_name="people/password_reset_email.txt",
            subject_template_name="people/password_reset_subject.txt",
            success_url=reverse_lazy("password_reset_done"),
            extra_context={"title": "Reset your password"},
        ),
        name="password_reset",
    ),
    path(
        "password-reset/sent/",
        auth_views.PasswordResetDoneView.as_view(
            template_name="people/password_reset_sent.html", extra_context={"title": "Check your e-mail"}
        ),
        name="password_reset_done",
    ),
    path(
        "password-reset/<uidb64>/<token>/",
        security.PasswordResetConfirm.as_view(
            template_name="people/password_reset_confirm.html",
            success_url=reverse_lazy("login"),
            extra_context={"title": "Choose a new password"},
        ),
        name="password_reset_confirm",
    ),
    path("people/", people.people, name="people"),
    path("people/<int:user_id>/", people.person, name="person"),
    path("invitations/<str:token>/", invitation.accept, name="accept_invitation"),
]
