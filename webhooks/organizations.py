"""Creating organizations and their members."""

from django.contrib.auth import get_user_model
from django.db import transaction

from webhooks.models import Membership, Organization


@transaction.atomic
def create_organization(name: str, owner_username: str | None = None) -> Organization:
    """A new organization; `owner_username` becomes its owner (the user is
    created, without a usable password, when missing)."""
    organization = Organization.objects.create(name=name)
    if owner_username:
        user, created = get_user_model().objects.get_or_create(username=owner_username)
        if created:
            user.set_unusable_password()
            user.save(update_fields=["password"])
        Membership.objects.create(organization=organization, user=user, role=Membership.Role.OWNER)
    return organization
