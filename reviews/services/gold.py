"""Gold items in disguise and the certifications they earn or cost (docs/quality.md).

A gold task is an ordinary review task on a fresh copy of a golden-set item (an output of
status ``gold``), personal to one reviewer: the claim hands it out first, the reviewer
sees what they see of any task, and ``review_submit`` hands the answer here instead of
deciding anything. An exam is N such tasks; live gold is one planted after a real review
at the queue's ``gold_rate``. Answers are scored against the item's expected decision and
scores; an exam at or above the pass mark certifies, and live answers below the queue's
threshold over its window suspend the certification.
"""

import hashlib
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import orjson
from django.db import IntegrityError, transaction
from django.db.models import Exists, F, OuterRef, Q
from django.utils import timezone

from hitl.errors import ConflictError, ForbiddenError, NotFoundError, RuleViolationError
from policies.models import Rubric
from policies.selectors import compiled_policy
from reviews.decision import ReviewRow, output_outcome
from reviews.models import (
    Certification,
    CertificationStatus,
    Delivery,
    Exam,
    ExamStatus,
    GoldenSet,
    GoldItem,
    GoldTask,
    GoldTaskKind,
    Judgement,
    Output,
    OutputStatus,
    Queue,
    Review,
    ReviewTask,
    TaskPurpose,
    TaskStatus,
)
from reviews.routing import queue_ids_using_rubric, routing_table
from reviews.services.claims import reviewer_rights
from tenants.audit import SYSTEM, audit_record, audit_record_batch
from tenants.auditchain import digest, format_time
from tenants.models import Tenant
from tenants.services import tenant_config_changed

# What a graded score may be off by and still count as the expected one (a 1-5 scale's neighbour).
GRADED_TOLERANCE = 1
DEFAULT_SLA_MINUTES = 60  # a gold copy's due time when its tier is not in the policy
SAMPLED_ID_TRIES = 200  # fresh external ids tried until the policy samples one, as it did every real task


# Golden sets: which one a queue uses, and the items of a version -------------------------


def golden_set_for_queue(*, tenant: Tenant, queue: Queue) -> GoldenSet | None:
    """The queue's own golden set, else one for a skill the queue requires (latest changed first)."""
    sets = GoldenSet.objects.for_tenant(tenant).filter(version__gt=0).order_by("-updated_at", "-id")
    own = sets.filter(queue=queue).first()
    if own is not None or not queue.required_skills:
        return own
    return sets.filter(queue__isnull=True, skill__in=list(queue.required_skills)).first()


def gold_items_of_version(*, tenant: Tenant, golden_set: GoldenSet, version: int | None = None):
    """The items that make up ``version`` (default: the current one), oldest first."""
    version = golden_set.version if version is None else version
    return (
        GoldItem.objects.for_tenant(tenant)
        .filter(golden_set=golden_set, added_in__lte=version)
        .filter(Q(removed_in__isnull=True) | Q(removed_in__gt=version))
        .order_by("created_at", "id")
    )


# Planting: a fresh copy of an item, and a personal task on it ------------------------------


