"""Checks on webhook settings, shared by the API and the dashboard's forms.

Each function returns the cleaned value or raises InvalidInput naming the field.
"""

import re
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import URLValidator

from webhooks import patterns
from webhooks.addresses import ip_literal, is_forbidden_address
from webhooks.errors import InvalidInput
from webhooks.models import Webhook
from webhooks.secrets import timestamp_header_name

TIMEOUT_RANGE = (1, 300)
MAX_ATTEMPTS_RANGE = (1, 10)
MAX_IN_FLIGHT_RANGE = (1, 100)
RATE_LIMIT_RANGE = (1, 1000)
MAX_PATTERNS = 100
MAX_HEADERS = 20
MAX_HEADER_VALUE = 1000
HEADER_NAME_RE = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]{1,100}")  # fullmatch
# Set by Herald on every request; a custom header may not replace them.
RESERVED_HEADERS = frozenset(
    {
        "content-type",
        "content-length",
        "content-encoding",
        "transfer-encoding",
        "connection",
        "host",
        "user-agent",
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
    }
)
_url_syntax = URLValidator(schemes=["http", "https"])


def check_storable(text: str, field: str) -> None:
    # PostgreSQL text cannot hold NUL, and UTF-8 cannot carry a lone surrogate.
    if "\0" in text:
        raise InvalidInput("may not contain NUL characters", field)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInput("contains a lone surrogate, which is not valid UTF-8", field) from None


def clean_url(url: object) -> str:
    if not isinstance(url, str) or not url.strip():
        raise InvalidInput("enter the endpoint's URL", "url")
    # The length as sent, surrounding spaces included, as the API schema says.
    if len(url) > settings.HERALD_MAX_URL_LENGTH:
        raise InvalidInput(f"must be at most {settings.HERALD_MAX_URL_LENGTH} characters", "url")
    url = url.strip()
    check_storable(url, "url")
    if any(c < " " or c == "\x7f" for c in url):
        raise InvalidInput("may not contain control characters", "url")
    try:
        _url_syntax(url)
    except ValidationError:
        raise InvalidInput("is not a valid http(s) URL", "url") from None
    parts = urlsplit(url)
    if parts.scheme != "https" and not settings.HERALD_ALLOW_HTTP:
        raise InvalidInput("must start with https://", "url")
    literal = ip_literal(parts.hostname or "")
    if (
        literal is not None
        and not settings.HERALD_ALLOW_PRIVATE_TARGETS
        and is_forbidden_address(literal)
    ):
        raise InvalidInput(
            "points to a private, loopback or reserved address, which Herald does not call",
            "url",
        )
    return url


def clean_event_patterns(events: object) -> list[str]:
    if not isinstance(events, list) or not events:
        raise InvalidInput("subscribe to at least one event type or pattern", "events")
    if len(events) > MAX_PATTERNS:
        raise InvalidInput(f"at most {MAX_PATTERNS} patterns", "events")
    cleaned: list[str] = []
    for index, pattern in enumerate(events):
        if not patterns.is_valid_pattern(pattern):
            raise InvalidInput(f"{pattern!r} is not {patterns.PATTERN_RULE}", f"events.{index}")
        if pattern not in cleaned:
            cleaned.append(pattern)
    return cleaned


def clean_header_name(name: object, field: str = "signature_header") -> str:
    if not isinstance(name, str) or not HEADER_NAME_RE.fullmatch(name):
        raise InvalidInput(
            "must be an HTTP header name (letters, digits and -, at most 100 characters)", field
        )
    if name.lower() in RESERVED_HEADERS:
        raise InvalidInput(f"{name} is set by Herald and cannot be used here", field)
    if field == "signature_header":
        # Its timestamp companion must not collide either ("Webhook" → "Webhook-Timestamp").
        companion = timestamp_header_name(name)
        if companion.lower() in RESERVED_HEADERS:
            raise InvalidInput(
                f"its timestamp header would be {companion}, which Herald sets", field
            )
    return name


