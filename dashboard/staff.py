"""The staff console (SPEC §10), for Django staff users: every organization
and the pipeline at a glance, and any organization's pages, read-only."""

from functools import wraps

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from dashboard import console
from dashboard.access import PORTAL_KEY, STAFF_KEY
from webhooks.errors import HeraldError
from webhooks.organizations import find_organization


def staff_required(view):
    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if request.session.get(PORTAL_KEY):
            raise Http404("Not part of the portal.")
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        if not request.user.is_staff:
            raise PermissionDenied("The staff console is for Herald's staff.")
        return view(request, *args, **kwargs)

    return wrapper


@require_GET
@staff_required
def console_page(request):
    now = timezone.now()
    try:
        rows, page = console.organizations_page(request.GET.get("cursor"), now)
    except HeraldError:
        return redirect("staff")
    context = {
        "rows": rows,
        "page": page,
        "pipeline": console.pipeline(now),
        "count_limit": console.COUNT_LIMIT,
        "now": now,
    }
    return render(request, "staff/console.html", context)


@require_POST
@staff_required
def open_organization(request, org: str):
    """Look at this organization's pages, read-only."""
    try:
        organization = find_organization(org)
    except HeraldError:
        raise Http404 from None
    request.session[STAFF_KEY] = organization.public_id
    return redirect("overview")


@require_POST
@staff_required
def leave_organization(request):
    request.session.pop(STAFF_KEY, None)
    return redirect("staff")