def _gold_copy(tenant: Tenant, item: GoldItem, now: datetime) -> tuple[Output, int]:
    """The item as a new output received now, classified by today's policy like any other.

    Its external id is a random UUID (a service's id cannot be borrowed: a real output may
    come with it later); tried until the policy samples it, so that its reason reads as a
    sampled output's does. Returns the output and its tier's SLA in minutes.
    """
    policy = compiled_policy(tenant=tenant)
    decision = None
    for _ in range(SAMPLED_ID_TRIES):
        external_id = str(uuid.uuid4())
        decision = policy.decide(
            external_id=external_id,
            application=item.application,
            model=item.model,
            metadata=item.metadata,
            confidence=item.confidence,
        )
        if decision.review_required:
            break
    body = {
        "external_id": external_id,
        "application": item.application,
        "input": item.input,
        "output": item.output,
        "trace": item.trace,
        "metadata": item.metadata,
        "model": item.model,
        "confidence": item.confidence,
    }
    tier = decision.risk_tier if decision.review_required else (item.risk_tier or decision.risk_tier)
    output = Output.objects.for_tenant(tenant).create(
        **body,
        content_hash=hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest(),
        status=OutputStatus.GOLD,
        risk_tier=tier,
        review_required=True,
        delivery=Delivery.HOLD if decision.delivery == Delivery.HOLD else Delivery.DELIVER,
        policy_version=decision.policy_version,
        decision_reason=decision.reason,
        sampling_draw=decision.draw,
        received_at=now,
    )
    if item.source_output_id:  # the verdicts the judges gave the original, as judges would give them now
        Judgement.objects.for_tenant(tenant).bulk_create(
            [
                Judgement(
                    output=output,
                    created_at=now,
                    **{
                        field: value
                        for field, value in verdict.items()
                        if field not in {"id", "tenant_id", "output_id", "created_at"}
                    },
                )
                for verdict in Judgement.objects.for_tenant(tenant).filter(output_id=item.source_output_id).values()
            ]
        )
    spec = policy.tiers.get(tier)
    return output, spec.sla_minutes if spec is not None else DEFAULT_SLA_MINUTES


def _rubric_of(tenant: Tenant, item: GoldItem) -> tuple[int | None, int | None]:
    if item.rubric_id is None:
        return None, None
    if item.rubric_version is not None:
        return item.rubric_id, item.rubric_version
    return item.rubric_id, Rubric.objects.for_tenant(tenant).filter(pk=item.rubric_id).values_list(
        "version", flat=True
    ).first()


def _plant(
    *,
    tenant: Tenant,
    user_id: int,
    queue: Queue,
    item: GoldItem,
    kind: str,
    version: int,
    exam: Exam | None,
    now: datetime,
) -> GoldTask:
    output, sla_minutes = _gold_copy(tenant, item, now)
    rubric_id, rubric_version = _rubric_of(tenant, item)
    task = ReviewTask.objects.for_tenant(tenant).create(
        output=output,
        queue=queue,
        purpose=TaskPurpose.APPROVAL,
        level_required=queue.min_reviewer_level,
        priority=queue.priority,
        due_at=now + timedelta(minutes=sla_minutes),
        created_at=now,
        rubric_id=rubric_id,
        rubric_version=rubric_version,
        assigned_to_id=user_id,
    )
    return GoldTask.objects.for_tenant(tenant).create(
        task=task,
        user_id=user_id,
        queue=queue,
        kind=kind,
        exam=exam,
        item=item,
        golden_set_version=version,
        created_at=now,
    )


def _items_for(tenant: Tenant, user_id: int, golden_set: GoldenSet) -> list[GoldItem]:
    """The current items, those the person never answered first, none whose original they reviewed."""
    items = list(gold_items_of_version(tenant=tenant, golden_set=golden_set))
    reviewed = set(
        Review.objects.for_tenant(tenant)
        .filter(reviewer_id=user_id, output_id__in=[item.source_output_id for item in items if item.source_output_id])
        .values_list("output_id", flat=True)
    )
    seen = set(GoldTask.objects.for_tenant(tenant).filter(user_id=user_id).values_list("item_id", flat=True))
    items = [item for item in items if item.source_output_id not in reviewed]
    random.shuffle(items)
    return sorted(items, key=lambda item: item.pk in seen)  # stable: unseen first, shuffled within


# Exams ---------------------------------------------------------------------------------------


