"""Tenant isolation inside PostgreSQL: composite foreign keys, row-level security, the app role.

Applied after every ``migrate`` (a ``post_migrate`` handler, so it also covers tables a
later migration adds), idempotent and cheap when nothing changed. From the model registry,
for every concrete model inheriting ``hitl.models.TenantOwnedModel``:

- each foreign key to another tenant-owned model (one with a database constraint) gets a
  twin that includes the tenant,
  ``(tenant_id, x_id) REFERENCES parent (tenant_id, id)``, deferrable like Django's own
  (which stays, so that migrations keep managing it), on a unique index ``(tenant_id, id)``
  of the parent: a row can never point at another tenant's row, whatever the code does;
- row-level security is enabled and forced (the owner is subject to it too, superusers
  excepted), with two permissive policies: ``hitl_tenant`` (the rows of the tenant the
  transaction names in ``hitl.tenant``) and ``hitl_cross_tenant`` (every row, while the
  transaction names one of ``hitl.tenancy.CROSS_TENANT_REASONS`` in ``hitl.cross_tenant``);
- the application's role (``DATABASE_APP_ROLE``) is created if missing (NOLOGIN: the
  application ``SET ROLE``\\ s to it) and granted SELECT, INSERT, UPDATE and DELETE on the
  application's tables, but only SELECT and INSERT on a model with ``append_only = True``
  (audit rows), and never TRUNCATE.

:func:`problems` lists what is missing; ``tests/hitl/test_isolation.py`` fails the build on any.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from django.apps import apps
from django.db import connections

from hitl.models import TenantOwnedModel
from hitl.tenancy import CROSS_TENANT_REASONS, app_role

TENANT_POLICY = "hitl_tenant"
CROSS_TENANT_POLICY = "hitl_cross_tenant"


def q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def tenant_owned_models() -> list[type]:
    """Models whose rows belong to a tenant: every ``TenantOwnedModel`` and its history (simple-history)."""
    return [
        model
        for model in apps.get_models()
        if model._meta.managed
        and not model._meta.proxy
        and issubclass(getattr(model, "instance_type", model), TenantOwnedModel)
    ]


@dataclass(frozen=True)
class TenantForeignKey:
    table: str
    column: str
    parent_table: str
    parent_column: str  # the parent's primary key

    @property
    def name(self) -> str:
        digest = hashlib.sha256(f"{self.table}.{self.column}".encode()).hexdigest()[:10]
        return f"{self.table[:40]}_hitl_tfk_{digest}"


def tenant_foreign_keys() -> list[TenantForeignKey]:
    """Every foreign key between two tenant-owned models, as its tenant-including twin."""
    keys = []
    for model in tenant_owned_models():
        if not issubclass(model, TenantOwnedModel):
            continue  # history rows keep ids of rows that may be gone: no foreign keys
        for field in model._meta.concrete_fields:
            if not field.is_relation or not field.many_to_one or field.name == "tenant":
                continue
            if not field.db_constraint:
                continue  # kept without a constraint on purpose (an audit row's actor: the log outlives keys)
            parent = field.related_model
            if not (isinstance(parent, type) and issubclass(parent, TenantOwnedModel)):
                continue
            if field.target_field != parent._meta.pk:
                raise ValueError(f"{model.__name__}.{field.name}: a tenant foreign key must target the primary key")
            keys.append(
                TenantForeignKey(model._meta.db_table, field.column, parent._meta.db_table, parent._meta.pk.column)
            )
    return keys


def parent_key_index(table: str) -> str:
    return f"{table[:40]}_hitl_tenant_id_key"


def tenant_cast(connection) -> str:
    """The SQL type of ``tenant_id`` ("bigint"), from the models rather than the tenants app (a layer above)."""
    return tenant_owned_models()[0]._meta.get_field("tenant").db_type(connection)


def policy_sql(table: str, connection) -> list[str]:
    cast = tenant_cast(connection)
    reasons = ", ".join("'" + reason + "'" for reason in sorted(CROSS_TENANT_REASONS))
    own = f"tenant_id = NULLIF(current_setting('hitl.tenant', true), '')::{cast}"
    crossing = f"current_setting('hitl.cross_tenant', true) = ANY (ARRAY[{reasons}])"
    return [
        f"ALTER TABLE {q(table)} ENABLE ROW LEVEL SECURITY",
        f"ALTER TABLE {q(table)} FORCE ROW LEVEL SECURITY",
        f"DROP POLICY IF EXISTS {TENANT_POLICY} ON {q(table)}",
        f"CREATE POLICY {TENANT_POLICY} ON {q(table)} USING ({own}) WITH CHECK ({own})",
        f"DROP POLICY IF EXISTS {CROSS_TENANT_POLICY} ON {q(table)}",
        f"CREATE POLICY {CROSS_TENANT_POLICY} ON {q(table)} USING ({crossing}) WITH CHECK ({crossing})",
    ]


def policy_fingerprint(connection) -> str:
    """Names what the policies should say, stored as a comment on each, so an unchanged table is skipped."""
    return "hitl " + hashlib.sha256("\n".join(policy_sql("t", connection)).encode()).hexdigest()[:16]


def table_privileges(model) -> str:
    """What the application's role may do to the table of ``model``: audit rows
    (``append_only = True`` on the model class) are read and added, never changed or removed."""
    return "SELECT, INSERT" if getattr(model, "append_only", False) else "SELECT, INSERT, UPDATE, DELETE"


def application_tables() -> dict[str, str]:
    """Every table of the registry (and Django's migration log) -> the application role's privileges."""
    tables = {"django_migrations": "SELECT"}
    for model in apps.get_models(include_auto_created=True):
        if model._meta.managed and not model._meta.proxy:
            tables[model._meta.db_table] = table_privileges(model)
    return tables


def grant_sql(role: str, tables: dict[str, str]) -> list[str]:
    """The statements that give ``role`` exactly these privileges (TRUNCATE never)."""
    statements = [f"GRANT USAGE ON SCHEMA public TO {q(role)}"]
    for table, privileges in sorted(tables.items()):
        statements.append(f"REVOKE ALL ON {q(table)} FROM {q(role)}")
        statements.append(f"GRANT {privileges} ON {q(table)} TO {q(role)}")
    statements.append(f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {q(role)}")
    return statements


def _existing(cursor, sql: str, params=()) -> set:
    cursor.execute(sql, params)
    return {row[0] if len(row) == 1 else tuple(row) for row in cursor.fetchall()}


def apply_after_migrate(sender=None, using: str = "default", **kwargs) -> None:
    apply(using)


def apply(using: str = "default") -> None:
    """Bring the database's isolation in line with the model registry (PostgreSQL only)."""
    connection = connections[using]
    if connection.vendor != "postgresql":
        return
    statements: list[str] = []
    with connection.cursor() as cursor:
        tables = {model._meta.db_table for model in tenant_owned_models()}
        present = _existing(cursor, "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")
        tables &= present
        keys = [key for key in tenant_foreign_keys() if key.table in tables and key.parent_table in tables]
        indexes = _existing(cursor, "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema()")
        for parent in sorted({key.parent_table for key in keys}):
            if parent_key_index(parent) not in indexes:
                statements.append(
                    f"CREATE UNIQUE INDEX {q(parent_key_index(parent))} ON {q(parent)} (tenant_id, "
                    f"{q(next(k.parent_column for k in keys if k.parent_table == parent))})"
                )
        foreign = _existing(
            cursor,
            "SELECT c.relname, k.conname FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid"
            " WHERE k.contype = 'f' AND c.relnamespace = current_schema()::regnamespace",
        )
        constraints = {name for _, name in foreign}
        wanted = {key.name for key in keys}
        for table, name in sorted(foreign):
            if table in tables and "_hitl_tfk_" in name and name not in wanted:  # a twin no model asks for any more
                statements.append(f"ALTER TABLE {q(table)} DROP CONSTRAINT {q(name)}")
        for key in keys:
            if key.name not in constraints:
                statements.append(
                    f"ALTER TABLE {q(key.table)} ADD CONSTRAINT {q(key.name)} FOREIGN KEY (tenant_id, {q(key.column)})"
                    f" REFERENCES {q(key.parent_table)} (tenant_id, {q(key.parent_column)})"
                    " DEFERRABLE INITIALLY DEFERRED"
                )
        fingerprint = policy_fingerprint(connection)
        current = _existing(
            cursor,
            "SELECT c.relname FROM pg_class c JOIN pg_policy p ON p.polrelid = c.oid"
            " WHERE c.relrowsecurity AND c.relforcerowsecurity AND p.polname = %s"
            " AND obj_description(p.oid, 'pg_policy') = %s",
            [CROSS_TENANT_POLICY, fingerprint],
        )
        for table in sorted(tables - current):
            statements.extend(policy_sql(table, connection))
            statements.append(f"COMMENT ON POLICY {CROSS_TENANT_POLICY} ON {q(table)} IS '{fingerprint}'")
        role = app_role()
        if role:
            cursor.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [role])
            if cursor.fetchone() is None:
                statements.append(f"CREATE ROLE {q(role)} NOLOGIN NOSUPERUSER NOBYPASSRLS")
            statements.extend(grant_sql(role, {t: p for t, p in application_tables().items() if t in present}))
            cursor.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
            if not cursor.fetchone()[0]:
                statements.append(f"GRANT {q(role)} TO CURRENT_USER")
    if statements:  # one round trip, unprepared (several statements)
        with connection.connection.cursor() as raw:
            raw.execute(";\n".join(statements), prepare=False)


