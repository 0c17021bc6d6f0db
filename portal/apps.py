from django.apps import AppConfig


class PortalConfig(AppConfig):
    """What every app shares: the command base, input checks, URL converters, spreadsheet export and the
    client's address. It imports no other app of ours, so every app may import it."""

    name = "portal"
    verbose_name = "Portal toolbox"

    def ready(self):
        from django.urls import register_converter

        from .converters import DatabaseId, SmallNumber

        register_converter(DatabaseId, "id")
        register_converter(SmallNumber, "number")
