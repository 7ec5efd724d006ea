"""The HTTP API (SPEC §8), django-ninja, in one package.

Owns: the NinjaAPI instance and its routers (main.py), the error envelope
(errors.py), what requests may carry (parsing.py), pages and lookups
(pagination.py), the OpenAPI document's error and header entries
(openapi.py), API-key authentication and rate limits (auth.py,
ratelimit.py), and one module per resource: webhooks.py, events.py,
deliveries.py, alerts.py. Routes are thin: the work is done by
deliveries.actions and deliveries.publishing, monitoring.alerts and
monitoring.stats, and webhooks.validation, which the dashboard calls too.

May import: monitoring, deliveries, webhooks. Never dashboard or demo.
"""
