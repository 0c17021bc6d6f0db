from django.apps import AppConfig


class EnvironmentsConfig(AppConfig):
    name = "environments"
    verbose_name = "Environments"

    def ready(self):
        from django.urls import register_converter

        from . import checks  # noqa: F401 - registers the deploy checks
        from .converters import DatabaseId, SmallNumber

        register_converter(DatabaseId, "id")
        register_converter(SmallNumber, "number")
