"""Reads for outputs; every one takes the tenant."""

from dataclasses import dataclass

from django.db.models import Count, Min, Q, QuerySet

from hitl.errors import NotFoundError
from policies.selectors import judge_get
from reviews.models import (
    Decision,
    Judgement,
    JudgementResult,
    Output,
    Queue,
    Review,
    ReviewTask,
    TaskStatus,
    WebhookEndpoint,
)
from tenants.models import Tenant


def output_get_for_tenant(*, tenant: Tenant, output_id) -> Output:
    """The tenant's output, or NotFoundError: missing and foreign look the same."""
    output = Output.objects.for_tenant(tenant).select_related("decided_by").filter(pk=output_id).first()
    if output is None:
        raise NotFoundError("Output not found.")
    return output


def output_judgements(*, tenant: Tenant, output_id) -> list[Judgement]:
    """The judges' verdicts on one output, by judge name."""
    return list(
        Judgement.objects.for_tenant(tenant).filter(output_id=output_id).select_related("judge").order_by("judge__name")
    )


# What a reviewer is shown of a claimed task (the claim's SQL returns the same columns).
CLAIMED_TASK_COLUMNS = (
    "id",
    "output_id",
    "queue_id",
    "purpose",
    "status",
    "level_required",
    "due_at",
    "lease_expires_at",
    "escalation_reason",
    "rubric_id",
    "rubric_version",
)
CLAIMED_OUTPUT_COLUMNS = (
    "external_id",
    "application",
    "input",
    "output",
    "trace",
    "metadata",
    "model",
    "confidence",
    "risk_tier",
    "policy_version",
    "decision_reason",
    "received_at",
)


def task_details(*, tenant: Tenant, task_id) -> dict:
    """A task as the reviewer sees it: with its output, queue and rubric."""
    task = ReviewTask.objects.for_tenant(tenant).select_related("output", "queue", "rubric").filter(pk=task_id).first()
    if task is None:
        raise NotFoundError("Task not found.")
    details = {column: getattr(task, column) for column in CLAIMED_TASK_COLUMNS}
    details["output"] = {column: getattr(task.output, column) for column in CLAIMED_OUTPUT_COLUMNS}
    details["output"]["id"] = task.output_id
    details.update(queue=task.queue.name, rubric_name=task.rubric.name if task.rubric_id else None)
    return details


def output_list(*, tenant: Tenant) -> QuerySet[Output]:
    return Output.objects.for_tenant(tenant).defer("input", "output", "trace", "content_hash")


def webhook_list(*, tenant: Tenant):
    return WebhookEndpoint.objects.for_tenant(tenant).filter(is_active=True).order_by("created_at")


@dataclass(frozen=True, slots=True)
class JudgeAgreement:
    """A judge against people's final decisions on the same outputs (a 2x2 table)."""

    judge: int
    version: int | None
    both_pass: int
    both_fail: int
    judge_pass_human_fail: int
    judge_fail_human_pass: int
    judge_errors: int

    @property
    def compared(self) -> int:
        return self.both_pass + self.both_fail + self.judge_pass_human_fail + self.judge_fail_human_pass

    @property
    def agreement_rate(self) -> float | None:
        return (self.both_pass + self.both_fail) / self.compared if self.compared else None

    @property
    def cohens_kappa(self) -> float | None:
        """(p_o - p_e) / (1 - p_e), with p_e from each side's own pass rate; None when p_e is 1
        (both always said the same one thing: agreement beyond chance is undefined)."""
        n = self.compared
        if not n:
            return None
        judge_pass = (self.both_pass + self.judge_pass_human_fail) / n
        human_pass = (self.both_pass + self.judge_fail_human_pass) / n
        expected = judge_pass * human_pass + (1 - judge_pass) * (1 - human_pass)
        if expected >= 1:
            return None
        return (self.agreement_rate - expected) / (1 - expected)


def judge_agreement(*, tenant: Tenant, judge_id: int, version: int | None = None) -> JudgeAgreement:
    """One aggregate query over the judge's verdicts on outputs that people decided.

    Approved counts as the people's pass; rejected and corrected (not fit as it was)
    as their fail.
    """
    judge = judge_get(tenant=tenant, judge_id=judge_id)
    verdicts = Judgement.objects.for_tenant(tenant).filter(judge=judge, output__decided_by__isnull=False)
    if version is not None:
        verdicts = verdicts.filter(judge_version=version)
    human_pass = Q(output__decision=Decision.APPROVED)
    human_fail = Q(output__decision__in=[Decision.REJECTED, Decision.CORRECTED])
    judge_pass = Q(result=JudgementResult.PASS)
    judge_fail = Q(result=JudgementResult.FAIL)
    counts = verdicts.aggregate(
        both_pass=Count("id", filter=judge_pass & human_pass),
        both_fail=Count("id", filter=judge_fail & human_fail),
        judge_pass_human_fail=Count("id", filter=judge_pass & human_fail),
        judge_fail_human_pass=Count("id", filter=judge_fail & human_pass),
        judge_errors=Count("id", filter=Q(result=JudgementResult.ERROR)),
    )
    return JudgeAgreement(judge=judge.pk, version=version, **counts)


def queues_overview(*, tenant: Tenant, queue_ids, level: int, now) -> list[dict]:
    """The queues a reviewer may work: pending tasks at their level, the oldest due time, how many are late."""
    queues = {queue.pk: queue for queue in Queue.objects.for_tenant(tenant).filter(pk__in=queue_ids)}
    counts = {
        row["queue_id"]: row
        for row in ReviewTask.objects.for_tenant(tenant)
        .filter(queue_id__in=queue_ids, status=TaskStatus.PENDING, level_required__lte=level)
        .values("queue_id")
        .annotate(pending=Count("id"), oldest_due=Min("due_at"), late=Count("id", filter=Q(due_at__lt=now)))
    }
    overview = []
    for queue_id, queue in queues.items():
        row = counts.get(queue_id, {})
        overview.append(
            {
                "queue": queue,
                "pending": row.get("pending", 0),
                "oldest_due": row.get("oldest_due"),
                "late": row.get("late", 0),
            }
        )
    return sorted(
        overview, key=lambda item: (item["oldest_due"] is None, item["oldest_due"] or now, item["queue"].name)
    )


def task_held_by(*, tenant: Tenant, task_id, user) -> ReviewTask:
    """The task leased to ``user``, with its output, queue and rubric; NotFoundError otherwise.

    Another tenant's task, someone else's and one no longer leased all look the same.
    """
    task = (
        ReviewTask.objects.for_tenant(tenant)
        .select_related("output", "queue", "rubric")
        .filter(pk=task_id, status=TaskStatus.CLAIMED, claimed_by=user)
        .first()
    )
    if task is None:
        raise NotFoundError("Task not found.")
    return task


def reviews_by(*, tenant: Tenant, user) -> QuerySet[Review]:
    """One person's reviews, newest first, with the output each was about."""
    return (
        Review.objects.for_tenant(tenant)
        .filter(reviewer=user)
        .select_related("output")
        .only(
            "id",
            "decision",
            "scores",
            "comment",
            "time_spent_seconds",
            "created_at",
            "purpose",
            "output__id",
            "output__external_id",
            "output__application",
            "output__risk_tier",
            "output__decision",
        )
        .order_by("-created_at")
    )
