"""The OpenAPI document: every operation lists the errors it can answer with
(those its router declares with `responses()`, and, derived from what it
takes, those the API's machinery produces), each described once, with the
rate-limit headers on every success and on 429."""

import http
from typing import Any

from ninja.responses import codes_4xx

from api.errors import ErrorOut

# What each error status means, for every operation's OpenAPI entry.
ERROR_DESCRIPTIONS = {
    400: (
        "Malformed request: the body is not valid JSON, not a JSON object, or nested "
        "deeper than 128 levels (`malformed_json`, `malformed`, `too_deep`), a cursor "
        "this API did not return (`invalid_cursor`), a platform key without the "
        "`Herald-Organization` header (`organization_required`), or a `Host` header "
        "naming no host this server answers to (`bad_request`)."
    ),
    401: (
        "Missing, malformed, unknown or revoked API key (`unauthorized`); the answer "
        "carries `WWW-Authenticate: Bearer`."
    ),
    404: (
        "No object with this id in your organization (`not_found`). Another "
        "organization's object reads exactly like one that does not exist. With a "
        "platform key, also: no organization by the `Herald-Organization` header's id."
    ),
    409: (
        "The object's state does not allow this (`conflict`, `field` names the state): "
        "the webhook is paused or disabled, or the delivery already succeeded."
    ),
    403: (
        "This operation needs a platform key (`forbidden`): organization keys act for their "
        "own organization only."
    ),
    413: (
        "The request body, or an event's data, is larger than 1 MiB; a batch's body, than "
        "8 MiB (`too_large`)."
    ),
    415: ("The body is not declared `Content-Type: application/json` (`unsupported_media_type`)."),
    422: (
        "A parameter or body field is missing, unknown, of the wrong type or invalid "
        "(`invalid`); `field` names it, dotted when nested (`events.0`, `headers.X-Team`)."
    ),
    429: (
        "Too many requests with this API key (`rate_limited`); retry after the "
        "`Retry-After` seconds."
    ),
}

_NINJA_CODES_4XX = set(codes_4xx)

# Every authenticated operation can answer these (400: a Host header the
# server does not answer to, refused before any route; 422: an unknown query
# parameter).
ALWAYS = (400, 401, 422, 429)
# And these, by what the operation takes:
WITH_ID = (404,)
# A platform key acting for an organization: the header missing, or naming none.
WITH_PLATFORM_KEY = (400, 404)
# An organization key where only a platform key may go.
PLATFORM_ONLY = (403,)
WITH_BODY = (400, 413, 415, 422)
WITH_QUERY = (422,)


def responses(success: dict[int, Any], *errors: int) -> dict[int, Any]:
    """An operation's `response=`: its successes, then the error envelope for
    401 and 429 and each given error status."""
    return {**success, **{code: ErrorOut for code in sorted({*ALWAYS, *errors})}}


_INTEGER_HEADER = {"schema": {"type": "integer", "minimum": 0}}
_RATE_HEADERS = {
    "X-RateLimit-Limit": {
        "description": "Requests this API key may make per rate-limit window.",
        **_INTEGER_HEADER,
    },
    "X-RateLimit-Remaining": {
        "description": "Requests left in the current (sliding) window.",
        **_INTEGER_HEADER,
    },
}


_ERROR_CONTENT = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorOut"}}}


def complete_error_responses(operation: dict) -> None:
    """Document the errors that this module produces for every operation, by
    what the operation takes, whatever its router declared: the key check
    (401, 429; for a platform key, 400 and 404 of the Herald-Organization
    header; 403 for an organization key on a platform operation), the body parser (400, 413, 415, 422), parameter validation
    and unknown query parameters (422) and the lookup of path ids (404). An operation declaring ninja's
    catch-all `codes_4xx` keeps only the statuses the API can answer with."""
    needed = set()
    schemes = {name for requirement in operation.get("security", []) for name in requirement}
    if schemes:
        needed.update(ALWAYS)
    if "OrganizationAuth" in schemes:
        needed.update(WITH_PLATFORM_KEY)
    if "PlatformAuth" in schemes:
        needed.update(PLATFORM_ONLY)
    needed.add(422)  # unknown query parameters, with or without a key
    locations = {parameter["in"] for parameter in operation.get("parameters", [])}
    if "path" in locations:
        needed.update(WITH_ID)
    if locations & {"query", "header"}:
        needed.update(WITH_QUERY)
    if "requestBody" in operation:
        needed.update(WITH_BODY)
    responses = operation["responses"]
    declared = {int(status) for status in responses if 400 <= int(status) < 500}
    if declared >= _NINJA_CODES_4XX:
        for status in list(responses):
            if int(status) in declared - needed - ERROR_DESCRIPTIONS.keys():
                del responses[status]
    present = {int(status) for status in responses}
    for status in sorted(needed - present):
        responses[status] = {"description": _phrase(status), "content": _ERROR_CONTENT}


def describe_responses(responses: dict) -> None:
    for status, response in responses.items():
        status = int(status)
        if status in ERROR_DESCRIPTIONS and response["description"] == _phrase(status):
            response["description"] = ERROR_DESCRIPTIONS[status]
        headers = response.setdefault("headers", {})
        if 200 <= status < 300 or status == 429:
            headers.update(_RATE_HEADERS)
        if status == 429:
            headers["Retry-After"] = {
                "description": "Seconds to wait before the next request.",
                "required": True,
                "schema": {"type": "integer", "minimum": 1},
            }
        if status == 401:
            headers["WWW-Authenticate"] = {
                "description": "Always `Bearer`.",
                "required": True,
                "schema": {"type": "string"},
            }
        if not headers:
            del response["headers"]


def _phrase(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return ""