@dataclass(frozen=True)
class Problem:
    table: str
    what: str

    def __str__(self) -> str:
        return f"{self.table}: {self.what}"


def problems(using: str = "default") -> list[Problem]:
    """What the database lacks: tenant-owned tables without forced RLS or policies, and
    foreign keys between tenant-owned tables that do not include the tenant."""
    connection = connections[using]
    found: list[Problem] = []
    tables = {model._meta.db_table for model in tenant_owned_models()}
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity,"
            " array(SELECT polname FROM pg_policy WHERE polrelid = c.oid ORDER BY polname)::text[]"
            " FROM pg_class c WHERE c.relkind = 'r' AND c.relnamespace = current_schema()::regnamespace"
        )
        catalog = {name: (rls, forced, set(policies)) for name, rls, forced, policies in cursor.fetchall()}
        for table in sorted(tables):
            if table not in catalog:
                found.append(Problem(table, "table missing"))
                continue
            rls, forced, policies = catalog[table]
            if not (rls and forced):
                found.append(Problem(table, "row-level security not enabled and forced"))
            if not {TENANT_POLICY, CROSS_TENANT_POLICY} <= policies:
                found.append(Problem(table, f"policies {sorted(policies)} lack {TENANT_POLICY}/{CROSS_TENANT_POLICY}"))
        # Every foreign key (declared in the database, whoever made it) from a tenant-owned
        # table to another must have a twin whose columns are (tenant_id, the same column).
        cursor.execute(
            "SELECT src.relname, dst.relname,"
            " array(SELECT attname FROM unnest(k.conkey) WITH ORDINALITY u(n, i)"
            "  JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = u.n ORDER BY u.i)::text[]"
            " FROM pg_constraint k JOIN pg_class src ON src.oid = k.conrelid JOIN pg_class dst ON dst.oid = k.confrelid"
            " WHERE k.contype = 'f' AND src.relnamespace = current_schema()::regnamespace"
        )
        foreign = [(src, dst, tuple(columns)) for src, dst, columns in cursor.fetchall()]
    composite = {
        (src, dst, columns[1]) for src, dst, columns in foreign if len(columns) == 2 and columns[0] == "tenant_id"
    }
    for src, dst, columns in foreign:
        single = len(columns) == 1 and columns[0] != "tenant_id"
        if src in tables and dst in tables and single and (src, dst, columns[0]) not in composite:
            found.append(Problem(src, f"foreign key {columns[0]} -> {dst} does not include the tenant"))
    return found
