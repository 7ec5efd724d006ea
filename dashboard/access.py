"""Who is looking, at which organization, and may they change things.

Three ways into an organization's pages, each decided by `resolve()`, a
plain function of the user and the session (no request), which every page
goes through:

- a member (a Herald user with a Membership): the organization chosen in
  the session, or their first; owners and admins change things, viewers read;
- a portal visitor (SPEC §10): the browser opened a portal link, and the
  session holds its grant until it expires; it changes things unless the
  link was read-only, and sees only the portal's pages;
- staff (Django's is_staff) looking at any organization from /staff/:
  read-only.

Every page is scoped to that organization; another organization's object
is a 404 (never a 403 that would confirm it exists).
"""

from dataclasses import dataclass, field
from datetime import datetime
from functools import wraps

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest
from django.shortcuts import render
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from webhooks.models import Membership, Organization
from webhooks.portal import Grant

SESSION_KEY = "herald_org"  # a member's chosen organization
PORTAL_KEY = "herald_portal"  # a portal grant
STAFF_KEY = "herald_staff_org"  # the organization staff are looking at

MEMBER, PORTAL, STAFF = "member", "portal", "staff"


@dataclass
class Access:
    organization: Organization
    can_change: bool
    via: str  # MEMBER, PORTAL or STAFF
    membership: Membership | None = None
    memberships: list[Membership] = field(default_factory=list)
    ends_at: datetime | None = None  # a portal grant's end

    @property
    def is_portal(self) -> bool:
        return self.via == PORTAL

    @property
    def is_staff(self) -> bool:
        return self.via == STAFF


class PortalEnded(Exception):
    """The session's portal grant has expired (or its organization is gone)."""


def memberships(user) -> list[Membership]:
    return list(
        Membership.objects.filter(user=user)
        .select_related("organization")
        .order_by("organization__name", "organization_id")
    )


def grant_portal(session, grant: Grant) -> None:
    """Sign this session into the grant's organization (and out of anything else)."""
    session.flush()  # a new session key: no fixation, no earlier sign-in kept
    session[PORTAL_KEY] = {
        "session": grant.session_id,
        "organization": grant.organization_id,
        "read_only": grant.read_only,
        "ends_at": grant.expires_at.isoformat(),
    }
    session.set_expiry(grant.expires_at)


def resolve(user, session, now: datetime | None = None) -> Access | None:
    """The access this user and session have, or None (nobody signed in, or
    a user of no organization). Raises PortalEnded for an expired grant."""
    grant = session.get(PORTAL_KEY)
    if grant:
        ends_at = parse_datetime(grant["ends_at"])
        organization = Organization.objects.filter(pk=grant["organization"]).first()
        if organization is None or ends_at <= (now or timezone.now()):
            raise PortalEnded
        return Access(organization, not grant["read_only"], PORTAL, ends_at=ends_at)
    if not user.is_authenticated:
        return None
    watched = session.get(STAFF_KEY)
    if watched and user.is_staff:
        organization = Organization.objects.filter(public_id=watched).first()
        if organization is not None:
            return Access(organization, False, STAFF)
    mine = memberships(user)
    if not mine:
        return None
    chosen = next(
        (m for m in mine if m.organization.public_id == session.get(SESSION_KEY)), mine[0]
    )
    if session.get(SESSION_KEY) != chosen.organization.public_id:
        session[SESSION_KEY] = chosen.organization.public_id
    return Access(chosen.organization, chosen.can_manage, MEMBER, chosen, mine)


def access_required(view=None, *, change: bool = False, portal: bool = True):
    """The page needs access to an organization; with `change`, the right to
    change things (else 403); without `portal`, it is not a portal page (a
    portal visitor gets a 404, as for any page the portal does not have).

    Sets request.access and request.organization for the view."""

    def decorate(view_func):
        @wraps(view_func)
        def wrapper(request: HttpRequest, *args, **kwargs):
            try:
                access = resolve(request.user, request.session)
            except PortalEnded:
                request.session.flush()
                return render(request, "portal/ended.html", {"reason": "ended"}, status=410)
            if access is None:
                if request.user.is_authenticated:
                    return render(request, "dashboard/no_organization.html", status=403)
                return redirect_to_login(request.get_full_path())
            if access.is_portal and not portal:
                raise Http404("Not part of the portal.")
            if change and not access.can_change:
                raise PermissionDenied("This view is read-only: nothing here can be changed.")
            request.access = access
            request.organization = access.organization
            return view_func(request, *args, **kwargs)

        return wrapper

    return decorate(view) if view is not None else decorate
