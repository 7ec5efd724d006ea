import json

from django.core.management.base import BaseCommand, CommandError

from deliveries.publishing import publish
from webhooks.errors import HeraldError
from webhooks.models import Organization


class Command(BaseCommand):
    help = "Publish an event; prints its evt_… id as the last line."

    def add_arguments(self, parser):
        parser.add_argument("org_id", metavar="ORG_ID")
        parser.add_argument("type", metavar="TYPE", help="e.g. person.created")
        parser.add_argument("data", metavar="JSON", help="the event's data, a JSON object")
        parser.add_argument("--idempotency-key", default=None)

    def handle(self, org_id, type, data, idempotency_key=None, **options):
        organization = Organization.objects.filter(public_id=org_id).first()
        if organization is None:
            raise CommandError(f"No organization {org_id!r}.")
        try:
            parsed = json.loads(data, parse_constant=lambda name: _reject(name))
        except ValueError as exc:
            raise CommandError(f"JSON: not valid JSON ({exc}).") from None
        if not isinstance(parsed, dict):
            raise CommandError("JSON: the event's data must be a JSON object.")
        try:
            published = publish(organization, type, parsed, idempotency_key=idempotency_key)
        except HeraldError as exc:
            raise CommandError(f"{exc.field or 'input'}: {exc.message}") from None
        if not published.created:
            self.stderr.write("An event with this idempotency key exists; nothing new was sent.")
        self.stderr.write(f"Fanned out to {published.delivery_count} webhook(s).")
        self.stdout.write(published.event.public_id)


def _reject(name):
    raise ValueError(f"{name} is not valid JSON")
