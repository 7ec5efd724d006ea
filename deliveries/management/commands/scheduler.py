import logging
import time

import redis
from django.conf import settings
from django.core.management.base import BaseCommand
from django_rq.cron import DjangoCronScheduler
from rq.exceptions import StopRequested

MAX_BACKOFF_SECONDS = 30

log = logging.getLogger("herald.scheduler")


class PerTickAtDebug(logging.Filter):
    """rq's cron scheduler logs every job it enqueues at INFO: a line a second
    for the tick alone. Those lines go down to DEBUG; its starts, stops and
    errors stay where they are."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno == logging.INFO and record.getMessage().startswith("Enqueued job "):
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)
        return True


def configure_logging(level: int) -> None:
    """rq sets its logger's level only when nothing handles its records yet;
    under Django's LOGGING something does, so the level is set here."""
    cron_log = logging.getLogger("rq.cron")
    cron_log.setLevel(level)
    if not any(isinstance(f, PerTickAtDebug) for f in cron_log.filters):
        cron_log.addFilter(PerTickAtDebug())


class Command(BaseCommand):
    help = (
        "Run Herald's periodic jobs (HERALD_PERIODIC_JOBS: tick, sweep, alerts, retention) "
        "with rq's cron scheduler, reconnecting when Redis goes away."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--logging-level",
            choices=["DEBUG", "INFO", "WARNING", "ERROR"],
            default="INFO",
            help="INFO (the default): starts, stops and errors; DEBUG: every job enqueued too",
        )

    def handle(self, logging_level="INFO", **options):
        level = getattr(logging, logging_level)
        configure_logging(level)
        backoff = 1.0
        while True:
            # rq's scheduler ends on a lost connection (and its last gasp, the
            # death registration, fails too); a fresh one registers again.
            scheduler = DjangoCronScheduler(logging_level=level)
            started = time.monotonic()
            try:
                for module in settings.HERALD_PERIODIC_JOBS:
                    scheduler.load_config_from_file(module)
                scheduler.start()
                return  # SIGTERM or SIGINT: a clean stop
            except redis.RedisError as error:
                if time.monotonic() - started > 60:
                    backoff = 1.0
                log.warning(
                    "lost Redis (%s); starting again in %.0f s", type(error).__name__, backoff
                )
            except (StopRequested, KeyboardInterrupt):
                return
            try:
                time.sleep(backoff)
            except (StopRequested, KeyboardInterrupt):
                return  # stopped while waiting for Redis
            backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)
