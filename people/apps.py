from django.apps import AppConfig


class PeopleConfig(AppConfig):
    name = "people"
    verbose_name = "People and sign-in"

    def ready(self):
        # The deploy check on MFA_REQUIRED, and the receiver that records each sign-in's session (user_logged_in),
        # connected before anything signs in (a test client's force_login, too).
        from . import checks, sessions  # noqa: F401
