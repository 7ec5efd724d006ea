"""The delivery engine: events, deliveries and their attempts.

Owns: publishing (publishing.py) and waking the dispatcher (wakeup.py); the
queue jobs (jobs.py, cron.py) and the dispatcher that claims, sends and
records (dispatch.py, claiming.py, lanes.py, ahead.py, pacing.py); the request itself (envelope.py, signing.py,
sender.py); retry plans (retry.py); graceful stop (shutdown.py); retention
of its history (retention.py); the actions people take on deliveries and
webhooks (actions.py: retry, pause, resume, disable, test).

May import: webhooks, and config's leaf modules (env, embedded_redis).
Never monitoring, api, dashboard or demo: the engine announces what happened
(signals.py) and they listen, or they call down into it.
"""


def publish(organization, event_type, data, idempotency_key=None):
    """Publish an event for `organization` (see deliveries.publishing.publish)."""
    # lazy: publishing imports models, which cannot load while Django imports this package.
    from deliveries.publishing import publish as _publish

    return _publish(organization, event_type, data, idempotency_key=idempotency_key)
