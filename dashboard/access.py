"""Who is looking, and at which organization.

The current organization lives in the session; every page is scoped to it,
and an object of another organization is a 404 (never a 403 that would
confirm it exists). Viewers read; admins and owners change things."""

from functools import wraps

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest
from django.shortcuts import render

from webhooks.models import Membership

SESSION_KEY = "herald_org"


def memberships(user) -> list[Membership]:
    return list(
        Membership.objects.filter(user=user)
        .select_related("organization")
        .order_by("organization__name", "organization_id")
    )


def current_membership(request: HttpRequest) -> Membership | None:
    """The membership of the organization chosen in the session, or the first one."""
    mine = memberships(request.user)
    request.herald_memberships = mine
    if not mine:
        return None
    chosen = request.session.get(SESSION_KEY)
    for membership in mine:
        if membership.organization.public_id == chosen:
            return membership
    request.session[SESSION_KEY] = mine[0].organization.public_id
    return mine[0]


def member_required(view=None, *, manage: bool = False):
    """Log in, belong to an organization, and (with `manage`) be its admin or owner.

    Sets request.membership and request.organization for the view.
    """

    def decorate(view_func):
        @login_required
        @wraps(view_func)
        def wrapper(request, *args, **kwargs):
            membership = current_membership(request)
            if membership is None:
                return render(request, "dashboard/no_organization.html", status=403)
            if manage and not membership.can_manage:
                raise PermissionDenied("Viewers can look but not change anything.")
            request.membership = membership
            request.organization = membership.organization
            return view_func(request, *args, **kwargs)

        return wrapper

    return decorate(view) if view is not None else decorate
