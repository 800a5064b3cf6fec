"""Which queue, which rubric and how many tasks a sampled output gets.

Read once per configuration token (like the compiled policy), so routing a batch
adds no query: queues, rubrics and application rubrics change the token.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from hitl.cache import config_cache, weight_of
from policies.engine import CompiledPolicy, Decision, sampling_draw
from policies.models import Application, Rubric
from reviews.models import Queue, TaskPurpose, WebhookEndpoint
from tenants.models import Tenant


@dataclass(frozen=True, slots=True)
class QueueRoute:
    id: int
    name: str
    tiers: frozenset[str]
    applications: frozenset[str]
    priority: int
    min_reviewer_level: int

    def accepts(self, tier: str, application: str) -> bool:
        return (not self.tiers or tier in self.tiers) and (not self.applications or application in self.applications)


@dataclass(frozen=True, slots=True)
class RoutingTable:
    queues: tuple[QueueRoute, ...]  # most preferred first
    fallback: QueueRoute | None
    rubrics: dict[str, tuple[int, int]]  # rubric name -> (id, version)
    application_rubrics: dict[str, tuple[int, int]]  # application -> (rubric id, version)
    has_webhooks: bool = False  # any active webhook endpoint: decisions skip the lookup when not

    def queue_for(self, tier: str, application: str) -> QueueRoute | None:
        for queue in self.queues:
            if queue.accepts(tier, application):
                return queue
        return self.fallback


@dataclass(frozen=True, slots=True)
class PlannedTask:
    queue_id: int
    purpose: str
    level_required: int
    priority: int
    due_at: datetime
    rubric_id: int | None
    rubric_version: int | None


def plan_tasks(
    *,
    policy: CompiledPolicy,
    routing: RoutingTable,
    decision: Decision,
    application: str,
    external_id: str,
    received_at: datetime,
    purpose: str | None = None,
) -> list[PlannedTask]:
    """One task per required approval, each at its level (multi-level approval: the
    k-th approval needs level min_reviewer_level + k - 1, at most 3), plus a
    deliberate overlap task for a share of single-approval tiers."""
    tier = policy.tiers[decision.risk_tier]
    queue = routing.queue_for(decision.risk_tier, application)
    if queue is None:
        return []
    rubric = routing.application_rubrics.get(application) or (routing.rubrics.get(tier.rubric) if tier.rubric else None)
    rubric_id, rubric_version = rubric if rubric else (None, None)
    base_level = max(tier.min_reviewer_level, queue.min_reviewer_level)
    due_at = received_at + timedelta(minutes=tier.sla_minutes)
    if purpose == TaskPurpose.USER_FEEDBACK:
        return [PlannedTask(queue.id, purpose, base_level, queue.priority, due_at, rubric_id, rubric_version)]
    tasks = [
        PlannedTask(
            queue.id,
            TaskPurpose.APPROVAL,
            min(base_level + slot, 3),
            queue.priority,
            due_at,
            rubric_id,
            rubric_version,
        )
        for slot in range(tier.required_approvals)
    ]
    if tier.required_approvals == 1 and tier.overlap_rate > 0:
        draw = sampling_draw(
            purpose="overlap", tenant_id=policy.tenant_id, external_id=external_id, policy_version=policy.version
        )
        if draw < tier.overlap_rate:
            tasks.append(
                PlannedTask(
                    queue.id, TaskPurpose.OVERLAP, base_level, queue.priority, due_at, rubric_id, rubric_version
                )
            )
    return tasks


_UNNAMED_APPLICATION = object()  # an application no queue names and no Application row gives a rubric


def queue_ids_using_rubric(*, policy: CompiledPolicy, routing: RoutingTable, rubric_id: int) -> set[int]:
    """The queues whose tasks :func:`plan_tasks` would score against the rubric, today.

    An output's rubric is its application's, else its tier's; its queue is the first that
    accepts its tier and application. So every tier is tried with every application that
    routes or scores differently (those queues name, those with their own rubric) and with
    one that none names; pure over the policy and the routing table.
    """
    applications = {name for queue in routing.queues for name in queue.applications}
    applications |= set(routing.application_rubrics)
    rubric_names = {name for name, (pk, _) in routing.rubrics.items() if pk == rubric_id}
    used: set[int] = set()
    for tier in policy.tiers.values():
        for application in (*sorted(applications), _UNNAMED_APPLICATION):
            own = routing.application_rubrics.get(application)  # (rubric id, version): it wins over the tier's
            uses = own[0] == rubric_id if own is not None else tier.rubric in rubric_names
            queue = routing.queue_for(tier.name, application) if uses else None
            if queue is not None:
                used.add(queue.id)
    return used


def routing_table(*, tenant: Tenant) -> RoutingTable:
    return _routing(tenant.pk, str(tenant.config_token))


@config_cache("routing tables")
def _routing(tenant_id: int, config_token: str) -> tuple[RoutingTable, int]:
    tenant = Tenant(pk=tenant_id)
    queue_rows = list(
        Queue.objects.for_tenant(tenant)
        .order_by("-priority", "name")
        .values("id", "name", "tiers", "applications", "priority", "min_reviewer_level")
    )
    queues = [
        QueueRoute(
            id=queue["id"],
            name=queue["name"],
            tiers=frozenset(queue["tiers"] or ()),
            applications=frozenset(queue["applications"] or ()),
            priority=queue["priority"],
            min_reviewer_level=queue["min_reviewer_level"],
        )
        for queue in queue_rows
    ]
    # Specific queues (naming tiers or applications) before catch-all ones.
    specific = tuple(queue for queue in queues if queue.tiers or queue.applications)
    catch_all = [queue for queue in queues if not queue.tiers and not queue.applications]
    rubrics = {
        row["name"]: (row["id"], row["version"])
        for row in Rubric.objects.for_tenant(tenant).values("id", "name", "version")
    }
    application_rubrics = {
        row["name"]: (row["rubric_id"], row["rubric__version"])
        for row in Application.objects.for_tenant(tenant)
        .filter(rubric__isnull=False)
        .values("name", "rubric_id", "rubric__version")
    }
    # With no catch-all queue left (an admin narrowed them all), the "default" queue
    # (or any queue) still takes what nothing else accepts: a sampled output never
    # waits without a task.
    by_name = {queue.name: queue for queue in queues}
    fallback = catch_all[0] if catch_all else by_name.get("default") or (queues[0] if queues else None)
    table = RoutingTable(
        queues=specific,
        fallback=fallback,
        rubrics=rubrics,
        application_rubrics=application_rubrics,
        has_webhooks=WebhookEndpoint.objects.for_tenant(tenant).filter(is_active=True).exists(),
    )
    return table, weight_of(queue_rows, rubrics, application_rubrics)
