from django.apps import AppConfig
from django.conf import settings


class DeliveriesConfig(AppConfig):
    name = "deliveries"

    def ready(self) -> None:
        if settings.HERALD_EMBEDDED_REDIS:
            from config import embedded_redis

            embedded_redis.default.ensure_running()
