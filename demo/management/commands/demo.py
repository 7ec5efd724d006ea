import random
import time

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from demo import seed
from webhooks.models import Organization


class Command(BaseCommand):
    help = (
        "Seed the demo organization, user and webhooks (prints the org id last), "
        "or with --stream keep publishing demo events."
    )

    def add_arguments(self, parser):
        parser.add_argument("--receiver-url", default="http://127.0.0.1:8001")
        parser.add_argument("--app-url", default="http://127.0.0.1:8000")
        parser.add_argument(
            "--stream", action="store_true", help="publish demo events until stopped"
        )
        parser.add_argument(
            "--interval", type=float, default=2.0, help="seconds between streamed events (mean)"
        )
        parser.add_argument(
            "--labelled",
            action="store_true",
            help="label every line, the org id too (make run); without it the org id is "
            "the bare last line of output, for scripts",
        )

    def handle(self, receiver_url, app_url, stream=False, interval=2.0, labelled=False, **options):
        if stream:
            return self.stream(interval)
        seeded = seed.seed(receiver_url)
        org = seeded.organization
        on_console = settings.EMAIL_BACKEND.endswith(".console.EmailBackend")
        summary = [
            f"demo organization: {org.public_id} ({org.name}, "
            f"{org.webhooks.count()} webhooks → {receiver_url})",
            *([f"API key (shown once): {seeded.api_key}"] if seeded.api_key else []),
            f"dashboard: {app_url}/   login: {seed.DEMO_USER} / {seed.DEMO_PASSWORD}",
            f"API docs: {app_url}/api/docs",
            f"alert e-mails: to {seed.DEMO_EMAIL}"
            + (", printed by the worker (console e-mail backend)" if on_console else ""),
        ]
        if labelled:
            self.stdout.write("\n".join(summary))
        else:
            self.stderr.write("\n".join(summary))
            self.stdout.write(org.public_id)

    def stream(self, interval):
        if interval <= 0:
            raise CommandError("--interval must be positive.")
        organization = Organization.objects.filter(name=seed.DEMO_ORG).order_by("id").first()
        if organization is None:
            raise CommandError("No demo organization: run `manage.py demo` first.")
        self.stderr.write(f"Publishing demo events to {organization.name} every ~{interval} s")
        while True:
            event_id = seed.publish_random(organization)
            self.stdout.write(event_id)
            time.sleep(random.expovariate(1 / interval))
