from django.apps import AppConfig


class EnvironmentsConfig(AppConfig):
    name = "environments"
    verbose_name = "Environments"

    def ready(self):
        from . import checks  # noqa: F401 - registers the deploy checks
