"""Opaque cursors for keyset pagination: the API's and the dashboard's lists
page on the primary key, newest first, and hand out this encoding of it.

A cursor says which way it points: `pk:N` is "older than N" (the API's
`next_cursor`, and the dashboard's Older link), `gt:N` is "newer than N"
(the dashboard's Newer link). Rows added while someone pages never shift
a page, so reload, back/forward and a shared link show the same rows.
"""

import base64
from dataclasses import dataclass

from webhooks.errors import HeraldError

OLDER, NEWER = "pk", "gt"


def encode_cursor(pk: int, direction: str = OLDER) -> str:
    return base64.urlsafe_b64encode(f"{direction}:{pk}".encode()).decode().rstrip("=")


def decode_page_cursor(cursor: str | None) -> tuple[str, int] | None:
    """(OLDER or NEWER, the primary key it points from), None for no cursor;
    HeraldError (naming `cursor`) for anything this code did not hand out."""
    if not cursor:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        direction, _, value = raw.partition(":")
        if direction not in (OLDER, NEWER):
            raise ValueError
        pk = int(value)
        if pk <= 0:
            raise ValueError
        return direction, pk
    except (ValueError, UnicodeDecodeError):
        raise HeraldError(
            "not a cursor this API returned", "cursor", code="invalid_cursor"
        ) from None


def decode_cursor(cursor: str | None) -> int | None:
    """An "older than" cursor's primary key (the API's lists page one way)."""
    decoded = decode_page_cursor(cursor)
    if decoded is None:
        return None
    direction, pk = decoded
    if direction != OLDER:
        raise HeraldError("not a cursor this API returned", "cursor", code="invalid_cursor")
    return pk


@dataclass
class KeysetPage:
    items: list
    older: str | None  # the cursor of the next older page, if there is one
    newer: str | None  # the cursor of the next newer page, None on the newest


def keyset_page(queryset, cursor: str | None, limit: int) -> KeysetPage:
    """`limit` rows of `queryset`, newest first, from where `cursor` points
    (either way). One query of at most `limit + 1` rows on the primary key."""
    decoded = decode_page_cursor(cursor)
    if decoded is not None and decoded[0] == NEWER:
        rows = list(queryset.filter(pk__gt=decoded[1]).order_by("pk")[: limit + 1])
        more_newer = len(rows) > limit
        rows = list(reversed(rows[:limit]))
        return KeysetPage(
            rows,
            encode_cursor(rows[-1].pk) if rows else encode_cursor(decoded[1] + 1),
            encode_cursor(rows[0].pk, NEWER) if rows and more_newer else None,
        )
    if decoded is not None:
        queryset = queryset.filter(pk__lt=decoded[1])
    rows = list(queryset.order_by("-pk")[: limit + 1])
    more_older = len(rows) > limit
    rows = rows[:limit]
    return KeysetPage(
        rows,
        encode_cursor(rows[-1].pk) if more_older else None,
        encode_cursor(rows[0].pk, NEWER) if rows and decoded is not None else None,
    )
