from django.core.management.base import BaseCommand, CommandError

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

    def handle(self, name, owner=None, **options):
        name = name.strip()
        if not name or len(name) > 200:
            raise CommandError("NAME must be 1 to 200 characters.")
        organization = create_organization(name, owner_username=owner)
        if owner:
            self.stderr.write(f"{owner} is the owner of {name}.")
        self.stdout.write(organization.public_id)
