"""The operations dashboard: server-rendered pages (plain function views,
htmx, SVG charts, no JS build).

Owns: access checks for pages (access.py), what each page reads
(queries.py), forms (forms.py), charts (charts.py), views and URLs.

May import: monitoring, deliveries, webhooks. Changes go through the same
functions the API calls (deliveries.actions, monitoring.alerts,
webhooks.validation). Never api or demo.
"""