@transaction.atomic
def exam_start(*, tenant: Tenant, user, queue_id: int, now: datetime | None = None) -> Exam:
    """Start the queue's qualification exam for ``user``: its N items become tasks only they claim."""
    now = now or timezone.now()
    queue = Queue.objects.for_tenant(tenant).filter(pk=queue_id).first()
    if queue is None:
        raise NotFoundError("Queue not found.")
    rights = reviewer_rights(tenant.pk, str(tenant.config_token), user.pk, None)
    if rights is None or queue.pk not in rights.queue_ids:
        raise ForbiddenError(f"You may not work the queue {queue.name}: ask an admin for access first.")
    golden_set = golden_set_for_queue(tenant=tenant, queue=queue)
    if golden_set is None:
        raise RuleViolationError(f"queue: {queue.name} has no golden set yet; a quality lead makes one first.")
    items = _items_for(tenant, user.pk, golden_set)[: queue.exam_items]
    if len(items) < queue.exam_items:
        raise RuleViolationError(
            f"queue: the golden set {golden_set.name} has {len(items)} items you can take; "
            f"the exam of {queue.name} needs {queue.exam_items}."
        )
    try:
        with transaction.atomic():
            exam = Exam.objects.for_tenant(tenant).create(
                user=user,
                queue=queue,
                golden_set=golden_set,
                golden_set_version=golden_set.version,
                items_total=len(items),
                pass_mark=queue.exam_pass_mark,
                started_at=now,
            )
    except IntegrityError as error:
        raise ConflictError(f"Your exam for {queue.name} is already under way.", code="exam_in_progress") from error
    for item in items:
        _plant(
            tenant=tenant,
            user_id=user.pk,
            queue=queue,
            item=item,
            kind=GoldTaskKind.EXAM,
            version=golden_set.version,
            exam=exam,
            now=now,
        )
    audit_record(
        tenant=tenant,
        actor=user,
        kind="exam.started",
        object_type="exam",
        object_id=exam.pk,
        data={
            "person": user.pk,
            "queue": queue.pk,
            "golden_set": golden_set.pk,
            "golden_set_version": golden_set.version,
            "items": [str(item.pk) for item in items],
            "pass_mark": queue.exam_pass_mark,
        },
    )
    return exam


def _exam_grade(tenant: Tenant, exam: Exam, now: datetime) -> None:
    passed = exam.items_correct >= exam.pass_mark * exam.items_total - 1e-9
    exam.status = ExamStatus.PASSED if passed else ExamStatus.FAILED
    exam.finished_at = now
    exam.save(update_fields=["status", "finished_at"])
    audit_record(
        tenant=tenant,
        actor=SYSTEM,
        kind="exam.passed" if passed else "exam.failed",
        object_type="exam",
        object_id=exam.pk,
        data={
            "person": exam.user_id,
            "queue": exam.queue_id,
            "correct": exam.items_correct,
            "total": exam.items_total,
            "pass_mark": exam.pass_mark,
        },
    )
    if passed:
        _certification_grant(tenant, exam, now)


# Answers ---------------------------------------------------------------------------------------


def answer_matches(*, item: GoldItem, decision: str, scores: dict, criteria: list[dict] | None) -> bool:
    """The expected decision, and each expected score (graded ones within ``GRADED_TOLERANCE``; text is not scored)."""
    if decision != item.expected_decision:
        return False
    kinds = {criterion["key"]: criterion["kind"] for criterion in criteria or ()}
    for key, expected in (item.expected_scores or {}).items():
        kind = kinds.get(key)
        given = (scores or {}).get(key)
        if kind == "text":
            continue
        if kind == "graded" and isinstance(given, int | float) and isinstance(expected, int | float):
            if abs(given - expected) > GRADED_TOLERANCE:
                return False
        elif given != expected:
            return False
    return True


@dataclass(frozen=True)
class GoldAnswered:
    """What ``review_submit`` answers for a gold task: what it would have answered for a real one."""

    review: Review
    output: Output
    decided_now: bool


