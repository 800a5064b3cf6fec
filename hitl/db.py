"""Bulk writes for hot paths: one statement per batch on every backend.

``bulk_insert`` takes rows of plain Python values and writes them in a single
statement: on PostgreSQL ``INSERT ... SELECT FROM unnest(arrays)``, one array
parameter per column whatever the batch size, sent in binary (psycopg copies
strings instead of escaping them; measured faster than one JSON document through
``json_to_recordset``), and a plain ``VALUES`` for a single row (dumping a
one-element array per column cost more than the rest of the insert); on SQLite one
multi-row ``VALUES``. Django's
``bulk_create`` would build a model instance per row and, on SQLite, split a
1000-row batch into many statements; this keeps ingest's query count fixed and
its Python cost low.
"""

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import TypeVar

import orjson
from django.conf import settings
from django.db import InterfaceError, OperationalError, connection, models
from django.db.models import Q, QuerySet

# SQLite's compiled-in default limit of bound parameters (SQLITE_MAX_VARIABLE_NUMBER, 3.32+).
_SQLITE_MAX_PARAMS = 32766


@dataclass(frozen=True)
class _Plan:
    sql: str
    select_sql: str = ""  # PostgreSQL: the ``sql`` without its conflict clause
    row_sql: str = ""  # SQLite: "(%s, %s, ...)" for one row; PostgreSQL: the whole statement for one row
    row_select_sql: str = ""  # PostgreSQL: one row as a SELECT of typed parameters, for a ``when``
    suffix: str = ""
    rows_per_statement: int = 0
    converters: tuple = ()  # per field: None, or a function from the Python value to the bound one


@lru_cache(maxsize=64)
def _insert_plan(
    model: type[models.Model],
    field_names: tuple[str, ...],
    conflict_fields: tuple[str, ...],
    vendor: str,
    returning: tuple[str, ...] = (),
):
    fields = [model._meta.get_field(name) for name in field_names]
    quote = connection.ops.quote_name
    table = quote(model._meta.db_table)
    columns = ", ".join(quote(field.column) for field in fields)
    suffix = ""
    if conflict_fields:
        targets = ", ".join(quote(model._meta.get_field(name).column) for name in conflict_fields)
        returned = ", ".join(quote(column) for column in [model._meta.pk.column, *_columns_of(model, returning)])
        suffix = f" ON CONFLICT ({targets}) DO NOTHING RETURNING {returned}"
    if vendor == "postgresql":
        aliases = [f"c{position}" for position in range(len(fields))]
        arrays = ", ".join(f"%b::{_array_type(field)}" for field in fields)
        selected = ", ".join(_unnested(alias, field) for alias, field in zip(aliases, fields, strict=True))
        source = f"unnest({arrays}) AS u({', '.join(aliases)})"
        sql = f"INSERT INTO {table} ({columns}) SELECT {selected} FROM {source}"  # noqa: S608 (names from model meta)
        values = ", ".join("%s::jsonb" if _is_json(field) else "%s" for field in fields)
        typed = ", ".join(_typed_param(field) for field in fields)
        return _Plan(
            sql + suffix,
            select_sql=sql,
            row_select_sql=f"INSERT INTO {table} ({columns}) SELECT {typed}",
            row_sql=f"INSERT INTO {table} ({columns}) VALUES ({values}){suffix}",  # noqa: S608 (names from model meta)
            converters=tuple(_json_text if _is_json(field) else None for field in fields),
        )
    row_sql = f"({', '.join(['%s'] * len(fields))})"
    head = f"INSERT INTO {table} ({columns}) VALUES "  # noqa: S608 (names from model meta)
    return _Plan(
        head,
        row_sql=row_sql,
        suffix=suffix,
        rows_per_statement=_SQLITE_MAX_PARAMS // len(fields),
        converters=tuple(_converter(field) for field in fields),
    )


def _columns_of(model: type[models.Model], field_names: tuple[str, ...]) -> list[str]:
    return [model._meta.get_field(name).column for name in field_names]


