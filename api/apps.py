from django.apps import AppConfig


class ApiConfig(AppConfig):
    name = "api"
    verbose_name = "HTTP API"

    def ready(self) -> None:
        # lazy: credentials imports models, which cannot load before the app registry is ready.
        from api import credentials

        credentials.connect()
