"""The HTTP API: one NinjaAPI at /api/, its error envelope, shared schemas.

Every error is `{"error": {"code", "message", "field"?}}`.
"""

import base64
import json
import logging

from django.core.exceptions import RequestDataTooBig
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from ninja import NinjaAPI, Schema
from ninja.errors import AuthenticationError, HttpError, ValidationError
from ninja.parser import Parser
from pydantic import ConfigDict

from webhooks import ids
from webhooks.errors import HeraldError, MalformedInput, TooLarge

log = logging.getLogger(__name__)


class StrictSchema(Schema):
    """Request bodies: unknown fields and loose types are errors, not guesses."""

    model_config = ConfigDict(extra="forbid", strict=True)


class ErrorDetail(Schema):
    code: str
    message: str
    field: str | None = None


class ErrorOut(Schema):
    error: ErrorDetail


# Deeper values would reach Python's recursion limit while they are serialised
# or stored (a 500); serde_json's default limit is the same.
MAX_JSON_DEPTH = 128


def _reject_constant(name: str):
    raise ValueError(f"{name} is not valid JSON")


def _check_depth(body: object) -> None:
    # Iterative on purpose: the point is not to recurse.
    stack = [(body, 1, None)]
    while stack:
        value, depth, field = stack.pop()
        if depth > MAX_JSON_DEPTH:
            raise MalformedInput(
                f"nested deeper than {MAX_JSON_DEPTH} levels", field, code="too_deep"
            )
        items = value.items() if isinstance(value, dict) else enumerate(value)
        for key, child in items:
            if isinstance(child, dict | list):
                name = key if depth == 1 and isinstance(value, dict) else field
                stack.append((child, depth + 1, name))


class JsonOnlyParser(Parser):
    def parse_body(self, request: HttpRequest):
        content_type = request.content_type or ""
        if content_type != "application/json":
            raise HeraldError(
                f"Send JSON with 'Content-Type: application/json' (got {content_type or 'none'!r}).",
                status=415,
                code="unsupported_media_type",
            )
        try:
            body = json.loads(request.body, parse_constant=_reject_constant)
        except RecursionError as exc:
            raise MalformedInput(
                f"The body is nested deeper than {MAX_JSON_DEPTH} levels.", code="too_deep"
            ) from exc
        except (ValueError, UnicodeDecodeError) as exc:
            raise MalformedInput(
                f"The body is not valid JSON: {exc}", code="malformed_json"
            ) from exc
        if isinstance(body, dict | list):
            _check_depth(body)
        return body


api = NinjaAPI(
    title="Herald API",
    version="1",
    description=(
        "Publish events and manage webhooks. Authenticate with an organization API key: "
        '`Authorization: Bearer hk_…`. Errors are `{"error": {"code", "message", "field"}}`.'
    ),
    urls_namespace="api",
    openapi_url="/openapi.json",
    docs_url="/docs",
    parser=JsonOnlyParser(),
)


def error_response(request: HttpRequest, error: HeraldError) -> HttpResponse:
    response = api.create_response(request, error.as_dict(), status=error.status)
    if error.status == 401:
        response["WWW-Authenticate"] = "Bearer"
    return response


@api.exception_handler(HeraldError)
def _herald_error(request, exc: HeraldError):
    return error_response(request, exc)


@api.exception_handler(HttpError)
def _http_error(request, exc: HttpError):
    # Ninja wraps parser failures; ours carry the precise error as the cause.
    if isinstance(exc.__cause__, HeraldError):
        return error_response(request, exc.__cause__)
    if isinstance(exc, AuthenticationError):
        return error_response(
            request,
            HeraldError(
                "Missing or invalid API key: send 'Authorization: Bearer hk_…'.",
                status=401,
                code="unauthorized",
            ),
        )
    code = {400: "bad_request", 404: "not_found", 405: "method_not_allowed", 429: "rate_limited"}
    return error_response(
        request,
        HeraldError(str(exc), status=exc.status_code, code=code.get(exc.status_code, "error")),
    )


@api.exception_handler(Http404)
def _not_found(request, exc):
    return error_response(request, HeraldError("Not found.", status=404, code="not_found"))


@api.exception_handler(RequestDataTooBig)
def _too_big(request, exc):
    return error_response(request, TooLarge("The request body is larger than 1 MiB."))


def _field_name(loc: tuple) -> str | None:
    parts = [str(p) for p in loc]
    # Ninja reports ("body", "<parameter>", field, …) or ("query", field, …).
    if parts and parts[0] == "body":
        parts = parts[2:]
    elif parts and parts[0] in ("query", "path", "header"):
        parts = parts[1:]
    return ".".join(parts) or None


_MESSAGES = {
    "extra_forbidden": "unknown field",
    "missing": "this field is required",
}


@api.exception_handler(ValidationError)
def _validation_error(request, exc: ValidationError):
    first = exc.errors[0] if exc.errors else {}
    loc = tuple(first.get("loc", ()))
    field = _field_name(loc)
    message = _MESSAGES.get(first.get("type"), first.get("msg", "invalid value"))
    status, code = 422, "invalid"
    # No field means the body as a whole is wrong: not an object, or empty.
    if not field and loc[:1] == ("body",):
        status, code, message = 400, "malformed", "the body must be a JSON object"
    return error_response(request, HeraldError(message, field, status=status, code=code))


def get_by_public_id(queryset, public_id: str, prefix: str):
    """The object with this public id, or 404. A malformed id is a 404 without
    a query: a NUL in it is more than PostgreSQL accepts."""
    if not ids.looks_like(public_id, prefix):
        raise Http404
    return get_object_or_404(queryset, public_id=public_id)


def encode_cursor(pk: int) -> str:
    return base64.urlsafe_b64encode(f"pk:{pk}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> int | None:
    if not cursor:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        prefix, _, value = raw.partition(":")
        if prefix != "pk":
            raise ValueError
        pk = int(value)
        if pk <= 0:
            raise ValueError
        return pk
    except (ValueError, UnicodeDecodeError):
        raise HeraldError(
            "not a cursor this API returned", "cursor", code="invalid_cursor"
        ) from None


def page(queryset, cursor: str | None, limit: int):
    """Newest first, `limit` items after `cursor`; stable while rows are added."""
    after = decode_cursor(cursor)
    if after is not None:
        queryset = queryset.filter(pk__lt=after)
    items = list(queryset.order_by("-pk")[: limit + 1])
    next_cursor = encode_cursor(items[limit - 1].pk) if len(items) > limit else None
    return items[:limit], next_cursor