def _typed_param(field: models.Field) -> str:
    """A parameter in a SELECT list, which takes no type from its column: cast to it."""
    return "%s::jsonb" if _is_json(field) else f"%s::{_array_type(field)[:-2]}"


def _unnested(alias: str, field: models.Field) -> str:
    """A column of ``unnest`` as its field's value (JSON travels as text)."""
    return f"{alias}::jsonb" if _is_json(field) else alias


def _is_json(field: models.Field) -> bool:
    return isinstance(field, models.JSONField)


def _json_text(value) -> str:
    return orjson.dumps(value).decode()


def _array_type(field: models.Field) -> str:
    if _is_json(field):
        return "text[]"
    if isinstance(field, models.ForeignKey):
        return f"{field.target_field.rel_db_type(connection)}[]"
    return f"{field.db_type(connection)}[]"


def _converter(field: models.Field):
    """How SQLite stores what PostgreSQL takes as is (as Django's own adapters do)."""
    if isinstance(field, models.ForeignKey):
        return _converter(field.target_field)
    if _is_json(field):
        return _json_text
    if isinstance(field, models.UUIDField):
        return lambda value: value.hex
    if isinstance(field, models.DateTimeField):
        return connection.ops.adapt_datetimefield_value
    if isinstance(field, models.BooleanField):
        return int
    if isinstance(field, models.DecimalField):
        return str
    return None


def bulk_insert(
    model: type[models.Model],
    field_names: tuple[str, ...],
    rows: list[tuple],
    *,
    skip_conflicts_on: tuple[str, ...] = (),
) -> set:
    """Insert ``rows`` (tuples in ``field_names`` order; JSON fields as Python values) in one statement.

    With ``skip_conflicts_on`` (the fields of a unique constraint) rows that
    collide with stored ones (also ones committed meanwhile by a concurrent
    transaction) are skipped, and the primary keys of the rows actually inserted
    are returned. Without it, an empty set is returned.
    """
    if not rows:
        return set()
    vendor = connection.vendor
    plan = _insert_plan(model, field_names, skip_conflicts_on, vendor)
    columns = _columns(plan, rows)
    inserted: set = set()
    with connection.cursor() as cursor:
        if vendor == "postgresql":
            cursor.execute(*_pg_insert(plan, columns))
            if skip_conflicts_on:
                inserted.update(row[0] for row in cursor.fetchall())
            return inserted
        rows = list(zip(*columns, strict=True))
        to_python = model._meta.pk.to_python
        for start in range(0, len(rows), plan.rows_per_statement):
            chunk = rows[start : start + plan.rows_per_statement]
            sql = plan.sql + ", ".join([plan.row_sql] * len(chunk)) + plan.suffix
            cursor.execute(sql, [value for row in chunk for value in row])
            if skip_conflicts_on:
                inserted.update(to_python(row[0]) for row in cursor.fetchall())
    return inserted


def _columns(plan: _Plan, rows: list[tuple]) -> list[list]:
    """The rows as columns, converted column-wise: one pass per column that needs it, none for the rest."""
    return [
        list(values) if convert is None else [None if value is None else convert(value) for value in values]
        for convert, values in zip(plan.converters, zip(*rows, strict=True), strict=True)
    ]


