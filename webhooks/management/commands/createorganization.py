from django.core.management.base import BaseCommand, CommandError

from webhooks.errors import HeraldError
from webhooks.organizations import create_organization


class Command(BaseCommand):
    help = "Create an organization; prints its org_… id as the last line."

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument(
            "--owner",
            metavar="USERNAME",
            help="make this user the owner (created without a password if missing; "
            "set one with `changepassword`)",
        )
        parser.add_argument(
            "--external-id",
            metavar="ID",
            help="your product's own id for this customer (unique; not starting with org_)",
        )

    def handle(self, name, owner=None, external_id=None, **options):
        name = name.strip()
        if not name or len(name) > 200:
            raise CommandError("NAME must be 1 to 200 characters.")
        try:
            organization = create_organization(name, owner_username=owner, external_id=external_id)
        except HeraldError as error:
            raise CommandError(f"--{error.field.replace('_', '-')}: {error.message}") from None
        if owner:
            self.stderr.write(f"{owner} is the owner of {name}.")
        self.stdout.write(organization.public_id)
