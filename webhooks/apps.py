from django.apps import AppConfig


class WebhooksConfig(AppConfig):
    # Nothing is plugged in at start-up: settings.EVENT_LISTENERS names the fan-out and
    # settings.CREDENTIAL_IN_USE_CHECKS the check for credentials that sign webhooks.
    name = "webhooks"
    verbose_name = "Webhooks"

    def ready(self) -> None:
        from . import checks  # noqa: F401 - registers the system check
