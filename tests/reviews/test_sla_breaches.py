"""SLA breaches act (issue 14, point 4): a late task escalates as its tier says, once; a
late held output is blocked or released where the tier says so; services hear it by webhook."""

import copy
from datetime import timedelta

import pytest
from django.utils import timezone

from hitl.errors import RuleViolationError
from policies.services import policy_publish
from reviews.models import Output, Queue, ReviewTask, TaskStatus, WebhookDelivery
from reviews.services.queues import queue_create
from reviews.services.sla import tasks_sla_sweep
from tests.conftest import make_client
from tests.reviews.conftest import GOOD_SCORES, claim, review, reviewer, submit

LATER = timedelta(days=40)  # past every tier's SLA


def set_breach(tenant, **per_tier):
    """The workflow policy with ``on_sla_breach`` set on the named tiers."""
    from policies.selectors import policy_get

    document = copy.deepcopy(policy_get(tenant=tenant).document)
    for tier in document["tiers"]:
        if tier["name"] in per_tier:
            tier["on_sla_breach"] = per_tier[tier["name"]]
    policy_publish(tenant=tenant, document=document, reason="SLA breach rules")


def hook(tenant):
    response = make_client(tenant, "admin").post(
        "/api/v1/webhooks", {"url": "http://127.0.0.1:9/nothing", "secret": "a-webhook-secret-of-20"}, format="json"
    )
    assert response.status_code == 201, response.json()


def tasks_of(output) -> list[ReviewTask]:
    return list(ReviewTask.unscoped.filter(output_id=output["id"]).order_by("created_at"))


def test_a_late_pending_task_needs_the_next_level_once_and_a_task_on_time_is_left(tenant, workflow):
    late, on_time = submit(workflow, 1, "medium-app"), submit(workflow, 2, "medium-app")
    ReviewTask.unscoped.filter(output_id=on_time["id"]).update(due_at=timezone.now() + LATER * 2)

    found = tasks_sla_sweep(now=timezone.now() + LATER)

    assert found == 1
    (task,) = tasks_of(late)
    assert (task.status, task.level_required) == (TaskStatus.PENDING, 2)
    assert task.sla_breached_at is not None
    assert "SLA passed" in task.escalation_reason and "level 2" in task.escalation_reason
    assert tasks_of(on_time)[0].sla_breached_at is None
    assert tasks_sla_sweep(now=timezone.now() + LATER) == 0  # found once
    assert tasks_of(late)[0].level_required == 2


def test_a_level_one_reviewer_no_longer_gets_it_and_a_level_two_does(tenant, workflow):
    submit(workflow, 1, "medium-app")
    junior, senior = reviewer(tenant, 1, "junior"), reviewer(tenant, 2, "senior")
    tasks_sla_sweep(now=timezone.now() + LATER)

    assert claim(junior).status_code == 204
    assert claim(senior).status_code == 200


def test_a_claimed_late_task_stays_with_its_reviewer(tenant, workflow):
    output = submit(workflow, 1, "medium-app")
    rita = reviewer(tenant, 1, "rita")
    assert claim(rita).status_code == 200

    tasks_sla_sweep(now=timezone.now() + LATER)

    (task,) = tasks_of(output)
    assert (task.status, task.claimed_by_id, task.level_required) == (TaskStatus.CLAIMED, rita.person.pk, 1)
    assert task.sla_breached_at is not None and "left with the reviewer" in task.escalation_reason


def test_a_tier_can_send_late_tasks_to_a_named_queue(tenant, workflow):
    queue_create(tenant=tenant, name="late-desk")
    set_breach(tenant, medium={"escalate": "queue", "queue": "late-desk"})
    output = submit(workflow, 1, "medium-app")

    tasks_sla_sweep(now=timezone.now() + LATER)

    (task,) = tasks_of(output)
    assert task.queue_id == Queue.objects.for_tenant(tenant).get(name="late-desk").pk
    assert task.level_required == 1 and "moved to queue 'late-desk'" in task.escalation_reason


def test_a_queue_that_does_not_exist_is_refused_when_the_policy_is_published(tenant, workflow):
    with pytest.raises(RuleViolationError) as refused:
        set_breach(tenant, medium={"escalate": "queue", "queue": "nowhere"})
    assert "no queue named 'nowhere'" in refused.value.fields["tiers.1.on_sla_breach.queue"][0]
    response = make_client(tenant, "admin").put(
        "/api/v1/policy",
        {"default_tier": "low", "tiers": [{"name": "low", "review_rate": 1.0, "mode": "parallel", "sla_minutes": 5,
                                          "on_sla_breach": {"escalate": "queue"}}]},
        format="json",
    )  # fmt: skip
    assert response.status_code == 422
    assert "name a queue exactly when escalate is 'queue'" in response.json()["message"]


