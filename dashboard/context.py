"""Template context for every page."""

from django.conf import settings


def branding(request) -> dict:
    """The portal's name for the product's customers (SPEC §10)."""
    return {"portal_title": settings.HERALD_PORTAL_TITLE}
