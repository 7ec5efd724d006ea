"""Files asked for at fixed addresses rather than through a page's links."""

from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.templatetags.static import static
from django.views.decorators.http import require_GET


@require_GET
def favicon(request: HttpRequest) -> HttpResponse:
    """/favicon.ico, which browsers and tools ask for whatever the page links:
    the static file (found, so temporary: its hashed name changes with it)."""
    return redirect(static("img/favicon.ico"))
