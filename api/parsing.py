"""What the API takes: JSON bodies only (parsed strictly, depth-limited),
request schemas that refuse unknown fields and loose types, and ISO 8601 times."""

import json
import re
from datetime import UTC, datetime
from typing import Annotated, Any

from django.conf import settings
from django.http import HttpRequest
from ninja import Field
from ninja.parser import Parser
from pydantic import BaseModel, BeforeValidator, ConfigDict, WithJsonSchema

from webhooks.errors import HeraldError, MalformedInput, TooLarge


class StrictSchema(BaseModel):
    """Request bodies: unknown fields and loose types are errors, not guesses.

    A plain pydantic model, not ninja's Schema: that one first wraps what it
    validates to read Django model instances, which a JSON body never is, at
    a cost per nested object (a fifth of the CPU of a batch of 100 events)."""

    model_config = ConfigDict(extra="forbid", strict=True)


def optional(description: str | None = None, schema: dict | None = None, **kwargs) -> Any:
    """A field that may be left out but not sent as null (a partial update:
    absent means unchanged); pydantic rejects a null for a non-Optional type.
    Its schema says so: no default, plus `schema`'s keywords."""

    def extra(field_schema: dict) -> None:
        field_schema.pop("default", None)
        field_schema.update(schema or {})

    return Field(None, description=description, json_schema_extra=extra, **kwargs)


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


# The operations whose bodies may be as large as a batch (HERALD_MAX_BATCH_BYTES).
BATCH_OPERATIONS = {"publish_batch_of_events"}


class JsonOnlyParser(Parser):
    def parse_body(self, request: HttpRequest):
        content_type = request.content_type or ""
        if content_type != "application/json":
            raise HeraldError(
                f"Send JSON with 'Content-Type: application/json' (got {content_type or 'none'!r}).",
                status=415,
                code="unsupported_media_type",
            )
        match = request.resolver_match
        if len(request.body) > settings.HERALD_MAX_REQUEST_BYTES and not (
            match and match.url_name in BATCH_OPERATIONS
        ):
            raise TooLarge("The request body is larger than 1 MiB (a batch may send 8 MiB).")
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