def clean_headers(headers: object, signature_header: str | None = None) -> dict[str, str]:
    if headers is None:
        return {}
    if not isinstance(headers, dict):
        raise InvalidInput("must be an object of header names to values", "headers")
    if len(headers) > MAX_HEADERS:
        raise InvalidInput(f"at most {MAX_HEADERS} custom headers", "headers")
    taken = set()
    if signature_header:
        taken = {signature_header.lower(), timestamp_header_name(signature_header).lower()}
    cleaned: dict[str, str] = {}
    for name, value in headers.items():
        field = f"headers.{name}"
        clean_header_name(name, field)
        if name.lower() in taken:
            raise InvalidInput(f"{name} carries this webhook's signature", field)
        if name.lower() in {n.lower() for n in cleaned}:
            raise InvalidInput(f"{name} is given twice", field)
        if not isinstance(value, str):
            raise InvalidInput("header values must be strings", field)
        if len(value) > MAX_HEADER_VALUE or any(c in value for c in "\r\n\0"):
            raise InvalidInput(f"must be one line of at most {MAX_HEADER_VALUE} characters", field)
        check_storable(value, field)
        cleaned[name] = value
    return cleaned


def clean_int(value: object, field: str, bounds: tuple[int, int]) -> int:
    low, high = bounds
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidInput(f"must be a whole number from {low} to {high}", field)
    return value


def clean_signature_style(style: object) -> str:
    style = style or ""
    if style not in Webhook.SignatureStyle.values:
        allowed = ", ".join(repr(s) for s in Webhook.SignatureStyle.values if s)
        raise InvalidInput(f"must be one of {allowed}, or empty for none", "signature_style")
    return style


def clean_text(value: object, field: str, max_length: int) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidInput("must be a string", field)
    # The length as sent, surrounding spaces included, as the API schema says.
    if len(value) > max_length:
        raise InvalidInput(f"must be at most {max_length} characters", field)
    value = value.strip()
    check_storable(value, field)
    return value


def clean_webhook_fields(data: dict, current: Webhook | None = None) -> dict:
    """Clean the fields present in `data` (a create or a partial update)."""
    cleaned: dict = {}
    if "url" in data:
        cleaned["url"] = clean_url(data["url"])
    if "events" in data:
        cleaned["event_patterns"] = clean_event_patterns(data["events"])
    if "name" in data:
        cleaned["name"] = clean_text(data["name"], "name", 200)
    if "description" in data:
        cleaned["description"] = clean_text(data["description"], "description", 2000)
    if "timeout_seconds" in data:
        cleaned["timeout_seconds"] = clean_int(
            data["timeout_seconds"], "timeout_seconds", TIMEOUT_RANGE
        )
    if "max_attempts" in data:
        cleaned["max_attempts"] = clean_int(
            data["max_attempts"], "max_attempts", MAX_ATTEMPTS_RANGE
        )
    if "verify_tls" in data:
        if not isinstance(data["verify_tls"], bool):
            raise InvalidInput("must be true or false", "verify_tls")
        cleaned["verify_tls"] = data["verify_tls"]
    if "max_in_flight" in data:
        cleaned["max_in_flight"] = clean_int(
            data["max_in_flight"], "max_in_flight", MAX_IN_FLIGHT_RANGE
        )
    if "rate_limit" in data:
        cleaned["rate_limit"] = (
            None
            if data["rate_limit"] is None
            else clean_int(data["rate_limit"], "rate_limit", RATE_LIMIT_RANGE)
        )
    if "ordered" in data:
        if not isinstance(data["ordered"], bool):
            raise InvalidInput("must be true or false", "ordered")
        cleaned["ordered"] = data["ordered"]
    if cleaned.get("ordered", current.ordered if current else False):
        # One at a time (SPEC §3): an ordered webhook's cap is 1.
        if cleaned.get("max_in_flight", 1) != 1:
            raise InvalidInput("must be 1 for an ordered webhook (one at a time)", "max_in_flight")
        cleaned["max_in_flight"] = 1
    if "signature_style" in data:
        cleaned["signature_style"] = clean_signature_style(data["signature_style"])
    if "signature_header" in data:
        cleaned["signature_header"] = clean_header_name(
            data["signature_header"] or "X-Webhook-Signature"
        )
    signature_header = cleaned.get(
        "signature_header", current.signature_header if current else "X-Webhook-Signature"
    )
    if "headers" in data:
        cleaned["headers"] = clean_headers(data["headers"], signature_header)
    elif current is not None and "signature_header" in cleaned:
        clean_headers(current.headers, signature_header)
    return cleaned
