"""The customer portal's own pages (SPEC §10): the one-time link that signs
a browser into one organization, the page that says a link or a session is
over, and the portal's colours. The portal's other pages are the dashboard's
own, under access.PORTAL (see access.py): they hide what a portal visitor
may not use (API keys, members, switching organizations, signing out).

Portal pages may be framed by HERALD_PORTAL_FRAME_ANCESTORS (csp.py):
these, and every page of a session holding a portal grant.
"""

import re

from django.conf import settings
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from dashboard.access import grant_portal
from webhooks import portal

ACCENT = re.compile(r"#[0-9a-fA-F]{3,8}")


@never_cache
@require_GET
def enter(request, token: str):
    """A portal link's first visit: sign this browser in, then show the
    organization's webhooks. A link used before, expired or altered signs
    nobody in (and signs out whoever was), with a page that says so."""
    request.portal_frame = True
    try:
        grant = portal.redeem(token)
    except portal.LinkRefused as refused:
        request.session.flush()
        return render(request, "portal/ended.html", {"reason": refused.reason}, status=410)
    grant_portal(request.session, grant)
    return redirect("overview")


@require_GET
def theme(request):
    """The product's accent colour, as a stylesheet: pages carry no inline style."""
    accent = settings.HERALD_PORTAL_ACCENT
    if not ACCENT.fullmatch(accent):
        accent = "#4f46e5"
    css = f":root {{ --accent: {accent}; --accent-dark: {accent}; }}\n"
    response = HttpResponse(css, content_type="text/css; charset=utf-8")
    response["Cache-Control"] = "max-age=300"
    return response
