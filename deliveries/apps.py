from django.apps import AppConfig
from django.conf import settings


class DeliveriesConfig(AppConfig):
    name = "deliveries"

    def ready(self) -> None:
        from django.db.models.signals import post_save, pre_delete

        from deliveries import alerts, totals
        from webhooks.models import Organization, Webhook

        # However an organization comes to be (createorganization, the demo,
        # Django's admin, a test factory), it starts with the default rules.
        post_save.connect(
            alerts.organization_created, sender=Organization, dispatch_uid="herald_default_rules"
        )
        # The Prometheus counters keep what a deleted webhook's stats counted.
        pre_delete.connect(
            totals.webhook_deleted, sender=Webhook, dispatch_uid="herald_fold_in_webhook_stats"
        )

        if settings.HERALD_EMBEDDED_REDIS:
            from config import embedded_redis

            embedded_redis.default.ensure_running()
