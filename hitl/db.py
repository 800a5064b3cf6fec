"""Bulk writes for hot paths: one statement per batch on every backend.

``bulk_insert`` takes rows of Python values (JSON columns already serialised to
text) and writes them in a single statement: on PostgreSQL an
``INSERT ... SELECT FROM unnest(arrays)`` (one parameter per column, whatever the
batch size), elsewhere one ``executemany``. Django's ``bulk_create`` would split
a 1000-row batch into many statements on SQLite and build a model instance per
row; this keeps ingest's query count fixed and its Python cost low.
"""

from functools import lru_cache

from django.db import connection, models


@lru_cache(maxsize=64)
def _insert_plan(
    model: type[models.Model], field_names: tuple[str, ...], conflict_fields: tuple[str, ...], vendor: str
):
    fields = [model._meta.get_field(name) for name in field_names]
    table = connection.ops.quote_name(model._meta.db_table)
    columns = ", ".join(connection.ops.quote_name(field.column) for field in fields)
    if vendor == "postgresql":
        aliases = [f"c{position}" for position in range(len(fields))]
        arrays = ", ".join(f"%s::{_array_type(field)}" for field in fields)
        selected = ", ".join(
            f"{alias}::jsonb" if isinstance(field, models.JSONField) else alias
            for alias, field in zip(aliases, fields, strict=True)
        )
        sql = f"INSERT INTO {table} ({columns}) SELECT {selected} FROM unnest({arrays}) AS u({', '.join(aliases)})"  # noqa: S608 (names from model meta)
        if conflict_fields:
            targets = ", ".join(
                connection.ops.quote_name(model._meta.get_field(name).column) for name in conflict_fields
            )
            pk_column = connection.ops.quote_name(model._meta.pk.column)
            sql += f" ON CONFLICT ({targets}) DO NOTHING RETURNING {pk_column}"
    else:
        sql = f"INSERT INTO {table} ({columns}) VALUES ({', '.join(['%s'] * len(fields))})"  # noqa: S608
    converters = [_converter(field, vendor) for field in fields]
    return sql, converters


def _array_type(field: models.Field) -> str:
    if isinstance(field, models.JSONField):
        return "text[]"
    return f"{field.db_type(connection)}[]".replace(" NOT NULL", "")


def _converter(field: models.Field, vendor: str):
    if vendor == "postgresql":
        return None
    if isinstance(field, models.UUIDField):
        return lambda value: value.hex
    if isinstance(field, models.DateTimeField):
        return connection.ops.adapt_datetimefield_value
    if isinstance(field, models.BooleanField):
        return lambda value: int(value)
    return None


def bulk_insert(
    model: type[models.Model],
    field_names: tuple[str, ...],
    rows: list[tuple],
    *,
    skip_conflicts_on: tuple[str, ...] = (),
) -> set | None:
    """Insert ``rows`` (tuples in ``field_names`` order) in one statement.

    With ``skip_conflicts_on`` (the fields of a unique constraint), PostgreSQL
    skips rows that collide with rows committed meanwhile by another transaction
    and returns the primary keys it did insert. SQLite serialises writers
    (``BEGIN IMMEDIATE``), so nothing can collide there after a read in the same
    transaction; it returns None, meaning "all of them".
    """
    if not rows:
        return set()
    vendor = connection.vendor
    sql, converters = _insert_plan(model, field_names, skip_conflicts_on if vendor == "postgresql" else (), vendor)
    if any(converters):
        rows = [
            tuple(
                value if convert is None or value is None else convert(value)
                for convert, value in zip(converters, row, strict=True)
            )
            for row in rows
        ]
    with connection.cursor() as cursor:
        if vendor == "postgresql":
            cursor.execute(sql, [list(column) for column in zip(*rows, strict=True)])
            return {row[0] for row in cursor.fetchall()} if skip_conflicts_on else None
        cursor.executemany(sql, rows)
        return None
