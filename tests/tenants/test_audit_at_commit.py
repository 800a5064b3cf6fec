"""On PostgreSQL an audit append goes with its transaction's COMMIT (hitl.postgres), in one pipeline.

The tenant's counter row is then locked for the server's time only. These tests commit
for real (the suite's usual transaction per test would make every block a savepoint,
where the append runs at once): what is handed goes in order, nothing is handed on from
a rolled-back transaction, and an append that fails fails the commit and keeps nothing.
"""

import pytest
from django.db import IntegrityError, connection, transaction

from tenants import audit
from tenants.audit import SYSTEM, audit_record, audit_verify
from tenants.models import AuditEvent, AuditHead, Tenant
from tests.concurrency import owner_connection

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def record(tenant, number):
    return audit_record(tenant=tenant, actor=SYSTEM, kind="test.appended", object_type="t", object_id=number)


def appended(tenant) -> list[str]:
    return list(AuditEvent.objects.for_tenant(tenant).order_by("seq").values_list("object_id", flat=True))


def test_appends_are_sent_with_the_commit_in_order_and_the_chain_verifies():
    tenant = Tenant.objects.create(slug="at-commit")  # no counter row yet: the commit makes it first
    with transaction.atomic():
        assert record(tenant, 1) is None  # handed to the commit: no seq before it
        record(tenant, 2)
        # The deferred checks run, the counter row made sure of, then each append after its turn
        # on the chain's lock.
        assert [sql.split()[0] for _, sql, _, _ in connection.hitl_at_commit] == [
            "SET",
            "INSERT",
            "SELECT",
            "WITH",
            "SELECT",
            "WITH",
        ]
        assert appended(tenant) == []  # nothing appended yet: the chain's lock is not taken
    assert appended(tenant) == ["1", "2"]
    assert AuditHead.objects.for_tenant(tenant).get().last_seq == 2
    assert audit_verify(tenant).ok

    with transaction.atomic():  # the counter row is known committed now: the checks, the turn, the append
        record(tenant, 3)
        assert len(connection.hitl_at_commit) == 3
    assert appended(tenant) == ["1", "2", "3"] and audit_verify(tenant).ok


def test_inside_a_savepoint_the_append_runs_at_once():
    tenant = Tenant.objects.create(slug="at-commit-savepoint")
    with transaction.atomic():
        with transaction.atomic():
            assert record(tenant, 1).seq == 1
        assert connection.hitl_at_commit == []
        assert appended(tenant) == ["1"]
    assert audit_verify(tenant).ok


def test_a_rolled_back_transaction_hands_nothing_to_the_next_commit():
    tenant = Tenant.objects.create(slug="at-commit-rollback")
    with pytest.raises(RuntimeError), transaction.atomic():
        record(tenant, 1)
        raise RuntimeError("the change failed")
    assert connection.hitl_at_commit == []
    with transaction.atomic():
        record(tenant, 2)
    assert appended(tenant) == ["2"]
    assert audit_verify(tenant).ok


def test_an_append_that_fails_fails_the_commit_and_keeps_nothing_of_the_transaction():
    tenant = Tenant.objects.create(slug="at-commit-fails", name="before")
    audit._heads_known.add(tenant.pk)  # a process that wrongly believes the counter row exists
    try:
        with pytest.raises(IntegrityError), transaction.atomic():
            Tenant.objects.filter(pk=tenant.pk).update(name="after")
            record(tenant, 1)  # no counter row: the append's seq is null, refused by the database
    finally:
        audit._heads_known.discard(tenant.pk)
    tenant.refresh_from_db()
    assert tenant.name == "before"  # the change went with the failed append
    assert appended(tenant) == [] and connection.hitl_at_commit == []
    with transaction.atomic():  # the connection is usable again, and the chain starts cleanly
        record(tenant, 2)
    assert appended(tenant) == ["2"] and audit_verify(tenant).ok


