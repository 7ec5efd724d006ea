"""Inserting a few rows for the price of one statement's parameters.

`QuerySet.bulk_create` and `Model.save` compile their INSERT afresh on every
call, which on a single publish (one event, a delivery or two) cost more CPU
than the database did. `insert` writes the same rows with the statement
compiled once per model and row count: each field still prepares its own
value (`Field.pre_save`, `get_db_prep_save`: defaults, public ids, dates),
exactly as the ORM's insert does. Models with signals or custom saves must
not come here: nothing but the INSERT runs.
"""

from django.db import connection
from django.db.models import Model

_STATEMENTS: dict[tuple[type[Model], int, str], tuple[str, list]] = {}


def _fields(model: type[Model]) -> list:
    """The columns an INSERT writes: all but the generated primary key."""
    return [f for f in model._meta.concrete_fields if not f.primary_key]


def _values(objects: list[Model], fields: list) -> list[list]:
    """Each object's values for `fields`, prepared as the ORM's insert does."""
    return [
        [field.get_db_prep_save(field.pre_save(obj, True), connection) for field in fields]
        for obj in objects
    ]


def _statement(model: type[Model], count: int) -> tuple[str, list]:
    key = (model, count, connection.vendor)
    found = _STATEMENTS.get(key)
    if found is None:
        meta = model._meta
        fields = _fields(model)
        quote = connection.ops.quote_name
        row = "(" + ", ".join(["%s"] * len(fields)) + ")"
        sql = (
            f"INSERT INTO {quote(meta.db_table)} ({', '.join(quote(f.column) for f in fields)}) "
            f"VALUES {', '.join([row] * count)} RETURNING {quote(meta.pk.column)}"
        )
        found = _STATEMENTS[key] = (sql, fields)
    return found


def insert(objects: list[Model]) -> None:
    """INSERT these new instances of one model in one statement, setting
    their primary keys, as bulk_create does."""
    if not objects:
        return
    sql, fields = _statement(type(objects[0]), len(objects))
    params = [value for row in _values(objects, fields) for value in row]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        for obj, (pk,) in zip(objects, cursor.fetchall(), strict=True):
            obj.pk = pk
            obj._state.adding = False
            obj._state.db = connection.alias


def append(objects: list[Model]) -> None:
    """Write these new instances of one model when nobody needs their
    primary keys back: PostgreSQL's COPY (the rows stream through without
    a parameter to quote), else one INSERT per row through executemany."""
    if not objects:
        return
    meta = type(objects[0])._meta
    fields = _fields(type(objects[0]))
    values = _values(objects, fields)
    quote = connection.ops.quote_name
    columns = ", ".join(quote(f.column) for f in fields)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            with cursor.cursor.copy(f"COPY {quote(meta.db_table)} ({columns}) FROM STDIN") as copy:
                for row in values:
                    copy.write_row(row)
        else:
            marks = ", ".join(["%s"] * len(fields))
            cursor.executemany(
                f"INSERT INTO {quote(meta.db_table)} ({columns}) VALUES ({marks})", values
            )
