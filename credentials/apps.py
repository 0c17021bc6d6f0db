from django.apps import AppConfig


class CredentialsConfig(AppConfig):
    name = "credentials"
    verbose_name = "Credentials"

    def ready(self) -> None:
        from django.conf import settings

        from portal.bindings import named_functions

        # Import the checks now, so a misnamed one stops start-up instead of the first invalidation.
        named_functions(settings.CREDENTIAL_IN_USE_CHECKS)