def gold_answer_record(
    *,
    tenant: Tenant,
    gold: GoldTask,
    task: ReviewTask,
    review: Review,
    criteria: list[dict] | None,
    now: datetime,
) -> GoldAnswered:
    """Score a gold answer, and answer as a real review would have (inside ``review_submit``'s transaction).

    Nothing is decided, delivered or sent: the copy stays ``gold``, no Review row is written
    (so no production figure counts it), and the task is done.
    """
    item = GoldItem.objects.for_tenant(tenant).get(pk=gold.item_id)
    correct = answer_matches(item=item, decision=review.decision, scores=review.scores, criteria=criteria)
    gold.answer_decision, gold.answer_scores = review.decision, review.scores
    gold.correct, gold.answered_at = correct, now
    gold.answer_time_spent_seconds = review.time_spent_seconds
    gold.save(update_fields=["answer_decision", "answer_scores", "correct", "answered_at", "answer_time_spent_seconds"])
    ReviewTask.objects.for_tenant(tenant).filter(pk=task.pk).update(status=TaskStatus.DONE)
    audit_record(
        tenant=tenant,
        actor=review.reviewer,
        kind="gold.answered",
        object_type="task",
        object_id=task.pk,
        data={
            "kind": gold.kind,
            "exam": gold.exam_id,
            "item": str(item.pk),
            "golden_set": item.golden_set_id,
            "golden_set_version": gold.golden_set_version,
            "decision": review.decision,
            "scores": review.scores,
            "correct": correct,
        },
    )
    if gold.exam_id is not None:
        Exam.objects.for_tenant(tenant).filter(pk=gold.exam_id).update(
            items_answered=F("items_answered") + 1, items_correct=F("items_correct") + int(correct)
        )
        exam = Exam.objects.for_tenant(tenant).select_for_update(no_key=True).get(pk=gold.exam_id)
        if exam.status == ExamStatus.IN_PROGRESS and exam.items_answered >= exam.items_total:
            _exam_grade(tenant, exam, now)
    else:
        _live_window_check(tenant, gold.user_id, gold.queue_id, now)
    # What a real single-approval output would have become (the reviewer cannot tell).
    output = task.output
    if review.decision == Review.Verdict.ESCALATE:
        output.status = OutputStatus.PENDING_REVIEW
        return GoldAnswered(review, output, decided_now=False)
    outcome = output_outcome(
        review=_row(review), submitted_output=output.output, other_approval_statuses=[], earlier_approval_reviews=[]
    )
    output.decision = output.status = outcome.decision
    output.final_output, output.delivery = outcome.final_output, outcome.delivery
    output.decided_by, output.decided_at = review.reviewer, now
    return GoldAnswered(review, output, decided_now=True)


def _row(review: Review) -> ReviewRow:
    return ReviewRow(review.decision, review.corrected_output, review.created_at)


def live_accuracy(*, tenant: Tenant, user_id: int, queue: Queue, since: datetime | None = None) -> tuple[int, int]:
    """(right, answered) over the person's last ``gold_window`` live answers in the queue, since ``since``."""
    answers = GoldTask.objects.for_tenant(tenant).filter(
        user_id=user_id, queue=queue, kind=GoldTaskKind.LIVE, answered_at__isnull=False
    )
    if since is not None:
        answers = answers.filter(answered_at__gte=since)
    window = list(answers.order_by("-answered_at", "-id").values_list("correct", flat=True)[: queue.gold_window])
    return sum(1 for correct in window if correct), len(window)


def _live_window_check(tenant: Tenant, user_id: int, queue_id: int, now: datetime) -> None:
    """A full window below the threshold suspends an active certification (answers since it was granted count)."""
    certification = (
        Certification.objects.for_tenant(tenant)
        .select_for_update(no_key=True)
        .filter(user_id=user_id, queue_id=queue_id, status=CertificationStatus.ACTIVE)
        .select_related("queue")
        .first()
    )
    if certification is None:
        return
    queue = certification.queue
    right, answered = live_accuracy(tenant=tenant, user_id=user_id, queue=queue, since=certification.valid_from)
    if answered < queue.gold_window or right / answered >= queue.gold_threshold:
        return
    certification_status_set(
        tenant=tenant,
        certification=certification,
        status=CertificationStatus.SUSPENDED,
        reason=f"accuracy on the last {answered} gold items was {right / answered:.0%}, "
        f"below the queue's {queue.gold_threshold:.0%}",
        actor=SYSTEM,
        now=now,
    )


# Live gold: planted after a real review, at the queue's rate -------------------------------------


