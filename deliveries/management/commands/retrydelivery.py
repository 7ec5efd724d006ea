from django.core.management.base import BaseCommand, CommandError

from deliveries import actions
from deliveries.models import Delivery
from webhooks.errors import HeraldError


class Command(BaseCommand):
    help = "Make one immediate attempt of a failed or pending delivery; prints its id."

    def add_arguments(self, parser):
        parser.add_argument("delivery_id", metavar="DELIVERY_ID")

    def handle(self, delivery_id, **options):
        delivery = Delivery.objects.select_related("webhook").filter(public_id=delivery_id).first()
        if delivery is None:
            raise CommandError(f"No delivery {delivery_id!r}.")
        try:
            actions.retry_delivery(delivery)
        except HeraldError as exc:
            raise CommandError(exc.message) from None
        self.stderr.write("Queued one manual attempt.")
        self.stdout.write(delivery.public_id)
