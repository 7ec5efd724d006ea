"""What this app announces, for the apps that hold rows of its tenants.

- `organization_deleting(organization)`: the organization is about to be
  deleted (deletion.delete_organization). A receiver deletes its own
  rows of it in batches, each in a transaction of its own, so that the final
  delete of the organization (one transaction, cascading to what is left) is
  small. Sent outside any transaction.
- `webhook_deleting(webhook)`: the same for one webhook
  (deletion.delete_webhook).
"""

from django.dispatch import Signal

organization_deleting = Signal()
webhook_deleting = Signal()