@pytest.mark.parametrize(("sequential", "delivery"), [("block", "block"), ("release", "deliver"), ("hold", "hold")])
def test_a_late_held_output_is_blocked_released_or_held_as_its_tier_says_and_the_service_hears_it(
    tenant, workflow, sequential, delivery
):
    set_breach(tenant, high={"escalate": "none", "sequential": sequential})
    hook(tenant)
    output = submit(workflow, 1, "high-app")
    assert output["delivery"] == "hold"

    tasks_sla_sweep(now=timezone.now() + LATER)

    assert Output.unscoped.get(pk=output["id"]).delivery == delivery
    read = make_client(tenant, "service").get(f"/api/v1/outputs/{output['id']}").json()
    assert read["delivery"] == delivery and read["status"] == "pending_review"
    (sent,) = WebhookDelivery.unscoped.filter(output_id=output["id"])
    assert sent.event == "task.sla_breached"
    assert sent.payload["output"]["delivery"] == delivery
    assert [task["level_required"] for task in sent.payload["tasks"]] == [2]  # escalate none: high's own level


def test_a_person_still_decides_a_blocked_late_output(tenant, workflow):
    set_breach(tenant, high={"sequential": "block"})
    output = submit(workflow, 1, "high-app")
    tasks_sla_sweep(now=timezone.now() + LATER)
    assert Output.unscoped.get(pk=output["id"]).delivery == "block"

    specialist = reviewer(tenant, 3, "spec")  # high needs level 2; the breach raised it to 3
    task = claim(specialist).json()
    assert review(specialist, task["id"], decision="approve", scores=GOOD_SCORES).status_code == 201

    decided = Output.unscoped.get(pk=output["id"])
    assert (decided.decision, decided.delivery) == ("approved", "deliver")


def test_each_tenant_late_tasks_follow_its_own_policy_and_reach_only_its_own_endpoints(tenant, other_tenant, workflow):
    from tests.reviews.conftest import workflow as workflow_fixture

    other_workflow = workflow_fixture.__wrapped__(other_tenant)
    set_breach(tenant, high={"sequential": "release"})
    hook(tenant)
    hook(other_tenant)
    mine, theirs = submit(workflow, 1, "high-app"), submit(other_workflow, 1, "high-app")

    assert tasks_sla_sweep(now=timezone.now() + LATER) == 2

    assert Output.unscoped.get(pk=mine["id"]).delivery == "deliver"
    assert Output.unscoped.get(pk=theirs["id"]).delivery == "hold"  # the other tenant's policy holds
    assert {d.tenant_id for d in WebhookDelivery.unscoped.filter(output_id=mine["id"])} == {tenant.pk}
    assert {d.tenant_id for d in WebhookDelivery.unscoped.filter(output_id=theirs["id"])} == {other_tenant.pk}


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_the_sweep_leaves_a_late_task_whose_output_a_review_holds_for_the_next_run(tenant, workflow):
    """A review locks the output, then its task (``_task_and_output_for_update``). The sweep locked
    the task, then waited to write the output's delivery: with a review between its two locks,
    each waited for the other (PostgreSQL failed one of them). The sweep locks the output with
    the task, skipping both while a review holds either: the next run finds the task."""
    from tests.concurrency import other_transaction

    set_breach(tenant, high={"escalate": "none", "sequential": "block"})
    output = submit(workflow, 1, "high-app")
    (task,) = tasks_of(output)
    output_first = [("SELECT 1 FROM reviews_output WHERE id = %s FOR NO KEY UPDATE", [output["id"]])]
    then_task = [("SELECT 1 FROM reviews_reviewtask WHERE id = %s FOR NO KEY UPDATE", [task.pk])]
    with other_transaction(now=output_first, then=then_task):  # a review's locks, in its order
        found = tasks_sla_sweep(now=timezone.now() + LATER)
    assert found == 0
    assert tasks_sla_sweep(now=timezone.now() + LATER) == 1
    assert Output.unscoped.get(pk=output["id"]).delivery == "block"
