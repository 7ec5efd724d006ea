"""Events, deliveries and attempts: publishing, signing, sending, retrying."""


def publish(organization, event_type, data, idempotency_key=None):
    """Publish an event for `organization` (see deliveries.publishing.publish)."""
    from deliveries.publishing import publish as _publish

    return _publish(organization, event_type, data, idempotency_key=idempotency_key)