def gold_draw(user_id: int, task_id) -> float:
    """A deterministic draw in [0, 1) for a person's review of a task (an auditor can recompute it)."""
    seed = hashlib.sha256(f"gold:{user_id}:{task_id}".encode()).digest()
    return int.from_bytes(seed[:8], "big") / 2**64


def gold_plant_after_review(*, tenant: Tenant, user, queue_id: int, task_id, rate: float, now: datetime) -> bool:
    """After a real review, plant a live gold task for the reviewer's next claim at the queue's rate.

    Inside ``review_submit``'s transaction; nothing when the draw is above the rate, the
    queue has no golden set, or one is already waiting for them there.
    """
    if rate <= 0 or gold_draw(user.pk, task_id) >= rate:
        return False
    queue = Queue.objects.for_tenant(tenant).filter(pk=queue_id).first()
    if (
        queue is None
        or ReviewTask.objects.for_tenant(tenant)
        .filter(assigned_to=user, queue=queue, status__in=(TaskStatus.PENDING, TaskStatus.CLAIMED))
        .exists()
    ):
        return False
    golden_set = golden_set_for_queue(tenant=tenant, queue=queue)
    items = _items_for(tenant, user.pk, golden_set) if golden_set is not None else []
    if not items:
        return False
    gold = _plant(
        tenant=tenant,
        user_id=user.pk,
        queue=queue,
        item=items[0],
        kind=GoldTaskKind.LIVE,
        version=golden_set.version,
        exam=None,
        now=now,
    )
    audit_record(
        tenant=tenant,
        actor=SYSTEM,
        kind="gold.planted",
        object_type="task",
        object_id=gold.task_id,
        data={"person": user.pk, "queue": queue.pk, "item": str(items[0].pk), "golden_set": golden_set.pk},
    )
    return True


# Certifications ---------------------------------------------------------------------------------


def _certification_grant(tenant: Tenant, exam: Exam, now: datetime) -> Certification:
    """A passed exam certifies for the queue's period; a suspended or revoked one waits for a quality lead."""
    queue = exam.queue
    until = now + timedelta(days=queue.certification_days)
    certification = (
        Certification.objects.for_tenant(tenant)
        .select_for_update(no_key=True)
        .filter(user_id=exam.user_id, queue=queue)
        .first()
    )
    if certification is None:
        certification = Certification.objects.for_tenant(tenant).create(
            user_id=exam.user_id,
            queue=queue,
            status=CertificationStatus.ACTIVE,
            valid_from=now,
            valid_until=until,
            exam=exam,
            status_reason=f"passed the exam ({exam.items_correct}/{exam.items_total})",
            status_changed_at=now,
        )
        audit_record(
            tenant=tenant,
            actor=SYSTEM,
            kind="certification.granted",
            object_type="certification",
            object_id=certification.pk,
            data={"person": exam.user_id, "queue": queue.pk, "exam": exam.pk, "valid_until": until},
        )
        return certification
    certification.exam = exam
    if certification.status in (CertificationStatus.SUSPENDED, CertificationStatus.REVOKED):
        certification.save(update_fields=["exam"])  # a quality lead reinstates
        audit_record(
            tenant=tenant,
            actor=SYSTEM,
            kind="certification.exam_passed",
            object_type="certification",
            object_id=certification.pk,
            data={"person": exam.user_id, "queue": queue.pk, "exam": exam.pk, "status": certification.status},
        )
        return certification
    certification_status_set(
        tenant=tenant,
        certification=certification,
        status=CertificationStatus.ACTIVE,
        reason=f"passed the exam ({exam.items_correct}/{exam.items_total})",
        actor=SYSTEM,
        now=now,
        renew=True,
    )
    return certification


def certification_status_set(
    *,
    tenant: Tenant,
    certification: Certification,
    status: str,
    reason: str,
    actor,
    now: datetime | None = None,
    renew: bool = False,
) -> Certification:
    """Move a certification to ``status`` (``renew``: a fresh period from now), audited; call in a transaction."""
    audit_record(
        **_certification_status_write(
            tenant=tenant, certification=certification, status=status, reason=reason, actor=actor, now=now, renew=renew
        )
    )
    return certification


