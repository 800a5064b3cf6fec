"""A hot path's statements in one round trip (hitl/postgres/pipeline.py, DatabaseWrapper.hitl_pipeline).

They run as a Django cursor's would: the same Python values back, the running code's scope
(row-level security), Django's errors, the connection usable after one, every statement seen
by the connection's other execute wrappers. These tests commit for real, since inside the
suite's transaction per test the BEGIN and autocommit cases could not be told apart.
"""

import uuid
from datetime import UTC, datetime
from decimal import Decimal

import psycopg
import pytest
from django.db import IntegrityError, OperationalError, connection, transaction

from hitl.postgres import pipeline
from hitl.tenancy import no_tenant, tenant_scope
from reviews.models import Queue

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_times_come_back_as_djangos_with_psycopgs_compiled_loader():
    """Django's loader of timestamptz is Python; psycopg's compiled one (its binary package, in
    requirements.txt) gives the same values, time zone object included, 17 times faster."""
    statement = (
        "SELECT now(), %s::timestamptz, '2026-01-01 10:00:00+05'::timestamptz, "
        "'0001-01-01 00:00:00+00'::timestamptz, ARRAY['2026-06-01 10:00:00.5'::timestamptz, NULL], "
        "NULL::timestamptz"
    )
    params = [datetime(2026, 11, 30, 12, 0, 0, 123456, tzinfo=UTC)]
    with transaction.atomic():  # one transaction: the same now()
        with connection.cursor() as cursor:
            cursor.execute(statement, params)
            expected = cursor.fetchall()
        (rows,) = connection.hitl_pipeline([(statement, params)])
    assert rows == expected
    for ours, djangos in zip(rows[0][:4], expected[0][:4], strict=True):
        assert ours.tzinfo is djangos.tzinfo
    loader = connection.hitl_session.transformer.adapters.get_loader(1184, psycopg.pq.Format.TEXT)
    assert loader.__module__.startswith("psycopg_binary")


def test_the_sql_of_a_cursor_becomes_numbered_parameters_once_per_name():
    assert pipeline.converted("SELECT %s, %s, '100%%'") == (b"SELECT $1, $2, '100%'", 2)
    text, names = pipeline.converted("SELECT %(a)s, %(b)s, %(a)s")
    assert (text, names) == (b"SELECT $1, $2, $1", ("a", "b"))
    with pytest.raises(ValueError, match="all named or all positional"):
        pipeline.converted("SELECT %(a)s, %s")


def test_rows_come_back_as_a_django_cursor_returns_them():
    statement = "SELECT %s::uuid, %s::bigint, %s::timestamptz, %s::jsonb, %s::int[], %s::text, %s::boolean, %s::numeric"
    params = [uuid.uuid4(), 2**40, datetime(2026, 11, 30, 12, 0, tzinfo=UTC), '{"a": [1]}', [1, 2], None, True, "1.5"]
    with connection.cursor() as cursor:
        cursor.execute(statement, params)
        expected = cursor.fetchall()
    (rows,) = connection.hitl_pipeline([(statement, params)])
    assert rows == expected
    assert rows[0][0] == params[0] and rows[0][4] == [1, 2] and rows[0][5] is None and rows[0][7] == Decimal("1.5")
    (again,) = connection.hitl_pipeline([(statement, params)])  # prepared now: the same
    assert again == expected
    assert connection.hitl_pipeline([("SELECT 1 WHERE false", None)]) == [[]]


def test_the_scope_of_the_running_code_goes_with_the_statements(tenant, other_tenant):
    read = ("SELECT tenant_id FROM reviews_queue ORDER BY tenant_id", None)
    with tenant_scope(tenant):
        assert connection.hitl_pipeline([read]) == [[(tenant.pk,)]]
    with tenant_scope(other_tenant):
        assert connection.hitl_pipeline([read]) == [[(other_tenant.pk,)]]
    with no_tenant():
        assert connection.hitl_pipeline([read]) == [[]]  # nothing outlived the autocommitted statement
        # no scope, no row to write
        assert connection.hitl_pipeline([("UPDATE reviews_queue SET name = name || 'x' RETURNING 1", None)]) == [[]]
    assert Queue.unscoped.filter(name__endswith="x").count() == 0


