"""Organizations (tenants) and their members: creating, finding by either
id and changing them (deletion.py deletes them)."""

from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction

from webhooks import ids
from webhooks.errors import Conflict, InvalidInput, NotFound
from webhooks.models import Membership, Organization
from webhooks.validation import check_storable

EXTERNAL_ID_MAX = 100
NAME_MAX = 200


def clean_name(name: object) -> str:
    if not isinstance(name, str) or not name.strip():
        raise InvalidInput("enter a name", "name")
    if len(name) > NAME_MAX:
        raise InvalidInput(f"must be at most {NAME_MAX} characters", "name")
    check_storable(name, "name")
    return name.strip()


def clean_external_id(external_id: object) -> str | None:
    """The product's own id for the customer: 1–100 printable characters,
    not starting with `org_` (Herald's ids), or None."""
    if external_id is None:
        return None
    if not isinstance(external_id, str) or not external_id:
        raise InvalidInput("must be a string of 1 to 100 characters", "external_id")
    if len(external_id) > EXTERNAL_ID_MAX:
        raise InvalidInput(f"must be at most {EXTERNAL_ID_MAX} characters", "external_id")
    if not external_id.isprintable() or external_id != external_id.strip():
        raise InvalidInput("must be printable, without spaces around it", "external_id")
    if external_id.startswith("org_"):
        raise InvalidInput("may not start with 'org_', which Herald's own ids use", "external_id")
    return external_id


@transaction.atomic
def create_organization(
    name: str, owner_username: str | None = None, *, external_id: str | None = None
) -> Organization:
    """A new organization; `owner_username` becomes its owner (the user is
    created, without a usable password, when missing). Conflict (409) when
    `external_id` is taken."""
    external_id = clean_external_id(external_id)
    if external_id and Organization.objects.filter(external_id=external_id).exists():
        raise _taken(external_id)
    try:
        with transaction.atomic():
            organization = Organization.objects.create(name=name, external_id=external_id)
    except IntegrityError:  # taken between the check and the insert
        raise _taken(external_id) from None
    if owner_username:
        user, created = get_user_model().objects.get_or_create(username=owner_username)
        if created:
            user.set_unusable_password()
            user.save(update_fields=["password"])
        Membership.objects.create(organization=organization, user=user, role=Membership.Role.OWNER)
    return organization


def _taken(external_id: str) -> Conflict:
    return Conflict(f"another organization has the external id {external_id!r}", "external_id")


def find_organization(value: str) -> Organization:
    """The organization named by its `org_…` id or its external id; NotFound otherwise."""
    if not isinstance(value, str) or not value or len(value) > EXTERNAL_ID_MAX:
        raise NotFound("No such organization.")
    if ids.looks_like(value, "org"):
        found = Organization.objects.filter(public_id=value).first()
    elif value.startswith("org_") or not value.isprintable():
        found = None
    else:
        found = Organization.objects.filter(external_id=value).first()
    if found is None:
        raise NotFound("No such organization.")
    return found


def update_organization(organization: Organization, **changes) -> Organization:
    """Change `name` and/or `external_id` (None clears it)."""
    fields = {}
    if "name" in changes:
        fields["name"] = clean_name(changes["name"])
    if "external_id" in changes:
        fields["external_id"] = clean_external_id(changes["external_id"])
        taken = Organization.objects.filter(external_id=fields["external_id"]).exclude(
            pk=organization.pk
        )
        if fields["external_id"] and taken.exists():
            raise _taken(fields["external_id"])
    if fields:
        before = {name: getattr(organization, name) for name in fields}
        for name, value in fields.items():
            setattr(organization, name, value)
        try:
            with transaction.atomic():
                # A save, not an update: whoever remembers organizations hears of it.
                organization.save(update_fields=list(fields))
        except IntegrityError:
            for name, value in before.items():
                setattr(organization, name, value)
            raise _taken(fields.get("external_id")) from None
    return organization
