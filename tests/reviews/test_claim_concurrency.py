"""Many reviewers claiming from one queue at once on PostgreSQL: every task is held by exactly one."""

import contextlib
import threading

import pytest
from django.db import connection

from hitl import tenancy
from reviews.models import Queue, ReviewTask
from reviews.services.claims import reviewer_for, task_claim
from reviews.services.queues import queue_grant
from tenants.services import PLATFORM_OPERATOR, membership_create
from tests.factories import UserFactory

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_sixteen_reviewers_claim_forty_tasks_without_a_double_assignment(tenant, predictable_policy):
    from reviews.services import output_ingest_batch
    from tests.factories import output_submission

    # 20 critical outputs: two tasks each, at levels 2 and 3.
    output_ingest_batch(tenant=tenant, submissions=[output_submission(n, application="held") for n in range(20)])
    queue = Queue.objects.for_tenant(tenant).get(name="default")
    people = []
    for number in range(16):
        person = UserFactory(username=f"reviewer{number}")
        membership_create(tenant=tenant, user=person, role="reviewer", reviewer_level=3)
        queue_grant(queue=queue, user=person, actor=PLATFORM_OPERATOR)
        people.append(person)
    barrier = threading.Barrier(len(people))
    claimed: dict[str, list] = {}
    lock = threading.Lock()

    def worker(person):
        barrier.wait()
        try:
            reviewer = reviewer_for(tenant=tenant, user=person)
            mine = []
            while (task := task_claim(tenant=tenant, reviewer=reviewer)) is not None:
                mine.append((task["id"], task["output_id"]))
            with lock:
                claimed[person.username] = mine
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(person,)) for person in people]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    all_claims = [task_id for mine in claimed.values() for task_id, _ in mine]
    assert len(all_claims) == 40 and len(set(all_claims)) == 40
    for mine in claimed.values():  # nobody holds two tasks of one output
        outputs = [output_id for _, output_id in mine]
        assert len(outputs) == len(set(outputs))
    rows = ReviewTask.objects.for_tenant(tenant).values_list("status", "claimed_by__username")
    assert {status for status, _ in rows} == {"claimed"}
    assert len(claimed) == 16 and sum(len(mine) > 0 for mine in claimed.values()) >= 2


