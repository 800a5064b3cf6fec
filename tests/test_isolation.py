"""Isolation in PostgreSQL itself (issue #10, point 8): row-level security, composite keys, the app role.

These run as the application does: connected as the owner, ``SET ROLE`` to
``DATABASE_APP_ROLE``. The suite's own set-up runs in the ``test_harness`` scope
(tests/conftest.py); each test says which scope it looks through.
"""

import copy

import pytest
from django.db import IntegrityError, ProgrammingError, connection, transaction

from hitl import isolation, tenancy
from hitl.tenancy import cross_tenant, no_tenant, tenant_scope
from policies.defaults import DEFAULT_POLICY
from policies.services import policy_publish, rubric_publish
from reviews.models import Feedback, Output, Queue
from tests.conftest import make_client
from tests.reviews.conftest import GOOD_SCORES, RUBRIC, claim, review, reviewer, submit

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]


def rows(sql: str, params=()) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def run(*statements: str) -> None:
    with connection.cursor() as cursor:
        for statement in statements:
            cursor.execute(statement)


def counts() -> dict[str, int]:
    return {
        model._meta.db_table: rows(f"SELECT count(*) FROM {isolation.q(model._meta.db_table)}")[0][0]  # noqa: S608
        for model in isolation.tenant_owned_models()
    }


@pytest.fixture
def two_tenants(tenant, other_tenant):
    """Both tenants with a policy, a queue, people, keys, outputs, tasks and a review."""
    for each in (tenant, other_tenant):
        rubric_publish(tenant=each, document=RUBRIC)
        tiers = copy.deepcopy(DEFAULT_POLICY["tiers"])
        for tier in tiers:
            tier.update(review_rate=1.0, rubric="quality", overlap_rate=0.0)
        rules = [{"tier": name, "match": {"application": f"{name}-app"}} for name in ("low", "high")]
        policy_publish(tenant=each, document={"default_tier": "medium", "tiers": tiers, "rules": rules})
        flow = {"service": make_client(each, "service")}
        person = reviewer(each, 1, f"reviewer-{each.slug}")
        submit(flow, 1, "high-app")
        submit(flow, 2, "low-app")
        task = claim(person).json()
        assert review(person, task["id"], decision="approve", scores=GOOD_SCORES).status_code == 201
    return tenant, other_tenant


def test_the_app_role_is_in_force():
    """Neither superuser, nor owner of a tenant-owned table, nor BYPASSRLS."""
    ((user, superuser, bypass),) = rows(
        "SELECT current_user, rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user"
    )
    assert user == tenancy.app_role() == "hitl_app"
    assert not superuser and not bypass
    owners = {
        owner for (owner,) in rows("SELECT DISTINCT tableowner FROM pg_tables WHERE tablename LIKE %s", ["reviews_%"])
    }
    assert user not in owners


def test_the_build_check_finds_nothing_missing():
    assert isolation.problems() == []


def test_the_build_check_catches_unforced_security_and_a_tenantless_foreign_key():
    with tenancy.as_owner():
        run(
            "ALTER TABLE reviews_feedback NO FORCE ROW LEVEL SECURITY",
            "ALTER TABLE reviews_judgement ADD COLUMN other_output_id uuid REFERENCES reviews_output (id)",
        )
        found = {str(problem) for problem in isolation.problems()}
        run(
            "ALTER TABLE reviews_judgement DROP COLUMN other_output_id",
            "ALTER TABLE reviews_feedback FORCE ROW LEVEL SECURITY",
        )
    assert found == {
        "reviews_feedback: row-level security not enabled and forced",
        "reviews_judgement: foreign key other_output_id -> reviews_output does not include the tenant",
    }
    assert isolation.problems() == []


def test_with_no_tenant_every_tenant_owned_table_shows_no_row(two_tenants):
    with cross_tenant("test_harness"):
        seen = counts()
    assert sum(1 for count in seen.values() if count) >= 8, seen  # the check below means something
    with no_tenant():
        assert counts() == dict.fromkeys(seen, 0)
        assert Output.unscoped.count() == 0  # the ORM too, with the unscoped manager


