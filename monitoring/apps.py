from django.apps import AppConfig


class MonitoringConfig(AppConfig):
    name = "monitoring"
    verbose_name = "Monitoring and alerts"

    def ready(self) -> None:
        # lazy: receivers imports models, which cannot load before the app registry is ready.
        from monitoring import receivers

        receivers.connect()
