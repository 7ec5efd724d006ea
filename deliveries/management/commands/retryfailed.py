from datetime import UTC, datetime

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from deliveries import actions
from webhooks.errors import HeraldError
from webhooks.models import Webhook


class Command(BaseCommand):
    help = "Retry every failed delivery of a webhook; prints how many as the last line."

    def add_arguments(self, parser):
        parser.add_argument("webhook_id", metavar="WEBHOOK_ID")
        parser.add_argument(
            "--since", metavar="ISO", help="only deliveries created since this time"
        )

    def handle(self, webhook_id, since=None, **options):
        webhook = Webhook.objects.filter(public_id=webhook_id).first()
        if webhook is None:
            raise CommandError(f"No webhook {webhook_id!r}.")
        since_time = None
        if since:
            try:
                since_time = datetime.fromisoformat(since)
            except ValueError:
                raise CommandError(f"--since: {since!r} is not an ISO 8601 time.") from None
            if timezone.is_naive(since_time):
                since_time = since_time.replace(tzinfo=UTC)
        try:
            count = actions.retry_failed(webhook, since=since_time)
        except HeraldError as exc:
            raise CommandError(exc.message) from None
        self.stdout.write(str(count))
