from django.apps import AppConfig


class CredentialsConfig(AppConfig):
    name = "credentials"
    verbose_name = "Credentials"

    def ready(self) -> None:
        from django.conf import settings

        from .services import _in_use_checks

        # Import the checks now, so a misnamed one stops start-up instead of the first invalidation.
        _in_use_checks(tuple(settings.CREDENTIAL_IN_USE_CHECKS))
