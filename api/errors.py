"""The API's error envelope: every error is `{"error": {"code", "message",
"field"?}}` — those of the body parser, parameter validation, authentication
and rate limiting, of the views (webhooks.errors), a wrong method (405) and
the API root alike."""

import functools

from django.core.exceptions import RequestDataTooBig
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from ninja import NinjaAPI, Schema
from ninja.errors import AuthenticationError, HttpError, ValidationError

from webhooks.errors import HeraldError, TooLarge


class ErrorDetail(Schema):
    code: str
    message: str
    field: str | None = None


class ErrorOut(Schema):
    error: ErrorDetail


def add_quota_headers(request: HttpRequest, response: HttpResponse) -> None:
    quota = getattr(request, "rate_limit", None)
    if quota is not None:
        for name, value in quota.headers().items():
            response[name] = value


def error_response(api: NinjaAPI, request: HttpRequest, error: HeraldError) -> HttpResponse:
    response = api.create_response(request, error.as_dict(), status=error.status)
    add_quota_headers(request, response)
    extra_headers = getattr(error, "headers", None)
    if callable(extra_headers):
        for name, value in extra_headers().items():
            response[name] = value
    if error.status == 401:
        response["WWW-Authenticate"] = "Bearer"
    return response


def _herald_error(api: NinjaAPI, request, exc: HeraldError):
    return error_response(api, request, exc)


def _http_error(api: NinjaAPI, request, exc: HttpError):
    # Ninja wraps parser failures; ours carry the precise error as the cause.
    if isinstance(exc.__cause__, HeraldError):
        return error_response(api, request, exc.__cause__)
    if isinstance(exc, AuthenticationError):
        return error_response(
            api,
            request,
            HeraldError(
                "Missing or invalid API key: send 'Authorization: Bearer hk_…'.",
                status=401,
                code="unauthorized",
            ),
        )
    code = {400: "bad_request", 404: "not_found", 405: "method_not_allowed", 429: "rate_limited"}
    return error_response(
        api,
        request,
        HeraldError(str(exc), status=exc.status_code, code=code.get(exc.status_code, "error")),
    )


def _not_found(api: NinjaAPI, request, exc):
    return error_response(api, request, HeraldError("Not found.", status=404, code="not_found"))


def _too_big(api: NinjaAPI, request, exc):
    return error_response(
        api,
        request,
        TooLarge("The request body is larger than the API takes (8 MiB, for a batch)."),
    )


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


def _validation_error(api: NinjaAPI, request, exc: ValidationError):
    first = exc.errors[0] if exc.errors else {}
    loc = tuple(first.get("loc", ()))
    field = _field_name(loc)
    message = _MESSAGES.get(first.get("type"), first.get("msg", "invalid value"))
    message = message.removeprefix("Value error, ")  # our validators' messages
    status, code = 422, "invalid"
    # No field means the body as a whole is wrong: not an object, or empty.
    if not field and loc[:1] == ("body",):
        status, code, message = 400, "malformed", "the body must be a JSON object"
    return error_response(api, request, HeraldError(message, field, status=status, code=code))


def json_method_errors(view):
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


def install(api: NinjaAPI) -> None:
    """Answer every error `api` raises with the envelope."""
    for exception, handler in (
        (HeraldError, _herald_error),
        (HttpError, _http_error),
        (Http404, _not_found),
        (RequestDataTooBig, _too_big),
        (ValidationError, _validation_error),
    ):
        api.add_exception_handler(exception, functools.partial(handler, api))
