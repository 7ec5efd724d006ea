"""Inserting rows for the price of one statement's parameters.

`QuerySet.bulk_create` and `Model.save` compile their INSERT afresh on every
call, which on a single publish (one event, a delivery or two) cost more CPU
than the database did. `insert` writes the same rows with the statement
compiled once per model and row count (on PostgreSQL, many rows take their
ids from the sequence and go through COPY); `append` writes rows whose ids
nobody reads back. Each field still prepares its own value (`Field.pre_save`,
`get_db_prep_save`: defaults, public ids, dates), as the ORM's insert does,
except where that hands back a text or a number unchanged. Models with
signals or custom saves must not come here: nothing but the INSERT runs.

On PostgreSQL `insert_family` writes a row, the rows that refer to it and one
more statement as a single statement: one round trip and, outside a
transaction, its own transaction, where BEGIN, three statements and COMMIT
were five (a third of a single publish's CPU, web process and database).
"""

from django.db import DEFAULT_DB_ALIAS, connection, connections, models
from django.db.models import Model

_STATEMENTS: dict[tuple[type[Model], int, str], tuple[str, list]] = {}


def _fields(model: type[Model]) -> list:
    """The columns an INSERT writes: all but the generated primary key."""
    return [f for f in model._meta.concrete_fields if not f.primary_key]


# Fields whose preparation hands back a value of these types unchanged (a
# string stays that string, an int that int): such a value goes as it is. A
# batch of 100 events spent a third of its CPU preparing them.
_TEXT, _NUMBER = (str, type(None)), (int, type(None))
_AS_IS: dict[type, tuple[type, ...]] = {
    models.CharField: _TEXT,
    models.TextField: _TEXT,
    models.BooleanField: (bool, type(None)),
    **dict.fromkeys(
        (
            models.AutoField,
            models.BigAutoField,
            models.BigIntegerField,
            models.ForeignKey,
            models.IntegerField,
            models.PositiveIntegerField,
            models.PositiveSmallIntegerField,
            models.SmallIntegerField,
        ),
        _NUMBER,
    ),
}


def _values(objects: list[Model], fields: list) -> list[list]:
    """Each object's values for `fields`, prepared as the ORM's insert does."""
    # The thread's own wrapper, not the `connection` proxy, which looks it up
    # again on each of the fields' many reads of it.
    wrapper = connections[DEFAULT_DB_ALIAS]
    as_is = [_AS_IS.get(type(field), ()) for field in fields]
    rows = []
    for obj in objects:
        row = []
        for field, types in zip(fields, as_is, strict=True):
            value = field.pre_save(obj, True)
            if type(value) not in types:
                value = field.get_db_prep_save(value, wrapper)
            row.append(value)
        rows.append(row)
    return rows


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


# From this many rows on, PostgreSQL takes their ids from the sequence first
# and the rows through COPY: psycopg parses a long INSERT's text afresh on
# every call (it caches short ones only), which cost a batch of 100 events
# a fifth of its CPU.
COPY_FROM_ROWS = 10


def insert(objects: list[Model]) -> None:
    """Write these new instances of one model, setting their primary keys, as
    bulk_create does: one INSERT, or on PostgreSQL for many rows a statement
    that takes their ids and a COPY."""
    if not objects:
        return
    if connection.vendor == "postgresql" and len(objects) >= COPY_FROM_ROWS:
        meta = type(objects[0])._meta
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT nextval(pg_get_serial_sequence(%s, %s)) FROM generate_series(1, %s)",
                [meta.db_table, meta.pk.column, len(objects)],
            )
            for obj, (pk,) in zip(objects, sorted(cursor.fetchall()), strict=True):
                obj.pk = pk
        _copy([meta.pk, *_fields(type(objects[0]))], objects)
        for obj in objects:
            _saved(obj, obj.pk)
        return
    sql, fields = _statement(type(objects[0]), len(objects))
    params = [value for row in _values(objects, fields) for value in row]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        for obj, (pk,) in zip(objects, cursor.fetchall(), strict=True):
            _saved(obj, pk)


def _saved(obj: Model, pk: int) -> None:
    obj.pk = pk
    obj._state.adding = False
    obj._state.db = connection.alias


_FAMILY_STATEMENTS: dict[tuple[type[Model], type[Model], str, int], tuple[str, list, list]] = {}


def _family_statement(parent_model, child_model, link: str, count: int) -> tuple[str, list, list]:
    key = (parent_model, child_model, link, count)
    found = _FAMILY_STATEMENTS.get(key)
    if found is None:
        quote = connection.ops.quote_name
        parent_sql, parent_fields = _statement(parent_model, 1)
        child_fields, children_sql = [], ""
        if count:
            child_fields = [f for f in _fields(child_model) if f.attname != link]
            columns = ", ".join(quote(f.column) for f in child_fields)
            row = "(" + ", ".join(["%s"] * len(child_fields) + ["(SELECT id FROM parent)"]) + ")"
            children_sql = (
                f", children AS (INSERT INTO {quote(child_model._meta.db_table)} "
                f"({columns}, {quote(child_model._meta.get_field(link).column)}) "
                f"VALUES {', '.join([row] * count)})"
            )
        sql = f"WITH parent AS ({parent_sql}){children_sql}"
        found = _FAMILY_STATEMENTS[key] = (sql, parent_fields, child_fields)
    return found


def insert_family(parent: Model, children: list[Model], link: str, also: str, also_params: list):
    """PostgreSQL only: INSERT `parent`, then `children`, whose field `link`
    (an attname, `event_id`) is set to the parent's new primary key, then
    `also` (an INSERT, or ''), all as one statement. Sets the parent's
    primary key; the children's are not read back."""
    sql, parent_fields, child_fields = _family_statement(
        type(parent), type(children[0]) if children else None, link, len(children)
    )
    also_sql = f", also AS ({also})" if also else ""
    params = [
        *_values([parent], parent_fields)[0],
        *(value for row in _values(children, child_fields) for value in row),
        *also_params,
    ]
    with connection.cursor() as cursor:
        cursor.execute(f"{sql}{also_sql} SELECT id FROM parent", params)
        _saved(parent, cursor.fetchone()[0])


def append(objects: list[Model]) -> None:
    """Write these new instances of one model when nobody needs their
    primary keys back: PostgreSQL's COPY (the rows stream through without
    a parameter to quote), else one INSERT per row through executemany."""
    if not objects:
        return
    _copy(_fields(type(objects[0])), objects)


def _copy(fields: list, objects: list[Model]) -> None:
    """These objects' `fields`, as rows of their table: COPY on PostgreSQL,
    else one INSERT per row through executemany."""
    meta = type(objects[0])._meta
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
