"""Monitoring's periodic jobs, loaded by `manage.py scheduler` (one of
HERALD_PERIODIC_JOBS): alert evaluation, the totals roll-up and retention."""

from django.conf import settings
from rq import cron

from monitoring import jobs

cron.register(
    jobs.evaluate_alerts,
    queue_name=settings.HERALD_QUEUE,
    interval=settings.HERALD_ALERT_INTERVAL_SECONDS,
    result_ttl=0,
    job_timeout=jobs.ALERTS_JOB_TIMEOUT,
)
cron.register(
    jobs.roll_up_totals,
    queue_name=settings.HERALD_QUEUE,
    interval=60,
    result_ttl=0,
    job_timeout=300,
)
cron.register(jobs.purge_old, queue_name=settings.HERALD_QUEUE, cron="17 3 * * *", job_timeout=3600)
