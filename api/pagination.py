"""Lookups by public id and keyset pages, newest first."""

from django.http import Http404
from django.shortcuts import get_object_or_404

from webhooks import ids
from webhooks.cursors import decode_cursor, encode_cursor


def get_by_public_id(queryset, public_id: str, prefix: str):
    """The object with this public id, or 404. A malformed id is a 404 without
    a query: a NUL in it is more than PostgreSQL accepts."""
    if not ids.looks_like(public_id, prefix):
        raise Http404
    return get_object_or_404(queryset, public_id=public_id)


def page(queryset, cursor: str | None, limit: int):
    """Newest first, `limit` items after `cursor`; stable while rows are added."""
    after = decode_cursor(cursor)
    if after is not None:
        queryset = queryset.filter(pk__lt=after)
    items = list(queryset.order_by("-pk")[: limit + 1])
    next_cursor = encode_cursor(items[limit - 1].pk) if len(items) > limit else None
    return items[:limit], next_cursor