def test_appenders_at_commit_queue_on_the_chain_lock_unless_they_hold_the_counter_row():
    import psycopg
    from django.db import OperationalError

    tenant = Tenant.objects.create(slug="at-commit-queue")
    with transaction.atomic():
        record(tenant, 1)
    settings = connection.settings_dict
    other = psycopg.connect(
        host=settings["HOST"], port=settings["PORT"] or 5432, user=settings["USER"], dbname=settings["NAME"]
    )
    try:
        # Another appender has its turn:
        other.execute("SELECT pg_advisory_lock(%s::bigint)", [audit.chain_turn_key(tenant.pk)])
        with pytest.raises(OperationalError, match="lock timeout"), transaction.atomic():
            connection.cursor().execute("SET LOCAL lock_timeout = '300ms'")
            record(tenant, 2)  # its commit waits for the turn (here: gives up)
        assert appended(tenant) == ["1"]

        # A transaction that already holds the counter row (an append at once, in a savepoint)
        # does not queue: it would hold the row the turn's holder is about to wait for.
        with transaction.atomic():
            connection.cursor().execute("SET LOCAL lock_timeout = '300ms'")
            with transaction.atomic():
                assert record(tenant, 3).seq == 2
            record(tenant, 4)
        assert appended(tenant) == ["1", "3", "4"]

        # Nor does one that ran a statement moving the row (the claim's, ingest's): the mark is
        # made where the statement runs, whenever its text was built.
        built, params = audit.audit_append_cte(
            tenant=tenant,
            actor=SYSTEM,
            kind="test.appended",
            object_type="t",
            object_id_sql="c.id",
            data={},
            data_sql={},
            source="c",
        )
        with transaction.atomic():
            connection.cursor().execute("SET LOCAL lock_timeout = '300ms'")
            with connection.cursor() as cursor:
                audit.audit_chain_row_locking()
                sql = f"WITH c AS (SELECT '5'::text AS id), {built} SELECT seq FROM audit_event"  # noqa: S608
                cursor.execute(sql, params)
            record(tenant, 6)
        assert appended(tenant) == ["1", "3", "4", "5", "6"]
    finally:
        other.close()
    assert audit_verify(tenant).ok


def test_the_turn_takes_any_tenant_id():
    tenant = Tenant.objects.create(id=2**31 + 7, slug="at-commit-big-id")  # past PostgreSQL's integer
    with transaction.atomic():
        record(tenant, 1)
    assert appended(tenant) == ["1"] and audit_verify(tenant).ok


def test_an_appender_runs_its_deferred_checks_before_its_turn():
    """A transaction that renamed a judge holds its row (a key update) and appends at its commit;
    another that wrote a row referencing that judge checks the reference at its commit. Checked
    under the turn, that check waited for the renamer while holding the turn the renamer waited
    for: PostgreSQL found a deadlock and failed one of them. Checked before the turn, the check
    waits, the renamer commits, and both go in."""
    from policies.models import JudgeFlag
    from policies.services import judge_create
    from tests.concurrency import other_transaction

    tenant = Tenant.objects.create(slug="at-commit-checks")
    judge = judge_create(tenant=tenant, data={"name": "pii", "kind": "pii"})
    rename = [("UPDATE policies_judge SET name = 'pii-renamed' WHERE id = %s", [judge.pk])]
    turn = [("SELECT pg_advisory_xact_lock(%s::bigint)", [audit.chain_turn_key(tenant.pk)])]  # its own append's
    with other_transaction(now=rename, then=turn), transaction.atomic():
        JudgeFlag.objects.for_tenant(tenant).create(judge=judge, judge_version=1, threshold=0.4)
        record(tenant, "flag")
    assert JudgeFlag.objects.for_tenant(tenant).filter(judge=judge).exists()
    assert appended(tenant)[-1] == "flag" and audit_verify(tenant).ok


def sent_at_commit(tenant, number) -> list[str]:
    """The statements an audited transaction's commit sends (as the connection's watchers see them)."""
    sent = []

    def watch(execute, sql, params, many, context):
        sent.append(" ".join(sql.split()))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(watch), transaction.atomic():
        record(tenant, number)
        sent.clear()  # what the commit sends, not the transaction's own statements
    return sent