def test_with_a_tenant_set_the_other_tenants_rows_are_invisible_and_cannot_be_written(two_tenants):
    mine, theirs = two_tenants
    with cross_tenant("test_harness"):
        everyone = counts()
    with tenant_scope(mine):
        visible = counts()
        assert {tenant_id for (tenant_id,) in rows("SELECT DISTINCT tenant_id FROM reviews_output")} == {mine.pk}
        assert all(0 < visible[table] < everyone[table] for table in everyone if everyone[table]), (visible, everyone)
        # Another tenant's rows: an UPDATE or DELETE finds none, an INSERT is refused.
        assert rows("UPDATE reviews_queue SET priority = 1 WHERE tenant_id = %s RETURNING id", [theirs.pk]) == []
        assert rows("DELETE FROM reviews_output WHERE tenant_id = %s RETURNING id", [theirs.pk]) == []
        with pytest.raises(ProgrammingError, match="row-level security"), transaction.atomic():
            Queue.unscoped.create(tenant_id=theirs.pk, name="smuggled")
        with pytest.raises(ProgrammingError, match="row-level security"), transaction.atomic():
            Queue.unscoped.filter(tenant_id=mine.pk).update(tenant_id=theirs.pk)
    with tenant_scope(theirs):
        assert (
            rows("SELECT count(*) FROM reviews_output")[0][0] == everyone["reviews_output"] - visible["reviews_output"]
        )


def test_a_child_cannot_reference_another_tenants_parent_even_in_raw_sql(two_tenants):
    mine, theirs = two_tenants
    their_output = Output.objects.for_tenant(theirs).first()
    with cross_tenant("test_harness"), pytest.raises(IntegrityError, match="hitl_tfk"), transaction.atomic():
        run("SET CONSTRAINTS ALL IMMEDIATE")
        rows(
            "INSERT INTO reviews_feedback (tenant_id, output_id, rating, comment, created_at)"
            " VALUES (%s, %s, 'up', '', now()) RETURNING id",
            [mine.pk, their_output.pk],
        )
    with cross_tenant("test_harness"), transaction.atomic():  # the same row in its own tenant is fine
        run("SET CONSTRAINTS ALL IMMEDIATE")
        Feedback.unscoped.create(tenant_id=theirs.pk, output_id=their_output.pk, rating="up")


def test_an_audit_rows_actor_key_may_go_and_a_stale_twin_is_dropped(two_tenants):
    """An audit row's actor is a plain id (``db_constraint=False``): no tenant twin either, so
    that removing a key never touches the log; a twin left by an older build is dropped by
    the next ``apply`` (run after every migrate)."""
    from tenants.models import ApiKey, AuditEvent

    mine, _ = two_tenants
    with tenant_scope(mine):
        event = AuditEvent.objects.for_tenant(mine).filter(actor_key__isnull=False).first()
    assert event is not None
    assert not [key for key in isolation.tenant_foreign_keys() if key.table == AuditEvent._meta.db_table]
    with tenancy.as_owner(), transaction.atomic():
        run("SET CONSTRAINTS ALL IMMEDIATE")
        rows("DELETE FROM tenants_apikey WHERE id = %s RETURNING id", [event.actor_key_id])
        rows("SELECT 1 FROM tenants_auditevent WHERE id = %s", [event.pk])
        transaction.set_rollback(True)  # (the key stays for the rest of the test)
    stale = isolation.TenantForeignKey("tenants_auditevent", "actor_key_id", "tenants_apikey", "id")
    with tenancy.as_owner():
        run("SET CONSTRAINTS ALL IMMEDIATE")  # (no checks pending: a table with some cannot be altered)
        run(
            f"ALTER TABLE tenants_auditevent ADD CONSTRAINT {isolation.q(stale.name)} FOREIGN KEY"
            " (tenant_id, actor_key_id) REFERENCES tenants_apikey (tenant_id, id) DEFERRABLE INITIALLY DEFERRED"
        )
        assert rows("SELECT 1 FROM pg_constraint WHERE conname = %s", [stale.name]) == [(1,)]
        isolation.apply()
        assert rows("SELECT 1 FROM pg_constraint WHERE conname = %s", [stale.name]) == []
    assert ApiKey.unscoped.filter(pk=event.actor_key_id).exists()
    assert isolation.problems() == []


