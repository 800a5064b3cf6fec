"""Reads for outputs; every one takes the tenant."""

from dataclasses import dataclass
from datetime import timedelta

from django.core.exceptions import ValidationError
from django.db.models import Case, CharField, Count, F, Min, Q, QuerySet, Value, When

from hitl.errors import NotFoundError
from policies.selectors import judge_get
from reviews.models import (
    Certification,
    CertificationStatus,
    Decision,
    DeliveryStatus,
    Exam,
    GoldTask,
    Judgement,
    JudgementResult,
    Output,
    OutputStatus,
    Queue,
    QueueAccessEvent,
    QueueGroupObjectPermission,
    QueueUserObjectPermission,
    Review,
    ReviewTask,
    TaskStatus,
    WebhookDelivery,
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
    "session_id",
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


# Sessions: the outputs of one conversation or agent run, in the order received.
SESSION_TURNS_SHOWN = 20  # earlier turns shown with a task (the page and the claim's payload): the last 20
SESSION_TURNS_WHOLE = 200  # turns shown of a session scored whole (a rubric with scope "session")
SESSION_TURN_COLUMNS = (
    "id",
    "external_id",
    "application",
    "input",
    "output",
    "status",
    "delivery",
    "decision",
    "final_output",
    "model",
    "received_at",
)


def session_outputs(*, tenant: Tenant, session_id: str) -> QuerySet[Output]:
    """A session's outputs (the API pages them in received order); empty for no such session."""
    return Output.objects.for_tenant(tenant).filter(session_id=session_id).defer("trace", "content_hash")


@dataclass(frozen=True, slots=True)
class SessionShown:
    """What a reviewer sees of the session of the output under review."""

    session_id: str
    scope: str  # the rubric's: "output" (earlier turns shown for context) or "session" (scored whole)
    turns: list[dict]  # SESSION_TURN_COLUMNS, oldest first; ``current`` marks the output under review
    omitted: bool  # more turns exist than are shown (the oldest earlier ones, or past the whole-session bound)
    limit: int


def session_shown(*, tenant: Tenant, output: dict, scope: str = "output") -> SessionShown | None:
    """The turns of ``output``'s session a reviewer is shown (one query): the last
    ``SESSION_TURNS_SHOWN`` before it, or, when its rubric scores the whole session, every
    turn up to ``SESSION_TURNS_WHOLE``. None when the output belongs to no session.
    ``output`` needs ``id``, ``session_id`` and ``received_at``.
    """
    session_id = output.get("session_id")
    if not session_id:
        return None
    turns = Output.objects.for_tenant(tenant).filter(session_id=session_id).values(*SESSION_TURN_COLUMNS)
    if scope == "session":
        limit = SESSION_TURNS_WHOLE
        rows = list(turns.order_by("received_at", "id")[: limit + 1])
    else:
        limit = SESSION_TURNS_SHOWN
        before = Q(received_at__lt=output["received_at"]) | Q(received_at=output["received_at"], id__lt=output["id"])
        rows = list(turns.filter(before).order_by("-received_at", "-id")[: limit + 1])
    omitted = len(rows) > limit
    rows = rows[:limit]
    if scope != "session":
        rows.reverse()
    for row in rows:
        row["current"] = row["id"] == output["id"]
    return SessionShown(session_id=session_id, scope=scope, turns=rows, omitted=omitted, limit=limit)


def output_list(*, tenant: Tenant) -> QuerySet[Output]:
    """The tenant's outputs, not the copies of gold items shown to reviewers (docs/quality.md)."""
    return (
        Output.objects.for_tenant(tenant)
        .exclude(status=OutputStatus.GOLD)
        .defer("input", "output", "trace", "content_hash")
    )


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
    return JudgeAgreement(judge=judge.pk, version=version, **verdicts.aggregate(**_agreement_counts()))


def _agreement_counts() -> dict:
    human_pass = Q(output__decision=Decision.APPROVED)
    human_fail = Q(output__decision__in=[Decision.REJECTED, Decision.CORRECTED])
    judge_pass = Q(result=JudgementResult.PASS)
    judge_fail = Q(result=JudgementResult.FAIL)
    return {
        "both_pass": Count("id", filter=judge_pass & human_pass),
        "both_fail": Count("id", filter=judge_fail & human_fail),
        "judge_pass_human_fail": Count("id", filter=judge_pass & human_fail),
        "judge_fail_human_pass": Count("id", filter=judge_fail & human_pass),
        "judge_errors": Count("id", filter=Q(result=JudgementResult.ERROR)),
    }


def judge_agreements(*, tenant: Tenant, judge_ids) -> dict[int, JudgeAgreement]:
    """``judge_agreement`` of several judges (all their versions) in one grouped query."""
    ids = list(judge_ids)
    rows = (
        Judgement.objects.for_tenant(tenant)
        .filter(judge_id__in=ids, output__decided_by__isnull=False)
        .values("judge_id")
        .annotate(**_agreement_counts())
        .order_by()
    )
    found = {row.pop("judge_id"): row for row in rows}
    empty = dict.fromkeys(_agreement_counts(), 0)
    return {judge_id: JudgeAgreement(judge=judge_id, version=None, **found.get(judge_id, empty)) for judge_id in ids}


def queues_overview(*, tenant: Tenant, queue_ids, level: int, now) -> list[dict]:
    """The queues a reviewer may work: pending tasks at their level, the oldest due time, how many are late."""
    queues = {queue.pk: queue for queue in Queue.objects.for_tenant(tenant).filter(pk__in=queue_ids)}
    counts = {
        row["queue_id"]: row
        for row in ReviewTask.objects.for_tenant(tenant)
        .filter(queue_id__in=queue_ids, status=TaskStatus.PENDING, level_required__lte=level, assigned_to=None)
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


@dataclass(frozen=True, slots=True)
class MyReview:
    """One line of a reviewer's own history ("My reviews"): a review, or an answer to a task
    that was a gold item in disguise, shown alike (docs/quality.md: indistinguishable)."""

    at: object
    external_id: str
    application: str
    risk_tier: str
    decision: str
    scores: dict | None
    time_spent_seconds: int | None
    final_decision: str

    @property
    def decision_label(self) -> str:
        return Review.Verdict(self.decision).label if self.decision in Review.Verdict.values else self.decision


def my_review(row: dict) -> MyReview:
    """A row of :func:`reviews_by` for the page."""
    return MyReview(
        at=row["at"],
        external_id=row["external"],
        application=row["app"],
        risk_tier=row["tier"],
        decision=row["given"],
        scores=row["given_scores"],
        time_spent_seconds=row["seconds"],
        final_decision=row["final"],
    )


# What a gold answer told the reviewer the output became (reviews.services.gold.gold_answer_record:
# a single-approval output's outcome); an escalation decided nothing.
_GOLD_ANSWERED_AS = Case(
    When(answer_decision=Review.Verdict.APPROVE, then=Value(Decision.APPROVED)),
    When(answer_decision=Review.Verdict.REJECT, then=Value(Decision.REJECTED)),
    When(answer_decision=Review.Verdict.CORRECT, then=Value(Decision.CORRECTED)),
    default=Value(""),
    output_field=CharField(),
)


def reviews_by(*, tenant: Tenant, user) -> QuerySet:
    """One person's reviews, newest first, with the output each was about (rows for :func:`my_review`).

    Answers to gold tasks write no ``Review`` row (no production figure counts them), so they
    come from their ``GoldTask`` rows, in the same columns: what the person answered and
    was answered, never whether it was gold. One UNION ALL statement, paginated by the database.
    """
    reviews = (
        Review.objects.for_tenant(tenant)
        .filter(reviewer=user)
        .values(
            at=F("created_at"),
            external=F("output__external_id"),
            app=F("output__application"),
            tier=F("output__risk_tier"),
            given=F("decision"),
            given_scores=F("scores"),
            seconds=F("time_spent_seconds"),
            final=F("output__decision"),
        )
    )
    gold_answers = (
        GoldTask.objects.for_tenant(tenant)
        .filter(user=user, answered_at__isnull=False)
        .values(
            at=F("answered_at"),
            external=F("task__output__external_id"),
            app=F("task__output__application"),
            tier=F("task__output__risk_tier"),
            given=F("answer_decision"),
            given_scores=F("answer_scores"),
            seconds=F("answer_time_spent_seconds"),
            final=_GOLD_ANSWERED_AS,
        )
    )
    return reviews.union(gold_answers, all=True).order_by("-at")


# The tenant admin's console ------------------------------------------------------

# What the policy preview needs of an output, and nothing else (no input, output or trace).
PREVIEW_COLUMNS = ("external_id", "application", "model", "metadata", "confidence", "risk_tier", "review_required")


def outputs_for_preview(*, tenant: Tenant, limit: int = 10_000) -> list[tuple]:
    """The tenant's latest outputs as ``policies.preview`` reads them, newest first."""
    return list(Output.objects.for_tenant(tenant).order_by("-received_at").values_list(*PREVIEW_COLUMNS)[:limit])


def applications_seen(*, tenant: Tenant) -> list[str]:
    """The names of the applications that ever submitted an output, sorted."""
    return list(
        Output.objects.for_tenant(tenant).order_by("application").values_list("application", flat=True).distinct()
    )


def queue_list(*, tenant: Tenant) -> QuerySet[Queue]:
    return Queue.objects.for_tenant(tenant).order_by("-priority", "name")


def queue_get_for_tenant(*, tenant: Tenant, queue_id: int) -> Queue:
    queue = Queue.objects.for_tenant(tenant).filter(pk=queue_id).first()
    if queue is None:
        raise NotFoundError("Queue not found.")
    return queue


def queue_workers(*, tenant: Tenant, queue_ids) -> dict[int, list]:
    """Who may work each queue by a grant to them in person: queue id to users, by username.

    One query; group grants are counted by ``queue_group_grants``.
    """
    workers: dict[int, list] = {queue_id: [] for queue_id in queue_ids}
    grants = (
        QueueUserObjectPermission.objects.filter(
            content_object__tenant=tenant, content_object_id__in=list(queue_ids), permission__codename="work_queue"
        )
        .select_related("user")
        .order_by("user__username")
    )
    for grant in grants:
        workers[grant.content_object_id].append(grant.user)
    return workers


def queue_group_grants(*, tenant: Tenant, queue_ids) -> dict[int, list[str]]:
    """Groups allowed to work each queue: queue id to group names."""
    groups: dict[int, list[str]] = {queue_id: [] for queue_id in queue_ids}
    grants = (
        QueueGroupObjectPermission.objects.filter(
            content_object__tenant=tenant, content_object_id__in=list(queue_ids), permission__codename="work_queue"
        )
        .select_related("group")
        .order_by("group__name")
    )
    for grant in grants:
        groups[grant.content_object_id].append(grant.group.name)
    return groups


def webhook_endpoints(*, tenant: Tenant) -> QuerySet[WebhookEndpoint]:
    """Every endpoint, switched off ones too, with its failed and pending deliveries counted."""
    return (
        WebhookEndpoint.objects.for_tenant(tenant)
        .annotate(
            failed=Count("deliveries", filter=Q(deliveries__status=DeliveryStatus.FAILED)),
            pending=Count("deliveries", filter=Q(deliveries__status=DeliveryStatus.PENDING)),
        )
        .order_by("-is_active", "created_at")
    )


def webhook_get_for_tenant(*, tenant: Tenant, endpoint_id: int) -> WebhookEndpoint:
    endpoint = WebhookEndpoint.objects.for_tenant(tenant).filter(pk=endpoint_id).first()
    if endpoint is None:
        raise NotFoundError("Webhook not found.")
    return endpoint


def webhook_deliveries_recent(*, tenant: Tenant, endpoint_id: int, limit: int = 50) -> list[WebhookDelivery]:
    """An endpoint's latest deliveries, newest first, with the output each is about."""
    return list(
        WebhookDelivery.objects.for_tenant(tenant)
        .filter(endpoint_id=endpoint_id)
        .select_related("output")
        .only(
            "id",
            "event",
            "status",
            "attempts",
            "next_attempt_at",
            "last_error",
            "created_at",
            "output__id",
            "output__external_id",
            "output__application",
        )
        .order_by("-created_at")[:limit]
    )


def webhook_delivery_of(*, tenant: Tenant, endpoint_id: int, delivery_id) -> bool:
    """Whether the delivery is the tenant's and went to this endpoint (a malformed id is none)."""
    try:
        return WebhookDelivery.objects.for_tenant(tenant).filter(pk=delivery_id, endpoint_id=endpoint_id).exists()
    except (ValueError, ValidationError):
        return False


def queue_access_events(*, tenant: Tenant, queue_id: int, limit: int = 20) -> list[QueueAccessEvent]:
    """Who granted or revoked the right to work one queue, to whom, newest first."""
    return list(
        QueueAccessEvent.objects.for_tenant(tenant)
        .filter(queue_id=queue_id)
        .select_related("user", "actor")
        .order_by("-created_at", "-id")[:limit]
    )


def queue_names_existing(tenant: Tenant, names: set[str]) -> set[str]:
    """Which of ``names`` are queues of the tenant (a policy's SLA-breach targets)."""
    return set(Queue.objects.for_tenant(tenant).filter(name__in=names).values_list("name", flat=True))


# Certifications as the workbench shows them (docs/quality.md) --------------------------------

CERTIFICATION_EXPIRING_WITHIN = timedelta(days=14)


def workbench_certifications(*, tenant: Tenant, user, queue_ids, now) -> list[dict]:
    """For each queue the person may work that requires certification, or that they hold one for:
    their certification (the status the claim reads), whether it ends soon, and their latest exam."""
    certifications = {
        row.queue_id: row for row in Certification.objects.for_tenant(tenant).filter(user=user).select_related("queue")
    }
    queues = {
        queue.pk: queue
        for queue in Queue.objects.for_tenant(tenant).filter(
            Q(pk__in=list(queue_ids), requires_certification=True) | Q(pk__in=list(certifications))
        )
    }
    latest: dict[int, Exam] = {}
    for exam in Exam.objects.for_tenant(tenant).filter(user=user, queue_id__in=list(queues)).order_by("-started_at"):
        latest.setdefault(exam.queue_id, exam)
    shown = []
    for queue_id, queue in sorted(queues.items(), key=lambda item: item[1].name):
        certification = certifications.get(queue_id)
        status = certification.status if certification else None
        if status == CertificationStatus.ACTIVE and certification.valid_until <= now:
            status = CertificationStatus.EXPIRED
        shown.append(
            {
                "queue": queue,
                "workable": queue_id in queue_ids,
                "certification": certification,
                "status": status,
                "valid": status == CertificationStatus.ACTIVE and certification.valid_from <= now,
                "expiring": status == CertificationStatus.ACTIVE
                and certification.valid_until - now <= CERTIFICATION_EXPIRING_WITHIN,
                "exam": latest.get(queue_id),
            }
        )
    return shown


def adjudication_reviews(*, tenant: Tenant, output_id) -> list[Review]:
    """The reviews an adjudicator compares, side by side: the output's approval and overlap
    reviews (escalations aside), oldest first, with who gave them."""
    return list(
        Review.objects.for_tenant(tenant)
        .filter(output_id=output_id, purpose__in=("approval", "overlap"))
        .exclude(decision=Review.Verdict.ESCALATE)
        .select_related("reviewer")
        .order_by("created_at")
    )
