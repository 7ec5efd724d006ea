from django.core.management.base import BaseCommand

from demo.receiver import serve


class Command(BaseCommand):
    help = "Run the demo's local webhook receiver (healthy, flaky and slow endpoints)."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8001)

    def handle(self, host, port, **options):
        serve(host, port)
