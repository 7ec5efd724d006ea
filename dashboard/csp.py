"""The Content-Security-Policy of every response, and who may frame it.

The policy (settings.CONTENT_SECURITY_POLICY) allows scripts, styles and
everything else from Herald's own origin only: no inline script, no inline
style, no eval (htmx is configured not to need them, base.html). Pages refuse
to be framed (`frame-ancestors 'none'` and X-Frame-Options: DENY), except
the portal's: the responses to a session holding a portal grant, and the
portal's own link and end pages, carry `frame-ancestors` from
HERALD_PORTAL_FRAME_ANCESTORS and no X-Frame-Options.
"""

from csp.middleware import CSPMiddleware
from django.conf import settings

from dashboard.access import PORTAL_KEY


def portal_frameable(request) -> bool:
    if getattr(request, "portal_frame", False):
        return True
    session = getattr(request, "session", None)
    return bool(session is not None and session.get(PORTAL_KEY))


class PolicyMiddleware(CSPMiddleware):
    """django-csp's middleware, with the portal's frame-ancestors. Listed
    after XFrameOptionsMiddleware, so that it answers first."""

    def process_response(self, request, response):
        if portal_frameable(request):
            response.xframe_options_exempt = True
            request.portal_frame = True
        return super().process_response(request, response)

    def get_policy_parts(self, request, response, report_only: bool = False):
        parts = super().get_policy_parts(request, response, report_only)
        if getattr(request, "portal_frame", False):
            parts.replace = {
                **(parts.replace or {}),
                "frame-ancestors": settings.HERALD_PORTAL_FRAME_ANCESTORS,
            }
        return parts
