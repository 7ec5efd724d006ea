"""Monitoring's periodic jobs (registered in cron.py)."""

from django.db import close_old_connections

from deliveries import shutdown
from deliveries.jobs import worker_heartbeats
from deliveries.wakeup import queue
from monitoring import alerts, retention, totals

ALERTS_LOCK_KEY = "herald:alerts:lock"
ALERTS_JOB_TIMEOUT = 300


def evaluate_alerts() -> str:
    """Every HERALD_ALERT_INTERVAL_SECONDS: evaluate the alert rules and send
    the notices (alerts.evaluate). One at a time: a pass that overran its
    interval makes the next one skip rather than race it."""
    close_old_connections()
    connection = queue().connection
    if not connection.set(ALERTS_LOCK_KEY, "1", nx=True, ex=ALERTS_JOB_TIMEOUT):
        return "skipped: the previous evaluation is still running"
    try:
        return str(alerts.evaluate())
    finally:
        connection.delete(ALERTS_LOCK_KEY)


def roll_up_totals() -> str:
    """Every minute: fold the minutes old enough into the all-time totals
    behind the Prometheus counters (totals.py)."""
    close_old_connections()
    return f"rolled up to {totals.roll_up():%Y-%m-%d %H:%M}"


def purge_old() -> str:
    """Daily: apply the retention period."""
    close_old_connections()
    with shutdown.stop_requested() as stopping, worker_heartbeats():
        return str(retention.purge(should_stop=stopping))
