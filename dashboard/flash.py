"""Flash messages with the response of the action that caused them.

A full page shows django.contrib.messages in base.html's #messages region.
An htmx action swaps a fragment (or nothing) instead, so its messages would
wait for the next full page; `HtmxMessagesMiddleware` sends them with the
response, in an `HX-Trigger: {"herald:messages": {"messages": [{text, level},
…]}}` header that static/js/herald.js shows in the same region.
"""

from collections.abc import Callable

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django_htmx.http import trigger_client_event

EVENT = "herald:messages"
# Responses after which the browser loads a page, which shows the messages itself.
_NEW_PAGE_HEADERS = ("HX-Refresh", "HX-Redirect", "HX-Location")


def messages_for_client(request: HttpRequest) -> list[dict[str, str]]:
    """The request's pending messages as {text, level}, marked as shown."""
    return [{"text": str(m), "level": m.level_tag} for m in messages.get_messages(request)]


def sends_messages(request: HttpRequest, response: HttpResponse) -> bool:
    """Whether this response should carry the pending messages: an htmx
    request that changed something, answered without loading a new page.
    (A poll's GET leaves them for the page an action is about to load.)"""
    if not getattr(request, "htmx", False) or request.method in ("GET", "HEAD", "OPTIONS"):
        return False
    if response.streaming or 300 <= response.status_code < 400:
        return False
    return not any(header in response for header in _NEW_PAGE_HEADERS)


class HtmxMessagesMiddleware:
    """Listed after MessageMiddleware (so that it runs first on the way out,
    before the storage keeps what was not shown) and HtmxMiddleware."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if sends_messages(request, response):
            pending = messages_for_client(request)
            if pending:
                trigger_client_event(response, EVENT, {"messages": pending})
        return response
