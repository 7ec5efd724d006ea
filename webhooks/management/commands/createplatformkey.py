from django.core.management.base import BaseCommand, CommandError

from webhooks.models import PlatformKey


class Command(BaseCommand):
    help = (
        "Issue a platform key (hp_…) for your product's back end: it may act for any "
        "organization it names in the Herald-Organization header. Prints the key last "
        "(shown only once)."
    )

    def add_arguments(self, parser):
        parser.add_argument("name", help="what uses this key, e.g. 'billing service'")

    def handle(self, name, **options):
        name = name.strip()
        if not name or len(name) > 200:
            raise CommandError("NAME must be 1 to 200 characters.")
        key, raw_key = PlatformKey.issue(name)
        self.stderr.write(f"Platform key {key.public_id} ({name}); it is not shown again.")
        self.stdout.write(raw_key)
