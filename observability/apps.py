from django.apps import AppConfig


class ObservabilityConfig(AppConfig):
    name = "observability"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Beat's publishes are noted wherever beat runs (its own process, or a worker's --beat).
        from . import beat, tasks_context  # noqa: F401
