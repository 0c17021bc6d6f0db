from django.apps import AppConfig


class WebhooksConfig(AppConfig):
    name = "webhooks"
    verbose_name = "Webhooks"

    def ready(self) -> None:
        # Plug into the other apps without them importing this one.
        from credentials.services import register_in_use_check
        from environments.events import register_event_listener

        from .configure import webhooks_signing_with
        from .delivery.fanout import fan_out

        register_event_listener(fan_out)
        register_in_use_check(webhooks_signing_with)