def _certification_status_write(
    *, tenant: Tenant, certification: Certification, status: str, reason: str, actor, now, renew: bool
) -> dict:
    """The rows of ``certification_status_set``; returns its audit event (``audit_record``'s arguments)."""
    now = now or timezone.now()
    before = {
        "status": certification.status,
        "valid_from": certification.valid_from,
        "valid_until": certification.valid_until,
    }
    certification.status, certification.status_reason, certification.status_changed_at = status, reason, now
    fields = ["status", "status_reason", "status_changed_at", "exam"]
    if renew:
        certification.valid_from = now
        certification.valid_until = now + timedelta(days=certification.queue.certification_days)
        fields += ["valid_from", "valid_until"]
    certification.save(update_fields=fields)
    if status != CertificationStatus.ACTIVE:  # no more live gold waiting for work they may not do
        ReviewTask.objects.for_tenant(tenant).filter(
            assigned_to_id=certification.user_id,
            queue_id=certification.queue_id,
            status=TaskStatus.PENDING,
            gold_tasks__kind=GoldTaskKind.LIVE,
        ).update(status=TaskStatus.CANCELLED)
    return {
        "tenant": tenant,
        "actor": actor,
        "kind": f"certification.{status}" if status != CertificationStatus.ACTIVE else "certification.activated",
        "object_type": "certification",
        "object_id": certification.pk,
        "data": {
            "person": certification.user_id,
            "queue": certification.queue_id,
            "reason": reason,
            "before": before,
            "after": {
                "status": status,
                "valid_from": certification.valid_from,
                "valid_until": certification.valid_until,
            },
        },
    }


def _certification_for_update(tenant: Tenant, certification_id: int) -> Certification:
    certification = (
        Certification.objects.for_tenant(tenant)
        .select_for_update(no_key=True)
        .select_related("queue", "user")
        .filter(pk=certification_id)
        .first()
    )
    if certification is None:
        raise NotFoundError("Certification not found.")
    return certification


@transaction.atomic
def certification_reinstate(*, tenant: Tenant, certification_id: int, actor, reason: str = "") -> Certification:
    """A quality lead puts a suspended (or revoked) certification back, once the person passed a new exam."""
    certification = _certification_for_update(tenant, certification_id)
    if certification.status not in (CertificationStatus.SUSPENDED, CertificationStatus.REVOKED):
        raise ConflictError(f"This certification is {certification.status}, not suspended.", code="not_suspended")
    exam = (
        Exam.objects.for_tenant(tenant)
        .filter(
            user_id=certification.user_id,
            queue_id=certification.queue_id,
            status=ExamStatus.PASSED,
            finished_at__gt=certification.status_changed_at,
        )
        .order_by("-finished_at")
        .first()
    )
    if exam is None:
        raise RuleViolationError(
            f"{certification.user.username} has passed no exam for {certification.queue.name} since it was "
            f"{certification.status}; they take a new exam first.",
            code="exam_required",
        )
    certification.exam = exam
    return certification_status_set(
        tenant=tenant,
        certification=certification,
        status=CertificationStatus.ACTIVE,
        reason=reason or f"reinstated after the exam of {exam.finished_at:%Y-%m-%d}",
        actor=actor,
        renew=True,
    )


@transaction.atomic
def certification_revoke(*, tenant: Tenant, certification_id: int, actor, reason: str) -> Certification:
    certification = _certification_for_update(tenant, certification_id)
    if certification.status == CertificationStatus.REVOKED:
        return certification
    return certification_status_set(
        tenant=tenant, certification=certification, status=CertificationStatus.REVOKED, reason=reason, actor=actor
    )


