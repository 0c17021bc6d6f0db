from django.apps import AppConfig


class EnvironmentsConfig(AppConfig):
    name = "environments"
    verbose_name = "Environments"

    def ready(self):
        from . import checks  # noqa: F401 - registers the deploy checks
        from .events import event_listeners
        from .outbox import data_holds

        # Import the listeners and holds now, so a misnamed one stops start-up instead of the first write.
        event_listeners()
        data_holds()
