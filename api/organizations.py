"""Organizations API (SPEC §10), for platform keys only: the product's back
end creates one organization per customer, with its own id for it
(`external_id`), and opens portal sessions for them. Wherever `{org}`
appears it is the `org_…` id or the external id."""

from datetime import datetime

from django.conf import settings
from django.urls import reverse
from ninja import Field, Query, Router, Schema, Status

from api.auth import PlatformAuth
from api.openapi import WITH_BODY, WITH_ID, WITH_QUERY, responses
from api.pagination import page
from api.parsing import StrictSchema, optional
from webhooks import deletion, organizations, portal
from webhooks.models import Organization

router = Router(auth=PlatformAuth(), tags=["organizations"])

EXTERNAL_ID = {"minLength": 1, "maxLength": 100, "pattern": "^(?!org_)"}


class OrganizationIn(StrictSchema):
    name: str = Field(description="1 to 200 characters", json_schema_extra={"maxLength": 200})
    external_id: str | None = Field(
        None,
        description="your product's own id for this customer: unique, 1 to 100 printable "
        "characters, not starting with org_",
        json_schema_extra=EXTERNAL_ID,
    )


class OrganizationPatch(StrictSchema):
    """Every field is optional; a field left out is unchanged."""

    name: str = optional("1 to 200 characters", {"maxLength": 200})
    external_id: str | None = optional("null clears it", EXTERNAL_ID)


class OrganizationOut(Schema):
    id: str
    name: str
    external_id: str | None
    created_at: datetime


class OrganizationListOut(Schema):
    items: list[OrganizationOut]
    next_cursor: str | None


class PortalSessionIn(StrictSchema):
    expires_in_minutes: int = Field(
        portal.DEFAULT_MINUTES,
        ge=portal.MINUTES_RANGE[0],
        le=portal.MINUTES_RANGE[1],
        description="how long the session lasts once opened (5 to 1440)",
    )
    read_only: bool = Field(False, description="no buttons that change anything")


class PortalSessionOut(Schema):
    url: str = Field(description="a one-time sign-in link: open it in your page's iframe")
    expires_at: datetime


def organization_out(organization: Organization) -> dict:
    return {
        "id": organization.public_id,
        "name": organization.name,
        "external_id": organization.external_id,
        "created_at": organization.created_at,
    }


@router.post(
    "",
    response=responses({201: OrganizationOut}, 409, *WITH_BODY),
    summary="Create an organization",
)
def create_organization(request, payload: OrganizationIn):
    """One per customer of your product; 409 when `external_id` is taken."""
    organization = organizations.create_organization(
        organizations.clean_name(payload.name), external_id=payload.external_id
    )
    return Status(201, organization_out(organization))


@router.get(
    "",
    response=responses({200: OrganizationListOut}, 400, *WITH_QUERY),
    summary="List organizations, newest first",
)
def list_organizations(
    request,
    external_id: str | None = Query(None, description="only the one with this external id"),
    cursor: str | None = Query(None, description="`next_cursor` of the previous page"),
    limit: int = Query(50, ge=1, le=200, description="items per page"),
):
    queryset = Organization.objects.all()
    if external_id is not None:
        queryset = queryset.filter(external_id=external_id)
    items, next_cursor = page(queryset, cursor, limit)
    return {"items": [organization_out(o) for o in items], "next_cursor": next_cursor}


@router.get(
    "/{org}", response=responses({200: OrganizationOut}, *WITH_ID), summary="Get an organization"
)
def get_organization(request, org: str):
    return organization_out(organizations.find_organization(org))


@router.patch(
    "/{org}",
    response=responses({200: OrganizationOut}, 409, *WITH_ID, *WITH_BODY),
    summary="Update an organization",
)
def update_organization(request, org: str, payload: OrganizationPatch):
    """Only the fields sent change; 409 when `external_id` is another's."""
    organization = organizations.find_organization(org)
    organizations.update_organization(organization, **payload.model_dump(exclude_unset=True))
    return organization_out(organization)


@router.delete(
    "/{org}", response=responses({204: None}, *WITH_ID), summary="Delete an organization"
)
def delete_organization(request, org: str):
    """Deletes it with its webhooks, events, deliveries and history (in
    batches: other organizations' traffic is not held up)."""
    deletion.delete_organization(organizations.find_organization(org))
    return Status(204, None)


@router.post(
    "/{org}/portal-sessions",
    response=responses({201: PortalSessionOut}, *WITH_ID, *WITH_BODY),
    summary="Open a portal session: a one-time link into the organization's pages",
)
def create_portal_session(request, org: str, payload: PortalSessionIn | None = None):
    """The link signs its first visitor into the organization's pages
    (webhooks, deliveries, events, alerts) until `expires_at`, with no Herald
    account; a second visit, or one after it expired, is refused (410).
    Embed it in an iframe of your product (HERALD_PORTAL_FRAME_ANCESTORS
    must allow your origin). The body is optional."""
    payload = payload or PortalSessionIn()
    session, token = portal.create(
        organizations.find_organization(org),
        minutes=payload.expires_in_minutes,
        read_only=payload.read_only,
        created_by=request.platform_key,
    )
    path = reverse("portal_enter", args=[token])
    base = settings.HERALD_PUBLIC_URL or f"{request.scheme}://{request.get_host()}"
    return Status(201, {"url": base.rstrip("/") + path, "expires_at": session.expires_at})