def test_in_a_transaction_it_begins_it_once_and_leaves_the_scope_held(tenant, other_tenant):
    with tenant_scope(tenant), transaction.atomic():
        sent = connection.hitl_scopes_sent
        (first,) = connection.hitl_pipeline([("SELECT txid_current(), count(*) FROM reviews_queue", None)])
        (second,) = connection.hitl_pipeline([("SELECT txid_current(), count(*) FROM reviews_queue", None)])
        assert first == second and first[0][1] == 1  # one transaction; the tenant's queue only
        assert connection.hitl_scopes_sent == sent + 1
        assert list(Queue.unscoped.values_list("tenant_id", flat=True)) == [tenant.pk]  # a cursor after it
        with tenant_scope(other_tenant):
            assert connection.hitl_pipeline([("SELECT tenant_id FROM reviews_queue", None)]) == [[(other_tenant.pk,)]]


def test_settings_go_with_an_autocommitted_pipeline_only(tenant):
    read = ("SELECT current_setting('synchronous_commit')", None)
    with tenant_scope(tenant):
        assert connection.hitl_pipeline([read], settings={"synchronous_commit": "off"}) == [[("off",)]]
        assert connection.hitl_pipeline([read]) == [[("on",)]]
        with transaction.atomic():  # the transaction keeps its own
            assert connection.hitl_pipeline([read], settings={"synchronous_commit": "off"}) == [[("on",)]]


def test_an_error_is_djangos_the_statements_after_it_do_not_run_and_the_connection_goes_on(tenant):
    queue = Queue.objects.for_tenant(tenant).get()
    with tenant_scope(tenant):
        with pytest.raises(IntegrityError) as raised:
            connection.hitl_pipeline(
                [
                    ("INSERT INTO reviews_queue SELECT * FROM reviews_queue WHERE id = %s", [queue.pk]),
                    ("UPDATE reviews_queue SET name = 'after' WHERE id = %s", [queue.pk]),
                ]
            )
        assert isinstance(raised.value.__cause__, psycopg.errors.UniqueViolation)
        assert raised.value.__cause__.diag.constraint_name
        queue.refresh_from_db()
        assert queue.name != "after"
        assert connection.hitl_pipeline([("SELECT 1", None)]) == [[(1,)]]
        with pytest.raises(IntegrityError), transaction.atomic():  # in a transaction: atomic rolls it back
            connection.hitl_pipeline([("UPDATE reviews_queue SET name = 'inside' WHERE id = %s", [queue.pk])])
            connection.hitl_pipeline(
                [("INSERT INTO reviews_queue SELECT * FROM reviews_queue WHERE id = %s", [queue.pk])]
            )
        queue.refresh_from_db()
        assert queue.name != "inside"


def test_statements_are_prepared_again_after_psycopg_deallocates_every_statement(tenant):
    read = ("SELECT count(*) FROM reviews_queue WHERE tenant_id = %s", [tenant.pk])
    with tenant_scope(tenant):
        assert connection.hitl_pipeline([read]) == [[(1,)]]
        assert connection.hitl_session.prepared
        for _ in range(6):  # psycopg prepares a statement of its own once it has run five times
            list(Queue.objects.for_tenant(tenant))
        try:
            with transaction.atomic():
                list(Queue.objects.for_tenant(tenant))
                raise RuntimeError("roll back: psycopg then sends DEALLOCATE ALL")
        except RuntimeError:
            pass
        assert connection.hitl_session.prepared == {}
        assert connection.hitl_pipeline([read]) == [[(1,)]]


def test_the_other_execute_wrappers_see_each_statement_with_its_rowcount(tenant):
    seen = []

    def watch(execute, sql, params, many, context):
        result = execute(sql, params, many, context)
        seen.append((sql.split()[0], context["cursor"].rowcount))
        return result

    with tenant_scope(tenant), connection.execute_wrapper(watch):
        connection.hitl_pipeline([("UPDATE reviews_queue SET name = name", None), ("SELECT 1", None)])
    assert seen == [("SELECT", 1), ("UPDATE", 1), ("SELECT", 1)]  # the scope's set_config first


def test_a_lost_connection_is_djangos_operational_error_and_the_next_use_reconnects(tenant):
    pid = connection.hitl_pipeline([("SELECT pg_backend_pid()", None)])[0][0][0]
    settings = connection.settings_dict
    with psycopg.connect(
        host=settings["HOST"],
        port=settings["PORT"] or 5432,
        user=settings["USER"],
        dbname=settings["NAME"],
        autocommit=True,
    ) as other:
        other.execute("SELECT pg_terminate_backend(%s)", [pid])
    with pytest.raises(OperationalError):
        connection.hitl_pipeline([("SELECT 1", None)])
    connection.close_if_unusable_or_obsolete()
    assert connection.hitl_pipeline([("SELECT 1", None)]) == [[(1,)]]
