"""SLA breaches: tasks still open at their due time act, once each (issue 14, point 4).

A periodic task (every minute: ``CELERY_BEAT_SCHEDULE``, or the embedded beat without a
broker) runs :func:`tasks_sla_sweep`. Each open task past its due time is found once
(``sla_breached_at`` records when, and counts it against the tier's SLA compliance) and
acts as its tier's ``on_sla_breach`` says, under the policy version that classified its
output (the one its tasks were planned with):

- ``escalate``: ``next_level`` (default) makes a pending task need a reviewer one level up
  (at most 3); ``queue`` moves it to the named queue; ``none`` leaves it. A claimed task
  stays with the reviewer working on it: taking it away would waste the work under way.
- ``sequential``: a held output whose approval is late stays held (``hold``, default), or
  the service is told not to deliver it (``block``) or that it may (``release``) while the
  review goes on; a person's decision later decides as usual.
- Every breached output's services hear it: one ``task.sla_breached`` webhook per output
  and sweep, naming its late tasks and what was done.
"""

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from hitl.db import bulk_update
from hitl.enqueue import enqueue_on_commit
from hitl.errors import NotFoundError
from policies.schemas import SlaBreachSpec
from policies.selectors import compiled_policy_version
from reviews.models import (
    Delivery,
    Output,
    Queue,
    ReviewTask,
    TaskPurpose,
    TaskStatus,
    WebhookDelivery,
    WebhookEndpoint,
)
from reviews.routing import routing_table
from reviews.services.webhooks import decision_payload
from tenants.audit import SYSTEM, audit_record_batch
from tenants.auditchain import digest, format_time
from tenants.models import Tenant

SWEEP_BATCH = 500
EVENT = "task.sla_breached"
_DEFAULT = SlaBreachSpec()


@dataclass(frozen=True, slots=True)
class BreachAction:
    """What the sweep did to one late task."""

    task_id: str
    queue_id: int
    level_required: int
    note: str


def tasks_sla_sweep(*, now: datetime | None = None, batch: int = SWEEP_BATCH) -> int:
    """Act on every open task past its due time, once each; returns how many were late.

    All tenants by design (a periodic sweep). Works in batches, each in its own
    transaction, whose tasks are locked with their outputs, SKIP LOCKED: two sweeps at once
    (two web processes' embedded beats) never act on one task twice, a task whose output a
    review holds waits for the next run, and a crash loses nothing
    (the next run finds what was not committed). Idempotent: a task is found once.
    """
    now = now or timezone.now()
    total = 0
    while True:
        with transaction.atomic():
            tasks = list(
                # The output's row with its task's, the output first (PostgreSQL locks in the order
                # named), as a review locks them: a sweep that locked the task alone, then waited to
                # write the output's delivery, deadlocked with a review between its two locks.
                ReviewTask.unscoped.select_for_update(skip_locked=True, of=("output", "self"), no_key=True)
                .filter(
                    status__in=(TaskStatus.PENDING, TaskStatus.CLAIMED),
                    sla_breached_at__isnull=True,
                    due_at__lt=now,
                    assigned_to__isnull=True,  # a gold item's task is no output's: nothing to breach or send
                )
                .select_related("output", "tenant")
                .order_by("due_at")[:batch]
            )
            by_tenant: dict[int, list[ReviewTask]] = defaultdict(list)
            for task in tasks:
                by_tenant[task.tenant_id].append(task)
            for tenant_id in sorted(by_tenant):  # the tenants' audit chains locked in one order
                _breach(by_tenant[tenant_id][0].tenant, by_tenant[tenant_id], now)
        total += len(tasks)
        if len(tasks) < batch:
            return total


def _tier_breach(tenant: Tenant, output: Output) -> SlaBreachSpec:
    if output.policy_version is None:
        return _DEFAULT
    try:
        tier = compiled_policy_version(tenant=tenant, version=output.policy_version).tiers.get(output.risk_tier)
    except NotFoundError:
        return _DEFAULT
    return tier.sla_breach if tier is not None else _DEFAULT


