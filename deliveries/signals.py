"""What the engine announces: the seam between it and the apps above it.

The engine never imports monitoring (stats, alerts, operational events);
it sends these signals and monitoring subscribes (MonitoringConfig.ready).
Each is sent inside the transaction that made the change, after the
engine's own writes, so a listener's writes commit or roll back with what
they describe: counters never count an attempt that was rolled back, and
an attempt is never committed without its counters (a listener that raises
rolls the whole batch back). A listener whose work may fail without that
cost (publishing an operational event) guards it with a savepoint.

- `attempts_recorded(batch: dispatch.RecordedBatch)`: a batch of attempts
  and what became of their deliveries (dispatch.record).
- `webhook_disabled(webhook, reason, now, ended, newly, value, threshold)`:
  Herald disabled a webhook (a 410, or too many failed deliveries in a row);
  `ended` of its pending deliveries ended failed; `newly` is False when it
  was disabled already (two workers saw a 410 at once).
- `webhook_enabled(webhook, now)`: a person resumed a webhook, Herald's
  disabling included.
"""

from django.dispatch import Signal

attempts_recorded = Signal()
webhook_disabled = Signal()
webhook_enabled = Signal()
