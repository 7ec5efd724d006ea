"""The HTTP API: one NinjaAPI at /api/, its error envelope, shared schemas.

Every error is `{"error": {"code", "message", "field"?}}` — those of the body
parser, parameter validation, authentication and rate limiting (here), of the
views (webhooks.errors), a wrong method (405) and the API root alike. Every
operation's OpenAPI entry lists the errors it can answer with: those its
router declares (`responses()`) and, derived from what it takes, those this
module produces (`_complete_error_responses`). Query parameters an operation
does not take are refused (422), as unknown body fields are.
"""

import base64
import functools
import http
import json
import logging
import re
from datetime import UTC, datetime
from typing import Annotated, Any

from django.core.exceptions import RequestDataTooBig
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404
from ninja import Field, NinjaAPI, Schema
from ninja.errors import AuthenticationError, HttpError, ValidationError
from ninja.parser import Parser
from ninja.responses import codes_4xx
from pydantic import BeforeValidator, ConfigDict, WithJsonSchema

from webhooks import ids
from webhooks.auth import ApiKeyAuth
from webhooks.errors import HeraldError, InvalidInput, MalformedInput, TooLarge

log = logging.getLogger(__name__)


class StrictSchema(Schema):
    """Request bodies: unknown fields and loose types are errors, not guesses."""

    model_config = ConfigDict(extra="forbid", strict=True)


def optional(description: str | None = None, schema: dict | None = None, **kwargs) -> Any:
    """A field that may be left out but not sent as null (a partial update:
    absent means unchanged); pydantic rejects a null for a non-Optional type.
    Its schema says so: no default, plus `schema`'s keywords."""

    def extra(field_schema: dict) -> None:
        field_schema.pop("default", None)
        field_schema.update(schema or {})

    return Field(None, description=description, json_schema_extra=extra, **kwargs)


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


