from django.apps import AppConfig


class ObservabilityConfig(AppConfig):
    name = "observability"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Signal handlers, connected on import: beat's publishes are noted wherever beat runs (its own process,
        # or a worker's --beat); tasks' log lines get their correlation fields; traces cross into tasks.
        from . import beat, tasks_context, tracing  # noqa: F401

        # Traces only when an OTLP endpoint is set; the tracing handlers are no-ops otherwise.
        if tracing.enabled():
            tracing.setup()
