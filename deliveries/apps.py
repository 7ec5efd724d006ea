from django.apps import AppConfig
from django.conf import settings

from config import embedded_redis
from webhooks.signals import organization_deleting, webhook_deleting


class DeliveriesConfig(AppConfig):
    name = "deliveries"
    verbose_name = "Deliveries"

    def ready(self) -> None:
        # lazy: retention imports models, which cannot load before the app registry is ready.
        from deliveries import retention

        organization_deleting.connect(
            retention.purge_organization, dispatch_uid="deliveries_purge_organization"
        )
        webhook_deleting.connect(retention.purge_webhook, dispatch_uid="deliveries_purge_webhook")
        if settings.HERALD_EMBEDDED_REDIS:
            embedded_redis.default.ensure_running()
