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
def _insert_plan(model: type[models.Model], field_names: tuple[str, ...], vendor: str):
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


def bulk_insert(model: type[models.Model], field_names: tuple[str, ...], rows: list[tuple]) -> None:
    """Insert ``rows`` (tuples in ``field_names`` order) in one statement."""
    if not rows:
        return
    sql, converters = _insert_plan(model, field_names, connection.vendor)
    if any(converters):
        rows = [
            tuple(
                value if convert is None or value is None else convert(value)
                for convert, value in zip(converters, row, strict=True)
            )
            for row in rows
        ]
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(sql, [list(column) for column in zip(*rows, strict=True)])
        else:
            cursor.executemany(sql, rows)