def test_a_reject_and_an_approve_at_once_never_deadlock(tenant, predictable_policy):
    from hitl.errors import ConflictError
    from reviews.models import Output
    from reviews.services import output_ingest_batch
    from reviews.services.review import review_submit
    from tests.factories import output_submission

    output_ingest_batch(tenant=tenant, submissions=[output_submission(n, application="held") for n in range(6)])
    queue = Queue.objects.for_tenant(tenant).get(name="default")
    people = []
    for name in ("rejecter", "approver"):
        person = UserFactory(username=name)
        membership_create(tenant=tenant, user=person, role="reviewer", reviewer_level=3)
        queue_grant(queue=queue, user=person, actor=PLATFORM_OPERATOR)
        people.append(person)
    leases = {person.username: [] for person in people}
    for person in people:
        reviewer = reviewer_for(tenant=tenant, user=person)
        while (task := task_claim(tenant=tenant, reviewer=reviewer)) is not None:
            leases[person.username].append(task["id"])
    errors: list = []

    def work(person, verdict):
        try:
            for task_id in leases[person.username]:
                # ConflictError: the other side decided first and cancelled this task (a clean 409).
                with contextlib.suppress(ConflictError):
                    review_submit(tenant=tenant, user=person, task_id=task_id, decision=verdict)
        except Exception as error:
            errors.append(error)
        finally:
            connection.close()

    threads = [
        threading.Thread(target=work, args=(people[0], "reject")),
        threading.Thread(target=work, args=(people[1], "approve")),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert set(Output.objects.for_tenant(tenant).values_list("decision", flat=True)) == {"rejected"}


def test_a_review_locks_the_output_before_the_task(tenant, predictable_policy):
    """The order every deciding path takes, so that a reject and an approve cannot deadlock."""
    from django.db import OperationalError, transaction

    from reviews.models import Output
    from reviews.services import output_ingest_batch
    from reviews.services.review import review_submit
    from tests.factories import output_submission

    output_ingest_batch(tenant=tenant, submissions=[output_submission(1, application="held")])
    queue = Queue.objects.for_tenant(tenant).get(name="default")
    person = UserFactory(username="locker")
    membership_create(tenant=tenant, user=person, role="reviewer", reviewer_level=3)
    queue_grant(queue=queue, user=person, actor=PLATFORM_OPERATOR)
    task = task_claim(tenant=tenant, reviewer=reviewer_for(tenant=tenant, user=person))
    task_held, let_go, errors = threading.Event(), threading.Event(), []

    def hold_the_task():
        try:
            with transaction.atomic():
                ReviewTask.objects.for_tenant(tenant).select_for_update().get(pk=task["id"])
                task_held.set()
                let_go.wait(10)
        finally:
            connection.close()

    def review_it():
        try:
            review_submit(tenant=tenant, user=person, task_id=task["id"], decision="approve")
        except Exception as error:
            errors.append(error)
        finally:
            connection.close()

    holder = threading.Thread(target=hold_the_task)
    holder.start()
    task_held.wait(10)
    reviewing = threading.Thread(target=review_it)
    reviewing.start()
    try:
        # Wait until the review waits for the task's lock (as the owner: the application's
        # role sees no other session's wait events in pg_stat_activity).
        with tenancy.as_owner(), connection.cursor() as cursor:
            for _ in range(500):
                cursor.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND wait_event_type = 'Lock'"
                )
                if cursor.fetchone()[0]:
                    break
                threading.Event().wait(0.01)
            else:
                pytest.fail("the review never waited for the task's lock")
        # ... by then it holds the output's.
        with pytest.raises(OperationalError, match="could not obtain lock"), transaction.atomic():
            Output.objects.for_tenant(tenant).select_for_update(nowait=True).get(pk=task["output_id"])
    finally:
        let_go.set()
        holder.join()
        reviewing.join()
    assert errors == []
    assert Output.objects.for_tenant(tenant).get(pk=task["output_id"]).decision == ""  # one of two approvals
    assert ReviewTask.objects.for_tenant(tenant).get(pk=task["id"]).status == "done"


def test_one_person_claiming_from_several_connections_never_holds_two_tasks_of_one_output(tenant, predictable_policy):
    """Critical outputs need two approvals by distinct people: one person claiming in
    parallel (several tabs, a script) must get at most one task of each output."""
    from reviews.services import output_ingest_batch
    from tests.factories import output_submission

    output_ingest_batch(tenant=tenant, submissions=[output_submission(n, application="held") for n in range(12)])
    queue = Queue.objects.for_tenant(tenant).get(name="default")
    person = UserFactory(username="eager")
    membership_create(tenant=tenant, user=person, role="reviewer", reviewer_level=3)
    queue_grant(queue=queue, user=person, actor=PLATFORM_OPERATOR)
    reviewer = reviewer_for(tenant=tenant, user=person)
    connections = 6
    barrier = threading.Barrier(connections)
    claimed, errors, lock = [], [], threading.Lock()

    def worker():
        try:
            barrier.wait()
            while (task := task_claim(tenant=tenant, reviewer=reviewer)) is not None:
                with lock:
                    claimed.append((task["id"], task["output_id"]))
        except Exception as error:
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    outputs = [output_id for _, output_id in claimed]
    assert len(outputs) == 12 and len(set(outputs)) == 12  # one task of each output, never two
    held = ReviewTask.objects.for_tenant(tenant).filter(status="claimed", claimed_by=person)
    assert held.count() == 12
    # The second task of every output is still free for someone else.
    assert ReviewTask.objects.for_tenant(tenant).filter(status="pending").count() == 12
