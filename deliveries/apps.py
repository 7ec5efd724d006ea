from django.apps import AppConfig
from django.conf import settings

from config import embedded_redis


class DeliveriesConfig(AppConfig):
    name = "deliveries"
    verbose_name = "Deliveries"

    def ready(self) -> None:
        if settings.HERALD_EMBEDDED_REDIS:
            embedded_redis.default.ensure_running()
