from django.core.management.base import BaseCommand, CommandError

from webhooks.models import ApiKey, Organization


class Command(BaseCommand):
    help = "Issue an API key for an organization; prints the hk_… key (shown only once)."

    def add_arguments(self, parser):
        parser.add_argument("org_id", metavar="ORG_ID")
        parser.add_argument("--name", default="", help="a label to recognise the key by")

    def handle(self, org_id, name="", **options):
        organization = Organization.objects.filter(public_id=org_id).first()
        if organization is None:
            raise CommandError(f"No organization {org_id!r}.")
        _, raw_key = ApiKey.issue(organization, name=name)
        self.stdout.write(raw_key)