# What each error status means, for every operation's OpenAPI entry.
ERROR_DESCRIPTIONS = {
    400: (
        "Malformed request: the body is not valid JSON, not a JSON object, or nested "
        "deeper than 128 levels (`malformed_json`, `malformed`, `too_deep`), or a cursor "
        "this API did not return (`invalid_cursor`)."
    ),
    401: (
        "Missing, malformed, unknown or revoked API key (`unauthorized`); the answer "
        "carries `WWW-Authenticate: Bearer`."
    ),
    404: (
        "No object with this id in your organization (`not_found`). Another "
        "organization's object reads exactly like one that does not exist."
    ),
    409: (
        "The object's state does not allow this (`conflict`, `field` names the state): "
        "the webhook is paused or disabled, or the delivery already succeeded."
    ),
    413: "The request body, or the event's data, is larger than 1 MiB (`too_large`).",
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

# Every authenticated operation can answer these (422: an unknown query parameter).
ALWAYS = (401, 422, 429)
# And these, by what the operation takes:
WITH_ID = (404,)
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


class HeraldAPI(NinjaAPI):
    def create_temporal_response(self, request: HttpRequest) -> HttpResponse:
        # Created after authentication: the key's quota is known.
        response = super().create_temporal_response(request)
        _add_quota_headers(request, response)
        return response

    def get_openapi_schema(self, *, path_prefix=None, path_params=None):
        schema = super().get_openapi_schema(path_prefix=path_prefix, path_params=path_params)
        for operations in schema["paths"].values():
            for operation in operations.values():
                _complete_error_responses(operation)
                _describe_responses(operation["responses"])
        return schema

    def _get_urls(self):
        urls = super()._get_urls()
        for pattern in urls:
            pattern.callback = _json_method_errors(pattern.callback)
        for bound_router in self._get_bound_routers():
            for path_view in bound_router.path_operations.values():
                for operation in path_view.operations:
                    _refuse_unknown_query_parameters(operation)
        return urls


def _refuse_unknown_query_parameters(operation) -> None:
    """A query parameter the operation does not take is a 422 naming it, like
    an unknown body field: a misspelt filter must not silently list everything.
    Checked once the caller is authenticated, as parameters are."""
    known = set()
    for model in operation.models:
        if model.__ninja_param_source__ == "query":
            known.update(getattr(model, "__ninja_flatten_map__", None) or model.model_fields)
    get_values = operation._get_values

    @functools.wraps(get_values)
    def checked(request, *args, **kwargs):
        unknown = sorted(set(request.GET) - known)
        if unknown:
            raise InvalidInput("unknown query parameter", unknown[0])
        return get_values(request, *args, **kwargs)

    operation._get_values = checked


_ERROR_CONTENT = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorOut"}}}


def _complete_error_responses(operation: dict) -> None:
    """Document the errors that this module produces for every operation, by
    what the operation takes, whatever its router declared: the key check
    (401, 429), the body parser (400, 413, 415, 422), parameter validation
    and unknown query parameters (422) and the lookup of path ids (404). An operation declaring ninja's
    catch-all `codes_4xx` keeps only the statuses the API can answer with."""
    needed = set()
    if operation.get("security"):
        needed.update(ALWAYS)
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


def _describe_responses(responses: dict) -> None:
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


def _json_method_errors(view):
    """Ninja answers a wrong method with a plain-text 405 and its API root
    with an HTML 404: give both the error envelope."""

    @functools.wraps(view)
    def wrapper(request, *args, **kwargs):
        try:
            response = view(request, *args, **kwargs)
        except Http404:
            return _envelope(404, "not_found", f"No API endpoint at {request.path}.")
        if response.status_code == 405 and not response.get("Content-Type", "").startswith(
            "application/json"
        ):
            allowed = response["Allow"]
            envelope = _envelope(
                405,
                "method_not_allowed",
                f"{request.method} is not allowed here; use {allowed}.",
            )
            envelope["Allow"] = allowed
            return envelope
        return response

    return wrapper


def _envelope(status: int, code: str, message: str) -> HttpResponse:
    return JsonResponse({"error": {"code": code, "message": message}}, status=status)


api = HeraldAPI(
    title="Herald API",
    version="1",
    description=(
        "Publish events and manage webhooks, deliveries and their attempts.\n\n"
        "Authenticate with an organization API key: `Authorization: Bearer hk_…`. "
        "Each key may make `HERALD_API_RATE_LIMIT` requests per "
        "`HERALD_API_RATE_WINDOW_SECONDS` (600 a minute by default); answers carry "
        "`X-RateLimit-Limit` and `X-RateLimit-Remaining`, and a 429 carries `Retry-After`.\n\n"
        'Every error is `{"error": {"code": …, "message": …, "field": …}}`, `field` naming '
        "the offending parameter or body field when there is one. Lists are newest first "
        "and paginated: pass the `next_cursor` of one page as `cursor` to get the next; "
        "rows added meanwhile never shift the pages."
    ),
    urls_namespace="api",
    openapi_url="/openapi.json",
    docs_url="/docs",
    parser=JsonOnlyParser(),
    # Every operation needs a key unless its router says otherwise.
    auth=ApiKeyAuth(),
)


def _add_quota_headers(request: HttpRequest, response: HttpResponse) -> None:
    quota = getattr(request, "rate_limit", None)
    if quota is not None:
        for name, value in quota.headers().items():
            response[name] = value


def error_response(request: HttpRequest, error: HeraldError) -> HttpResponse:
    response = api.create_response(request, error.as_dict(), status=error.status)
    _add_quota_headers(request, response)
    extra_headers = getattr(error, "headers", None)
    if callable(extra_headers):
        for name, value in extra_headers().items():
            response[name] = value
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
    message = message.removeprefix("Value error, ")  # our validators' messages
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


# ISO 8601 as the API takes it: a date, or a date and time, with an optional
# offset (none means UTC). `[0-9]`, not `\\d`: Python's matches any digit.
ISO_TIME_PATTERN = (
    "^[0-9]{4}-[0-9]{2}-[0-9]{2}"
    "([T ][0-9]{2}:[0-9]{2}(:[0-9]{2}([.][0-9]{1,6})?)?(Z|[+-][0-9]{2}:[0-9]{2})?)?$"
)
_ISO_TIME = re.compile(ISO_TIME_PATTERN)


def parse_time(value: object) -> datetime:
    """An aware UTC datetime from an ISO 8601 string; ValueError otherwise
    (numbers are not taken for Unix times, as pydantic would)."""
    if isinstance(value, datetime):
        moment = value
    else:
        try:
            if not (isinstance(value, str) and _ISO_TIME.fullmatch(value)):
                raise ValueError
            moment = datetime.fromisoformat(value)  # ValueError: no such day, hour, offset
        except ValueError:
            raise ValueError("must be an ISO 8601 time like 2026-11-22T10:30:00Z") from None
    try:
        if moment.utcoffset() is None:
            return moment.replace(tzinfo=UTC)
        return moment.astimezone(UTC)
    except OverflowError:
        raise ValueError("is out of the supported range of times") from None


IsoTime = Annotated[
    datetime,
    BeforeValidator(parse_time),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": ISO_TIME_PATTERN,
            "description": "ISO 8601, e.g. 2026-11-22T10:30:00Z; without an offset, UTC",
            "examples": ["2026-11-22T10:30:00Z"],
        }
    ),
]


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