def insert_statement(
    model: type[models.Model],
    field_names: tuple[str, ...],
    rows: list[tuple],
    *,
    skip_conflicts_on: tuple[str, ...] = (),
    returning: tuple[str, ...] = (),
    when: str = "",
    from_cte: tuple[str, dict[str, str]] | None = None,
) -> tuple[str, list]:
    """PostgreSQL: the INSERT of ``rows`` that ``bulk_insert`` sends, and its parameters, for a
    caller that composes it into a larger statement (as a CTE of a one-statement write).

    ``when``, an SQL condition (over the larger statement's other CTEs, from the caller's
    code, never from a request), makes the rows go in only where it holds. The conflict
    clause of ``skip_conflicts_on`` returns the primary keys inserted, as ``bulk_insert``,
    then the columns of the fields named in ``returning``.

    ``from_cte``, ``(name, {field name: column})``: the rows go in once for each row of the
    CTE ``name`` (none when it yields none), and the fields named take their values from its
    columns (their values in ``rows`` are not sent): a child row takes its parent's id and
    tenant from the CTE that inserted the parent, with fewer parameters to send and convert.
    """
    if connection.vendor != "postgresql" or not rows:
        raise ValueError("insert_statement composes PostgreSQL statements of at least one row")
    if from_cte is not None:
        if skip_conflicts_on or returning or when:
            raise ValueError("from_cte takes no conflict clause, returning or when")
        name, mapping = from_cte
        if not set(mapping) <= set(field_names) or set(mapping) == set(field_names):
            raise ValueError("from_cte maps some of field_names, not all, and nothing else")
        statement = _cte_insert_sql(model, field_names, name, tuple(sorted(mapping.items())), len(rows) == 1)
        sent = [position for position, field in enumerate(field_names) if field not in mapping]
        plan = _insert_plan(model, tuple(field_names[position] for position in sent), (), "postgresql")
        columns = _columns(plan, [tuple(row[position] for position in sent) for row in rows])
        return statement, [column[0] for column in columns] if len(rows) == 1 else columns
    if returning and not skip_conflicts_on:
        raise ValueError("returning names columns returned after the keys of the rows a conflict clause let in")
    plan = _insert_plan(model, field_names, skip_conflicts_on, "postgresql", returning)
    return _pg_insert(plan, _columns(plan, rows), when)


@lru_cache(maxsize=32)
def _cte_insert_sql(
    model: type[models.Model], field_names: tuple[str, ...], cte: str, mapping: tuple[tuple[str, str], ...], one: bool
) -> str:
    """The INSERT of ``insert_statement(..., from_cte=...)``: one row of typed parameters, or
    more from ``unnest`` of one array per column, joined to each row of ``cte``."""
    quote = connection.ops.quote_name
    taken = dict(mapping)
    fields = [model._meta.get_field(name) for name in field_names]
    values, arrays = [], []
    for field in fields:
        if field.name in taken:
            values.append(f"{quote(cte)}.{quote(taken[field.name])}")
        elif one:
            values.append(_typed_param(field))
        else:
            alias = f"c{len(arrays)}"
            arrays.append((alias, f"%b::{_array_type(field)}"))
            values.append(_unnested(f"u.{alias}", field))
    source = quote(cte)
    if arrays:  # (more than one row)
        aliases = ", ".join(alias for alias, _ in arrays)
        source += f" CROSS JOIN unnest({', '.join(array for _, array in arrays)}) AS u({aliases})"
    columns = ", ".join(quote(field.column) for field in fields)
    return f"INSERT INTO {quote(model._meta.db_table)} ({columns}) SELECT {', '.join(values)} FROM {source}"  # noqa: S608 (names from model meta)


def _pg_insert(plan: _Plan, columns: list[list], when: str = "") -> tuple[str, list]:
    """One row as plain VALUES (dumping a one-element array per column cost more than the rest
    of the insert), more from ``unnest`` of one array per column; with ``when``, one row as a
    SELECT of its parameters, more from ``unnest``."""
    suffix = plan.sql[len(plan.select_sql) :]
    if when and len(columns[0]) == 1:
        return f"{plan.row_select_sql} WHERE {when}{suffix}", [column[0] for column in columns]
    if when:
        return f"{plan.select_sql} WHERE {when}{suffix}", columns
    if len(columns[0]) == 1:
        return plan.row_sql, [column[0] for column in columns]
    return plan.sql, columns


