"""Every index of the engine's busiest tables earns its writes.

A delivery's row is written three times (published, leased, recorded), and
each write that is not a heap-only update goes into every index of the
table. An index whose columns begin another index serves no lookup the
longer one does not: Django's own index on a foreign key is the usual one,
and the migrations drop them where Meta has an index that leads with the key.
"""

import pytest
from django.db import connection

from deliveries.models import Delivery, DeliveryAttempt, Event

# Also run on the embedded defaults (SQLite, the bundled Redis) by .ci/run.
pytestmark = [pytest.mark.embedded, pytest.mark.django_db]

TABLES = [model._meta.db_table for model in (Delivery, DeliveryAttempt, Event)]


def _is_partial(name: str, definition: str | None) -> bool:
    if connection.vendor == "postgresql":
        return " WHERE " in (definition or "")
    with connection.cursor() as cursor:
        cursor.execute("SELECT sql FROM sqlite_master WHERE type = 'index' AND name = %s", [name])
        row = cursor.fetchone()
    return row is not None and " WHERE " in (row[0] or "")


def indexes(table: str) -> dict[str, tuple[tuple[str, ...], bool]]:
    """Each index of `table`: its columns in order, and whether it is partial."""
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, table)
    return {
        name: (tuple(c["columns"]), _is_partial(name, c.get("definition")))
        for name, c in constraints.items()
        if c["index"] or c["unique"] or c["primary_key"]
    }


def redundant(table: str) -> list[tuple[str, str]]:
    """(index, the index whose columns it begins), for whole-table indexes."""
    found = indexes(table)
    return [
        (name, other)
        for name, (columns, partial) in found.items()
        for other, (other_columns, other_partial) in found.items()
        if name != other
        and not partial
        and not other_partial
        and len(columns) < len(other_columns)
        and other_columns[: len(columns)] == columns
    ]


@pytest.mark.parametrize("table", TABLES)
def test_no_index_of_the_engine_begins_another(table):
    assert redundant(table) == []


def test_the_foreign_keys_are_still_searched_by_an_index():
    # The lookups and cascades the dropped indexes served (by delivery, by
    # event, by webhook, by organization) each have an index leading with
    # their column.
    expected = {
        Delivery._meta.db_table: {"event_id", "webhook_id", "organization_id"},
        DeliveryAttempt._meta.db_table: {"delivery_id"},
        Event._meta.db_table: {"organization_id"},
    }
    for table, columns in expected.items():
        leading = {cols[0] for cols, partial in indexes(table).values() if cols and not partial}
        assert columns <= leading, (table, columns - leading)
