"""Deleting an organization or a webhook with all its history.

The history (attempts, deliveries, counters) belongs to the apps above this
one, which delete their rows first, in batches of their own short
transactions (signals.organization_deleting, signals.webhook_deleting): no
table is locked for long, and no statement names more rows than a database
takes parameters (PostgreSQL binds at most 65,535, and a cascade names every
row it deletes). What is left goes in one transaction. Call these outside a
transaction: inside one, nothing would commit until the end.
"""

from webhooks import signals
from webhooks.models import Organization, Webhook


def delete_organization(organization: Organization) -> None:
    """Delete the organization with its webhooks, events and history."""
    signals.organization_deleting.send(sender=Organization, organization=organization)
    organization.delete()


def delete_webhook(webhook: Webhook) -> None:
    """Delete the webhook with its deliveries, their attempts and its
    counters. The events stay: they are the organization's."""
    signals.webhook_deleting.send(sender=Webhook, webhook=webhook)
    webhook.delete()
