"""The engine's periodic jobs, loaded by `manage.py scheduler` (one of
HERALD_PERIODIC_JOBS, beside monitoring.cron)."""

from django.conf import settings
from rq import cron

from deliveries import jobs

cron.register(jobs.tick, queue_name=settings.HERALD_QUEUE, interval=1, result_ttl=0, job_timeout=60)
cron.register(
    jobs.sweep,
    queue_name=settings.HERALD_QUEUE,
    interval=settings.HERALD_SWEEP_SECONDS,
    result_ttl=0,
    job_timeout=300,
)