def test_an_appender_commits_without_waiting_for_the_flush_under_the_chain_lock_and_waits_after():
    """The counter row stays locked until the commit: a commit that waited for the WAL flush held
    it through the disk's time, while every other claim, review and change of the tenant waited.
    The transaction commits with synchronous_commit off, then a transaction of its own, in the
    same round trip, writes WAL and commits with the session's setting: it returns once everything
    before it (the audited commit) is flushed. The session's setting is untouched."""
    tenant = Tenant.objects.create(slug="at-commit-flush")
    with transaction.atomic():
        record(tenant, 1)
    sent = sent_at_commit(tenant, 2)
    assert sent[-3:] == [
        "SELECT set_config('synchronous_commit', 'off', true)",
        "COMMIT",
        "SELECT pg_logical_emit_message(true, 'hitl', '')",
    ]
    assert sent.index("COMMIT") > max(index for index, sql in enumerate(sent) if sql.startswith("WITH head AS"))
    with connection.cursor() as cursor:
        cursor.execute("SHOW synchronous_commit")
        assert cursor.fetchone()[0] == "on"
    assert appended(tenant) == ["1", "2"] and audit_verify(tenant).ok

    # A transaction that appends nothing commits as it always did: nothing more is sent.
    sent = []

    def watch(execute, sql, params, many, context):
        sent.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(watch), transaction.atomic():
        Tenant.objects.filter(pk=tenant.pk).update(name="renamed")
        sent.clear()
    assert sent == []


def test_where_the_role_may_not_send_the_flush_wait_the_commit_waits_for_the_flush_itself():
    from hitl import tenancy

    function = "pg_logical_emit_message(boolean, text, text)"
    tenant = Tenant.objects.create(slug="at-commit-no-flush-wait")
    with tenancy.as_owner(), connection.cursor() as cursor:  # (as on a managed database that revokes it)
        cursor.execute(f"REVOKE EXECUTE ON FUNCTION {function} FROM PUBLIC")
    try:
        connection.close()  # a new connection asks again
        sent = sent_at_commit(tenant, 1)
        assert sent[-1] == "COMMIT" and not any("synchronous_commit" in sql for sql in sent)
        assert connection.hitl_flush_wait_allowed is False
    finally:
        with tenancy.as_owner(), connection.cursor() as cursor:
            cursor.execute(f"GRANT EXECUTE ON FUNCTION {function} TO PUBLIC")
        connection.close()
    assert appended(tenant) == ["1"] and audit_verify(tenant).ok


def test_if_the_wait_for_the_flush_fails_after_the_commit_the_commit_stands_and_is_not_reported_failed(caplog):
    """A right revoked while a connection holds the answer it was given: the statement after the
    COMMIT fails, the transaction committed. The caller is not told it failed (it would send it
    again); the error is logged, and the connection's next commits wait for the flush themselves."""
    function = "pg_logical_emit_message(boolean, text, text)"
    tenant = Tenant.objects.create(slug="at-commit-flush-fails")
    with transaction.atomic():
        record(tenant, 1)
    assert connection.hitl_flush_wait_allowed is True
    other = owner_connection()
    other.autocommit = True
    try:
        other.execute(f"REVOKE EXECUTE ON FUNCTION {function} FROM PUBLIC")
        with caplog.at_level("ERROR", logger="hitl.postgres.base"), transaction.atomic():
            record(tenant, 2)
        assert "the commit stands" in caplog.text
        assert connection.hitl_flush_wait_allowed is False
        assert sent_at_commit(tenant, 3)[-1] == "COMMIT"  # the next commit waits for the flush itself
    finally:
        other.execute(f"GRANT EXECUTE ON FUNCTION {function} TO PUBLIC")
        other.close()
        connection.close()
    assert appended(tenant) == ["1", "2", "3"] and audit_verify(tenant).ok