def test_append_only_tables_take_select_and_insert_only():
    class AuditRow:
        append_only = True

    class Plain:
        pass

    assert isolation.table_privileges(AuditRow) == "SELECT, INSERT"
    assert isolation.table_privileges(Plain) == "SELECT, INSERT, UPDATE, DELETE"
    role = tenancy.app_role()
    with tenancy.as_owner():
        run("CREATE TABLE hitl_test_audit (id int)")
        run(*isolation.grant_sql(role, {"hitl_test_audit": isolation.table_privileges(AuditRow)}))
    run("INSERT INTO hitl_test_audit VALUES (1)")
    assert rows("SELECT id FROM hitl_test_audit") == [(1,)]
    for statement in ("UPDATE hitl_test_audit SET id = 2", "DELETE FROM hitl_test_audit", "TRUNCATE hitl_test_audit"):
        with pytest.raises(ProgrammingError, match="permission denied"), transaction.atomic():
            run(statement)


def test_cross_tenant_reasons_are_named_and_listed_in_the_policy():
    with pytest.raises(ValueError, match="CROSS_TENANT_REASONS"):
        cross_tenant("because")
    ((policy,),) = rows(
        "SELECT pg_get_expr(polqual, polrelid) FROM pg_policy WHERE polname = %s AND polrelid = %s::regclass",
        [isolation.CROSS_TENANT_POLICY, "reviews_output"],
    )
    assert all(f"'{reason}'" in policy for reason in tenancy.CROSS_TENANT_REASONS)


def test_every_scheduled_and_background_task_declares_whose_rows_it_touches(tenant, django_capture_on_commit_callbacks):
    """The suite's own default scope hides a task that declares none; here they run with none
    around them, as in a worker or the embedded beat, and must still do their work."""
    from datetime import timedelta

    from django.utils import timezone

    from quality import tasks as quality_tasks
    from quality.models import RollupState
    from reviews import tasks as review_tasks
    from reviews.bundle import compliance_export_request
    from reviews.models import ComplianceExport
    from tenants import tasks as tenant_tasks
    from tenants.audit import SYSTEM, audit_record
    from tenants.models import AuditVerification
    from tenants.verification import audit_verification_start

    with transaction.atomic():
        audit_record(tenant=tenant, actor=SYSTEM, kind="test.seeded", object_type="t", object_id=1)
    with django_capture_on_commit_callbacks(execute=False):
        verification = audit_verification_start(tenant=tenant)
        now = timezone.now()
        export = compliance_export_request(tenant=tenant, start=now - timedelta(days=1), end=now, actor=SYSTEM)

    with no_tenant():
        for sweep in (
            review_tasks.retention_apply_task,
            review_tasks.tasks_sla_sweep_task,
            review_tasks.tasks_release_expired_task,
            review_tasks.webhook_sweep_task,
            review_tasks.judges_reconcile_task,
            tenant_tasks.audit_checkpoints_task,
            quality_tasks.metrics_rollup_task,
        ):
            sweep()
        tenant_tasks.audit_verification_task(verification.pk)
        review_tasks.compliance_export_task(str(export.pk))

    with tenant_scope(tenant):
        assert AuditVerification.objects.for_tenant(tenant).get(pk=verification.pk).status != "pending"
        assert ComplianceExport.objects.for_tenant(tenant).get(pk=export.pk).status == "done"
        assert RollupState.objects.for_tenant(tenant).get().watermark is not None


def test_the_operators_commands_declare_whose_rows_they_touch(tenant, capsys):
    """``verify_audit`` at the command line, with no scope around it (as in a shell): it must
    read the tenant's chain, not an empty one, and keep its result for the chain page."""
    from django.core.management import call_command

    from tenants.audit import SYSTEM, audit_record
    from tenants.models import AuditEvent, AuditVerification

    with transaction.atomic():
        audit_record(tenant=tenant, actor=SYSTEM, kind="test.seeded", object_type="t", object_id=1)
    with tenant_scope(tenant):
        events = AuditEvent.objects.for_tenant(tenant).count()
    with no_tenant():
        call_command("verify_audit", tenant.slug)
    assert f"{events} events" in capsys.readouterr().out.replace(",", "")
    with tenant_scope(tenant):
        kept = AuditVerification.objects.for_tenant(tenant).get()
    assert (kept.source, kept.status, kept.events) == ("command", "passed", events)
