"""How the running code's scope reaches PostgreSQL (hitl/tenancy.py, hitl/postgres), and that SQLite ignores it."""

import pytest
from django.db import connection, transaction

from hitl.tenancy import CROSS_TENANT_REASONS, cross_tenant, no_tenant, statement_settings, tenant_scope
from reviews.models import Queue

postgres_only = pytest.mark.skipif(connection.vendor != "postgresql", reason="row-level security is PostgreSQL's")


def queues_seen() -> set[int]:
    return set(Queue.unscoped.values_list("tenant_id", flat=True))


def test_scopes_are_named_and_nest():
    with pytest.raises(ValueError, match="CROSS_TENANT_REASONS"):
        cross_tenant("curiosity")
    with pytest.raises(ValueError, match="saved tenant"):
        tenant_scope(None)
    assert "api_key_lookup" in CROSS_TENANT_REASONS


@pytest.mark.skipif(connection.vendor == "postgresql", reason="SQLite: the embedded default")
@pytest.mark.django_db
def test_on_sqlite_scopes_change_nothing(tenant, other_tenant):
    with no_tenant():
        assert queues_seen() == {tenant.pk, other_tenant.pk}  # the application's own scoping is all there is
    with tenant_scope(tenant):
        assert queues_seen() == {tenant.pk, other_tenant.pk}


@postgres_only
@pytest.mark.django_db(transaction=True)
def test_in_autocommit_each_statement_carries_its_scope_and_nothing_outlives_it(tenant, other_tenant):
    sent = connection.hitl_scopes_sent
    with tenant_scope(tenant):
        assert queues_seen() == {tenant.pk}
        assert queues_seen() == {tenant.pk}
    assert connection.hitl_scopes_sent == sent + 2  # one with each autocommitted statement
    with no_tenant():
        assert queues_seen() == set()  # the tenant set for the statements before did not outlive them
    assert connection.hitl_scopes_sent == sent + 2  # a statement without a scope needs none sent
    with cross_tenant("test_harness"):
        assert queues_seen() == {tenant.pk, other_tenant.pk}


@postgres_only
@pytest.mark.django_db(transaction=True)
def test_in_a_transaction_the_scope_is_sent_once_and_again_when_it_changes_or_a_savepoint_undoes_it(
    tenant, other_tenant
):
    with tenant_scope(tenant), transaction.atomic():
        sent = connection.hitl_scopes_sent
        for _ in range(3):
            assert queues_seen() == {tenant.pk}
        assert connection.hitl_scopes_sent == sent + 1
        with tenant_scope(other_tenant):
            assert queues_seen() == {other_tenant.pk}
        assert queues_seen() == {tenant.pk}
        assert connection.hitl_scopes_sent == sent + 3
        try:
            with transaction.atomic(), tenant_scope(other_tenant):
                assert queues_seen() == {other_tenant.pk}
                raise RuntimeError("roll the savepoint back")
        except RuntimeError:
            pass
        assert queues_seen() == {tenant.pk}  # the set_config after the savepoint was undone with it
    with no_tenant():
        assert queues_seen() == set()  # the commit ended the transaction's setting


def plan_settings() -> tuple[str, str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_setting('plan_cache_mode'), current_setting('synchronous_commit')")
        return cursor.fetchone()


@postgres_only
@pytest.mark.django_db(transaction=True)
def test_statement_settings_go_with_an_autocommitted_statement_only(tenant):
    with tenant_scope(tenant):
        with statement_settings(plan_cache_mode="force_generic_plan", synchronous_commit="off"):
            assert plan_settings() == ("force_generic_plan", "off")
        assert plan_settings() == ("auto", "on")  # transaction-local: they ended with their statement
        with transaction.atomic(), statement_settings(synchronous_commit="off"):
            assert plan_settings() == ("auto", "on")  # a caller's transaction keeps its own


@postgres_only
@pytest.mark.django_db(transaction=True)
def test_the_claim_runs_on_its_generic_plan_not_a_new_plan_each_time(tenant, predictable_policy):
    from reviews.services import output_ingest_batch
    from reviews.services.claims import reviewer_for, task_claim
    from reviews.services.queues import queue_grant
    from tenants.services import PLATFORM_OPERATOR, membership_create
    from tests.factories import UserFactory, output_submission

    output_ingest_batch(tenant=tenant, submissions=[output_submission(n, application="held") for n in range(12)])
    person = UserFactory()
    membership_create(tenant=tenant, user=person, role="reviewer", reviewer_level=3)
    queue_grant(queue=Queue.objects.for_tenant(tenant).get(name="default"), user=person, actor=PLATFORM_OPERATOR)
    with tenant_scope(tenant):
        for _ in range(10):  # prepared at its first run (hitl_pipeline); PostgreSQL would make 5 custom plans
            assert task_claim(tenant=tenant, reviewer=reviewer_for(tenant=tenant, user=person)) is not None
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT generic_plans, custom_plans FROM pg_prepared_statements WHERE statement LIKE %s",
                ["%UPDATE \"reviews_reviewtask\" SET status = 'claimed'%"],
            )
            assert cursor.fetchall() == [(10, 0)]  # one statement, every run on the generic plan