def bulk_update(model: type[models.Model], field_names: tuple[str, ...], rows: list[tuple]) -> None:
    """Set ``field_names`` on many rows, each tuple ``(pk, value, ...)``, in one statement.

    On PostgreSQL ``UPDATE ... FROM unnest(arrays)`` joined on the primary key: linear,
    where Django's ``bulk_update`` builds a ``CASE`` with a branch per row for every
    field (quadratic: 500 rows took over a second). On SQLite one prepared statement
    run per row, in-process.
    """
    if not rows:
        return
    quote = connection.ops.quote_name
    pk = model._meta.pk
    fields = [model._meta.get_field(name) for name in field_names]
    table = quote(model._meta.db_table)
    if connection.vendor == "postgresql":
        arrays = ", ".join(f"%b::{_array_type(field)}" for field in [pk, *fields])
        aliases = ", ".join(f"c{position}" for position in range(len(fields) + 1))
        assignments = ", ".join(
            f"{quote(field.column)} = u.c{position + 1}" + ("::jsonb" if _is_json(field) else "")
            for position, field in enumerate(fields)
        )
        sql = (
            f"UPDATE {table} SET {assignments} FROM unnest({arrays}) AS u({aliases}) "  # noqa: S608 (names from model meta)
            f"WHERE {table}.{quote(pk.column)} = u.c0"
        )
        converters = [None, *(_json_text if _is_json(field) else None for field in fields)]
    else:
        assignments = ", ".join(f"{quote(field.column)} = %s" for field in fields)
        sql = f"UPDATE {table} SET {assignments} WHERE {quote(pk.column)} = %s"  # noqa: S608 (names from model meta)
        converters = [_converter(field) for field in [pk, *fields]]
    columns = [
        list(values) if convert is None else [None if value is None else convert(value) for value in values]
        for convert, values in zip(converters, zip(*rows, strict=True), strict=True)
    ]
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(sql, columns)
        else:
            cursor.executemany(sql, [(*row[1:], row[0]) for row in zip(*columns, strict=True)])


_T = TypeVar("_T")


def as_health_check(write: Callable[[], _T]) -> _T:
    """Run ``write``, an autocommitted statement that may safely be sent twice (an idempotent
    write), as this request's check of its database connection (``CONN_HEALTH_CHECKS``).

    Django checks a kept connection with a ``SELECT 1`` of its own before the request's first
    statement: a round trip that cost ``POST /api/v1/outputs`` about a twelfth of its CPU, web and
    PostgreSQL (bench/ingest). Here the statement is the check: where it finds the connection
    dead (closed by the server, or by a network fault, since the process last used it), the
    connection is closed and ``write`` runs once more on a new one, as Django's check would have
    reconnected first. A statement that reached the server and committed before the connection
    died is then sent again: the write must be idempotent, and should know its own work when it
    finds it (ingest finds the output stored under the id it gave it, and answers it as created).
    A statement that fails on a live connection is not sent again.

    Anywhere else (no kept connection, its check done, inside a transaction, SQLite) ``write``
    simply runs.
    """
    if (
        connection.vendor != "postgresql"
        or connection.connection is None
        or not connection.health_check_enabled
        or connection.health_check_done
        or connection.in_atomic_block
    ):
        return write()
    connection.health_check_done = True
    try:
        return write()
    except (OperationalError, InterfaceError):
        if connection.is_usable():
            raise  # the statement failed, not the connection
        connection.close()
        return write()


def read_database() -> str:
    """The database alias auditors' reads go to (the compliance export, the auditor's searches):
    ``replica`` when ``DATABASE_REPLICA_URL`` configures one, so that they never slow ingest
    and claims; the primary otherwise."""
    return "replica" if "replica" in settings.DATABASES else "default"


def created_before(rows: QuerySet, before) -> QuerySet | None:
    """``rows`` (ordered newest first by ``created_at``, then primary key) made before the row whose
    primary key is ``before``: a keyset page at constant cost. None when ``rows`` holds no such row
    (another tenant's id, or one deleted): the caller lists nothing."""
    mark = rows.filter(pk=before).values_list("created_at", flat=True).first()
    if mark is None:
        return None
    return rows.filter(Q(created_at__lt=mark) | Q(created_at=mark, pk__lt=before))


def page_and_next(items: list, size: int) -> tuple[list, object | None]:
    """The first ``size`` of ``items`` (read ``size + 1``) and the primary key to page on from, if
    more follow."""
    return items[:size], (items[size - 1].pk if len(items) > size else None)