@transaction.atomic
def queue_recertification_require(
    *, tenant: Tenant, queue_id: int, actor, reason: str, audits: list[dict] | None = None
) -> int:
    """Every active certification of the queue expires now (a rubric's new version, a changed policy):
    people take the exam again. Returns how many expired.

    Every row first, then the audit events (or, with ``audits``, their arguments added to it, for
    the caller to record after its own): inside a caller's transaction an event is appended at
    once and holds the chain's counter row, and a write after it that waited for a row a claim
    holds (a live gold task being claimed) deadlocked with the claim, which waited for that row."""
    queue = Queue.objects.for_tenant(tenant).filter(pk=queue_id).first()
    if queue is None:
        raise NotFoundError("Queue not found.")
    certifications = list(
        Certification.objects.for_tenant(tenant)
        .select_for_update(no_key=True)
        .select_related("queue")
        .filter(queue=queue, status=CertificationStatus.ACTIVE)
        .order_by("pk")
    )
    events = [
        _certification_status_write(
            tenant=tenant,
            certification=certification,
            status=CertificationStatus.EXPIRED,
            reason=f"recertification required: {reason}",
            actor=actor,
            now=None,
            renew=False,
        )
        for certification in certifications
    ]
    if audits is not None:
        audits.extend(events)
    else:
        for event in events:
            audit_record(**event)
    return len(certifications)


CERTIFICATION_PERIOD_ENDED = "its period ended"


@transaction.atomic
def certifications_expire(*, tenant: Tenant, now: datetime | None = None) -> int:
    """Every active certification of the tenant past ``valid_until`` becomes ``expired`` (periodic).

    In bulk: one statement reads and locks them (skipping those another sweep holds), one
    updates them, one cancels the live gold waiting for their holders in those queues, and
    one ``certification.expired`` event commits to all of them (each leaf: the certification,
    the person, the queue and the period that ended). Idempotent: a second run finds none.
    Returns how many expired.
    """
    now = now or timezone.now()
    due = list(
        Certification.objects.for_tenant(tenant)
        .select_for_update(skip_locked=True, no_key=True)
        .filter(status=CertificationStatus.ACTIVE, valid_until__lte=now)
        .order_by("pk")
        .values_list("pk", "user_id", "queue_id", "valid_from", "valid_until")
    )
    if not due:
        return 0
    ids = [row[0] for row in due]
    expired = (
        Certification.objects.for_tenant(tenant)
        .filter(pk__in=ids, status=CertificationStatus.ACTIVE, valid_until__lte=now)
        .update(status=CertificationStatus.EXPIRED, status_reason=CERTIFICATION_PERIOD_ENDED, status_changed_at=now)
    )
    # No more live gold waiting for work they may no longer do (as certification_status_set does).
    ReviewTask.objects.for_tenant(tenant).filter(
        Exists(
            Certification.objects.for_tenant(tenant).filter(
                pk__in=ids, user_id=OuterRef("assigned_to_id"), queue_id=OuterRef("queue_id")
            )
        ),
        status=TaskStatus.PENDING,
        gold_tasks__kind=GoldTaskKind.LIVE,
    ).update(status=TaskStatus.CANCELLED)
    audit_record_batch(
        tenant=tenant,
        actor=SYSTEM,
        kind="certification.expired",
        object_type="certification",
        digests=[
            (
                pk,
                digest(
                    {
                        "id": pk,
                        "person": user_id,
                        "queue": queue_id,
                        "valid_from": format_time(valid_from),
                        "valid_until": format_time(valid_until),
                        "expired_at": format_time(now),
                    }
                ),
            )
            for pk, user_id, queue_id, valid_from, valid_until in due
        ],
        data={"reason": CERTIFICATION_PERIOD_ENDED, "before": {"status": CertificationStatus.ACTIVE}},
    )
    return expired


