"""PostgreSQL refuses to rewrite the audit log for a role with the application's privileges on it.

The application's database role gets SELECT and INSERT only on tables whose model is
``append_only`` (the audit events and checkpoints; hitl/isolation.py grants it). It
appends and reads, and each of UPDATE, DELETE and TRUNCATE is refused: checked as the
application's own role (``DATABASE_APP_ROLE``), which the test connection runs as.
"""

import pytest
from django.apps import apps
from django.db import connection, transaction
from django.db.utils import ProgrammingError

from hitl import tenancy
from tenants.audit import SYSTEM, audit_record
from tenants.models import AuditCheckpoint, AuditEvent

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]


def append_only_tables() -> list[str]:
    return sorted(model._meta.db_table for model in apps.get_models() if getattr(model, "append_only", False) is True)


@pytest.fixture
def app_role(tenant):
    """The application's own role (DATABASE_APP_ROLE, which hitl/isolation.py grants), the one the
    test connection runs as: the audit log gets one event to refuse rewriting."""
    with transaction.atomic():
        audit_record(tenant=tenant, actor=SYSTEM, kind="test.seeded", object_type="t", object_id=1)
    role = tenancy.app_role()
    assert role, "the suite runs PostgreSQL as the application's role (DATABASE_APP_ROLE)"
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_user")
        assert cursor.fetchone()[0] == role
    return role


def as_role(role: str, sql: str, params=()):
    """Run ``sql`` as the connection's role (the app role) in a savepoint: a refusal rolls back only it."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall() if cursor.description else cursor.rowcount


def test_the_audit_models_are_the_append_only_ones():
    assert append_only_tables() == sorted([AuditEvent._meta.db_table, AuditCheckpoint._meta.db_table])


@pytest.mark.parametrize("table", [AuditEvent._meta.db_table, AuditCheckpoint._meta.db_table])
def test_update_delete_and_truncate_are_refused_select_and_insert_allowed(app_role, tenant, table):
    assert isinstance(as_role(app_role, f"SELECT count(*) FROM {table}"), list)  # noqa: S608
    for statement in (
        f"UPDATE {table} SET tenant_id = tenant_id",  # noqa: S608
        f"DELETE FROM {table}",  # noqa: S608
        f"TRUNCATE {table}",
    ):
        with pytest.raises(ProgrammingError, match="permission denied"):
            as_role(app_role, statement)
    assert AuditEvent.objects.for_tenant(tenant).filter(kind="test.seeded").exists()


def test_the_role_can_append(app_role, tenant):
    before = AuditEvent.objects.for_tenant(tenant).count()
    inserted = as_role(
        app_role,
        f"INSERT INTO {AuditEvent._meta.db_table} (tenant_id, seq, at, kind, actor_role, object_type, object_id, "  # noqa: S608
        "prev_hash, hash) VALUES (%s, 100000, now(), 'test.appended', 'system', 't', '1', %s, %s)",
        [tenant.pk, "0" * 64, "0" * 64],
    )
    assert inserted == 1
    assert AuditEvent.objects.for_tenant(tenant).count() == before + 1
