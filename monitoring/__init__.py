"""Monitoring: what Herald knows about how deliveries go, and who it tells.

Owns: per-minute counters and their all-time totals (stats.py, totals.py,
models WebhookStats and StatsTotals); alert rules and alerts (alerts.py,
evaluation.py); e-mail and chat notices (notices.py); operational `herald.*`
events (operational.py); `/healthz` (health.py) and `/metrics`
(prometheus.py); how figures read everywhere (units.py); its periodic jobs
and the daily retention pass (jobs.py, cron.py, retention.py). It learns what the engine did through the engine's
signals (receivers.py).

May import: deliveries, webhooks, config's leaf modules. Never api,
dashboard or demo. The engine never imports it.
"""
