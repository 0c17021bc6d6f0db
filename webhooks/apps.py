from django.apps import AppConfig


class WebhooksConfig(AppConfig):
    name = "webhooks"
    verbose_name = "Webhooks"

    def ready(self) -> None:
        # Plug into the other apps without them importing this one.
        from credentials.services import register_in_use_check

        from .configure import webhooks_signing_with

        # The fan-out is not registered here: settings.EVENT_LISTENERS names it.
        register_in_use_check(webhooks_signing_with)