def _breach(tenant: Tenant, tasks: list[ReviewTask], now: datetime) -> None:
    """One tenant's late tasks of a batch: a statement each for queues, tasks, outputs and deliveries."""
    specs = {task.pk: _tier_breach(tenant, task.output) for task in tasks}
    wanted = {spec.queue for spec in specs.values() if spec.escalate == "queue"}
    queues = dict(Queue.objects.for_tenant(tenant).filter(name__in=wanted).values_list("name", "id")) if wanted else {}
    task_rows, output_rows, late_by_output = [], {}, defaultdict(list)
    for task in tasks:
        output = task.output
        spec = specs[task.pk]
        level, queue_id = task.level_required, task.queue_id
        note = f"SLA passed (due {task.due_at.isoformat()})"
        if task.status == TaskStatus.PENDING and spec.escalate == "next_level":
            if level < 3:
                level += 1
                note += f": needs a level {level} reviewer now"
            else:
                note += ": already at the highest level"
        elif task.status == TaskStatus.PENDING and spec.escalate == "queue":
            target = queues.get(spec.queue)
            if target is None:
                note += f": queue '{spec.queue}' no longer exists, left in place"
            elif target != queue_id:
                queue_id = target
                note += f": moved to queue '{spec.queue}'"
        elif task.status == TaskStatus.CLAIMED:
            note += ": left with the reviewer working on it"
        reason = f"{task.escalation_reason}\n{note}".strip() if task.escalation_reason else note
        task_rows.append((task.pk, now, level, queue_id, reason))
        late_by_output[output.pk].append(BreachAction(str(task.pk), queue_id, level, note))
        held = output.delivery == Delivery.HOLD and not output.decision and task.purpose == TaskPurpose.APPROVAL
        if held and spec.sequential != "hold":
            output.delivery = Delivery.BLOCK if spec.sequential == "block" else Delivery.DELIVER
            output_rows[output.pk] = (output.pk, output.delivery)
    bulk_update(ReviewTask, ("sla_breached_at", "level_required", "queue", "escalation_reason"), task_rows)
    bulk_update(Output, ("delivery",), list(output_rows.values()))
    _notify(tenant, {task.output.pk: task.output for task in tasks}, late_by_output, now)
    # One audit event for the tenant's late tasks of the batch, last: it takes the chain's lock.
    audit_record_batch(
        tenant=tenant,
        actor=SYSTEM,
        kind="task.sla_breached",
        object_type="task",
        digests=[
            (
                task_id,
                digest(
                    {"id": str(task_id), "breached_at": format_time(at), "level_required": level, "queue": queue_id,
                     "escalation_reason": reason}
                ),
            )
            for task_id, at, level, queue_id, reason in task_rows
        ],
        data={"deliveries": {str(output_id): delivery for output_id, delivery in output_rows.values()}},
    )  # fmt: skip


def _notify(tenant: Tenant, outputs: dict, late_by_output: dict, now: datetime) -> None:
    if not routing_table(tenant=tenant).has_webhooks:
        return
    endpoints = list(WebhookEndpoint.objects.for_tenant(tenant).filter(is_active=True).values_list("pk", flat=True))
    rows = []
    for output_id, actions in late_by_output.items():
        payload = decision_payload(outputs[output_id], EVENT)
        payload["tasks"] = [
            {"id": action.task_id, "level_required": action.level_required, "queue_id": action.queue_id,
             "what_happened": action.note}
            for action in actions
        ]  # fmt: skip
        payload["breached_at"] = now.isoformat()
        rows += [
            WebhookDelivery(
                tenant=tenant, endpoint_id=endpoint, output_id=output_id, event=EVENT, payload=payload,
                next_attempt_at=now, created_at=now,
            )
            for endpoint in endpoints
        ]  # fmt: skip
    if not rows:
        return
    ids = [str(delivery.pk) for delivery in WebhookDelivery.objects.for_tenant(tenant).bulk_create(rows)]

    def send() -> None:
        from reviews.tasks import webhook_deliver_task

        for delivery_id in ids:  # the first broker error ends it: the webhook sweep sends the rest
            webhook_deliver_task.delay(delivery_id)

    enqueue_on_commit(send, what=f"{len(ids)} SLA-breach webhook deliveries")
