"""Opaque cursors for keyset pagination: the API's and the dashboard's lists
page on the primary key, newest first, and hand out this encoding of it."""

import base64

from webhooks.errors import HeraldError


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
