from django.apps import AppConfig


class DataApiConfig(AppConfig):
    name = "dataapi"
    verbose_name = "Data API"
