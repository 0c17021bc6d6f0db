from django.apps import AppConfig


class PeopleConfig(AppConfig):
    name = "people"
    verbose_name = "People and sign-in"

    def ready(self):
        from . import checks  # noqa: F401 - registers the deploy check on MFA_REQUIRED