@transaction.atomic
def rubric_recertification_require(*, tenant: Tenant, rubric: Rubric, actor) -> Callable[[], dict[str, int]]:
    """A rubric's new version requires recertification: every active certification of the queues
    whose reviews use it (``reviews.routing.queue_ids_using_rubric``: by a tier or an application
    naming it, as routing sends outputs today) expires, each audited with the rubric and version
    in its reason. Called by ``policies.services.rubric_publish`` (set by ``ReviewsConfig.ready``),
    in the publishing transaction, before it records the publication: the rows are written here,
    and the returned function records their audit events (after the publication's, every row
    first: see ``queue_recertification_require``) and returns queue name -> how many expired."""
    queue_ids = queue_ids_using_rubric(
        policy=compiled_policy(tenant=tenant), routing=routing_table(tenant=tenant), rubric_id=rubric.pk
    )
    reason = f"rubric {rubric.name} version {rubric.version} was published requiring it"
    events: list[dict] = []
    expired = {
        queue.name: queue_recertification_require(
            tenant=tenant, queue_id=queue.pk, actor=actor, reason=reason, audits=events
        )
        for queue in Queue.objects.for_tenant(tenant).filter(pk__in=sorted(queue_ids)).order_by("name")
    }

    def record() -> dict[str, int]:
        for event in events:
            audit_record(**event)
        return expired

    return record


@transaction.atomic
def queue_certification_rules_set(*, tenant: Tenant, queue_id: int, rules: dict, actor) -> Queue:
    """Change a queue's certification rules (the fields of ``QUEUE_CERTIFICATION_RULES``), audited."""
    queue = Queue.objects.for_tenant(tenant).select_for_update(no_key=True).filter(pk=queue_id).first()
    if queue is None:
        raise NotFoundError("Queue not found.")
    before = {field: getattr(queue, field) for field in QUEUE_CERTIFICATION_RULES}
    for field, value in rules.items():
        if field not in QUEUE_CERTIFICATION_RULES:
            raise RuleViolationError(f"{field}: not a certification rule", fields={field: ["Unknown."]})
        setattr(queue, field, value)
    queue.save(update_fields=list(QUEUE_CERTIFICATION_RULES))
    tenant_config_changed(tenant=tenant)
    audit_record(
        tenant=tenant,
        actor=actor,
        kind="queue.certification_rules_changed",
        object_type="queue",
        object_id=queue.pk,
        data={"before": before, "after": {field: getattr(queue, field) for field in QUEUE_CERTIFICATION_RULES}},
    )
    return queue


QUEUE_CERTIFICATION_RULES = (
    "requires_certification",
    "exam_items",
    "exam_pass_mark",
    "certification_days",
    "gold_rate",
    "gold_window",
    "gold_threshold",
)


def certification_valid(*, certification: Certification, now: datetime | None = None) -> bool:
    now = now or timezone.now()
    return (
        certification.status == CertificationStatus.ACTIVE
        and certification.valid_from <= now < certification.valid_until
    )


def certification_effective_status(certification: Certification, now: datetime | None = None) -> str:
    """The status as the claim reads it: an active one past ``valid_until`` is expired."""
    now = now or timezone.now()
    if certification.status == CertificationStatus.ACTIVE and certification.valid_until <= now:
        return CertificationStatus.EXPIRED
    return certification.status


@transaction.atomic
def certification_grant(*, tenant: Tenant, user, queue_id: int, actor, reason: str) -> Certification:
    """Certify a person for a queue's period without an exam (an operator's onboarding, the demo), audited."""
    queue = Queue.objects.for_tenant(tenant).filter(pk=queue_id).first()
    if queue is None:
        raise NotFoundError("Queue not found.")
    certification = (
        Certification.objects.for_tenant(tenant).select_for_update(no_key=True).filter(user=user, queue=queue).first()
    )
    if certification is not None:
        return certification_status_set(
            tenant=tenant,
            certification=certification,
            status=CertificationStatus.ACTIVE,
            reason=reason,
            actor=actor,
            renew=True,
        )
    now = timezone.now()
    certification = Certification.objects.for_tenant(tenant).create(
        user=user,
        queue=queue,
        valid_from=now,
        valid_until=now + timedelta(days=queue.certification_days),
        status_reason=reason,
        status_changed_at=now,
    )
    audit_record(
        tenant=tenant,
        actor=actor,
        kind="certification.granted",
        object_type="certification",
        object_id=certification.pk,
        data={"person": user.pk, "queue": queue.pk, "exam": None, "reason": reason},
    )
    return certification
