from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from monitoring.retention import purge


class Command(BaseCommand):
    help = "Delete attempts and events older than the retention period; prints what it deleted."

    def add_arguments(self, parser):
        parser.add_argument(
            "--days",
            type=int,
            default=None,
            help=f"keep this many days (default HERALD_RETENTION_DAYS, {settings.HERALD_RETENTION_DAYS})",
        )

    def handle(self, days=None, **options):
        if days is not None and days < 1:
            raise CommandError("--days must be at least 1.")
        self.stdout.write(f"purged {purge(days)}")
