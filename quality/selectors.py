"""Reads of the quality layer, each taking the tenant."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import Case, Count, IntegerField, Q, QuerySet, Value, When
from django.utils import timezone

from hitl.errors import NotFoundError
from policies.selectors import rubric_criteria
from quality.agreement import DECISION_CODES, CriterionAgreement, Scale, criterion_agreement
from quality.models import CalibrationAnswer, CalibrationItem, CalibrationParticipant, CalibrationSession
from reviews.models import (
    Certification,
    CertificationStatus,
    Exam,
    GoldenSet,
    GoldItem,
    GoldTask,
    Output,
    OutputStatus,
    Queue,
)
from reviews.services.gold import certification_effective_status, gold_items_of_version
from tenants.models import Tenant

EXPIRING_WITHIN = timedelta(days=14)  # an active certification ending sooner is flagged "expiring"
LIST_LIMIT = 500


def golden_sets(*, tenant: Tenant) -> QuerySet[GoldenSet]:
    """Every golden set with the number of items in its current version, by name."""
    return (
        GoldenSet.objects.for_tenant(tenant)
        .select_related("queue")
        .annotate(current_items=Count("items", filter=Q(items__removed_in__isnull=True)))
        .order_by("name")
    )


def golden_set_get(*, tenant: Tenant, golden_set_id) -> GoldenSet:
    golden_set = golden_sets(tenant=tenant).filter(pk=golden_set_id).first()
    if golden_set is None:
        raise NotFoundError("Golden set not found.")
    return golden_set


def gold_items(*, tenant: Tenant, golden_set: GoldenSet, version: int | None = None) -> QuerySet[GoldItem]:
    return gold_items_of_version(tenant=tenant, golden_set=golden_set, version=version).select_related("rubric")


def certifications(*, tenant: Tenant, user=None, queue_id: int | None = None) -> list[Certification]:
    """Who holds what: suspended first, then the others by the end of their period (soonest first)."""
    rows = Certification.objects.for_tenant(tenant).select_related("user", "queue")
    if user is not None:
        rows = rows.filter(user=user)
    if queue_id is not None:
        rows = rows.filter(queue_id=queue_id)
    rows = rows.annotate(
        suspended_first=Case(
            When(status=CertificationStatus.SUSPENDED, then=Value(0)), default=Value(1), output_field=IntegerField()
        )
    ).order_by("suspended_first", "valid_until", "pk")
    return list(rows[:LIST_LIMIT])


def certification_view(certification: Certification, now: datetime | None = None) -> dict:
    """A certification as pages and the API show it: the status the claim reads, whether it ends soon."""
    now = now or timezone.now()
    status = certification_effective_status(certification, now)
    return {
        "id": certification.pk,
        "person": certification.user.username,
        "person_id": certification.user_id,
        "queue": certification.queue.name,
        "queue_id": certification.queue_id,
        "status": str(status),
        "valid_from": certification.valid_from,
        "valid_until": certification.valid_until,
        "expiring": status == CertificationStatus.ACTIVE and certification.valid_until - now <= EXPIRING_WITHIN,
        "status_reason": certification.status_reason,
        "status_changed_at": certification.status_changed_at,
    }


def certification_get(*, tenant: Tenant, certification_id) -> Certification:
    certification = (
        Certification.objects.for_tenant(tenant).select_related("user", "queue").filter(pk=certification_id).first()
    )
    if certification is None:
        raise NotFoundError("Certification not found.")
    return certification


def exams(*, tenant: Tenant, user=None) -> list[Exam]:
    rows = Exam.objects.for_tenant(tenant).select_related("user", "queue")
    if user is not None:
        rows = rows.filter(user=user)
    return list(rows.order_by("-started_at")[:LIST_LIMIT])


def exam_view(exam: Exam) -> dict:
    """An exam as shown: its right answers only once it is over (no peeking mid-exam)."""
    over = exam.status in ("passed", "failed")
    return {
        "id": exam.pk,
        "person": exam.user.username,
        "person_id": exam.user_id,
        "queue": exam.queue.name,
        "queue_id": exam.queue_id,
        "status": exam.status,
        "items_total": exam.items_total,
        "items_answered": exam.items_answered,
        "items_correct": exam.items_correct if over else None,
        "score": exam.score,
        "pass_mark": exam.pass_mark,
        "golden_set": exam.golden_set_id,
        "golden_set_version": exam.golden_set_version,
        "started_at": exam.started_at,
        "finished_at": exam.finished_at,
    }


def queue_by_name(*, tenant: Tenant, name: str) -> Queue:
    queue = Queue.objects.for_tenant(tenant).filter(name=name).first()
    if queue is None:
        raise NotFoundError("Queue not found.")
    return queue


def queues(*, tenant: Tenant) -> list[Queue]:
    return list(Queue.objects.for_tenant(tenant).order_by("name"))


def outputs_promotable(*, tenant: Tenant, limit: int = 50) -> list[Output]:
    """The latest decided outputs (people reviewed them), candidates for a golden set."""
    return list(
        Output.objects.for_tenant(tenant)
        .exclude(status=OutputStatus.GOLD)
        .filter(decided_by__isnull=False)
        .only("id", "external_id", "application", "risk_tier", "decision", "decided_at", "output")
        .order_by("-decided_at")[:limit]
    )


def output_for_promotion(*, tenant: Tenant, output_id) -> Output:
    try:
        output = (
            Output.objects.for_tenant(tenant)
            .exclude(status=OutputStatus.GOLD)
            .select_related("decided_by")
            .filter(pk=output_id)
            .first()
        )
    except (ValueError, TypeError):
        output = None
    if output is None:
        raise NotFoundError("Output not found.")
    return output


def gold_answer(*, tenant: Tenant, output_id) -> dict | None:
    """The gold (expected) answer for an output, shown beside a calibration item's results:
    ``{"decision": ..., "scores": {...}, "golden_set": name}`` of the newest gold item promoted
    from the output (still in its set), or of the gold item a gold copy of it was made from;
    None when the output is in no golden set."""
    items = GoldItem.objects.for_tenant(tenant).select_related("golden_set").filter(removed_in__isnull=True)
    item = items.filter(source_output_id=output_id).order_by("-added_in").first()
    if item is None:
        planted = GoldTask.objects.for_tenant(tenant).filter(task__output_id=output_id).values("item_id").first()
        item = items.filter(pk=planted["item_id"]).first() if planted else None
    if item is None:
        return None
    return {
        "decision": item.expected_decision,
        "scores": item.expected_scores or {},
        "golden_set": item.golden_set.name,
    }


def calibration_sessions(*, tenant: Tenant, user=None) -> list[CalibrationSession]:
    """The tenant's sessions, newest first; with ``user``, only those the person is invited to."""
    sessions = CalibrationSession.objects.for_tenant(tenant).select_related("rubric", "created_by")
    if user is not None:
        invited = CalibrationParticipant.objects.for_tenant(tenant).filter(user=user).values("session_id")
        sessions = sessions.filter(pk__in=invited)
    return list(sessions.order_by("-created_at", "-pk"))


def calibration_session_get(*, tenant: Tenant, session_id, user=None) -> CalibrationSession:
    """One session, or NotFoundError; with ``user``, only when the person is invited (else the same 404)."""
    try:
        session = (
            CalibrationSession.objects.for_tenant(tenant)
            .select_related("rubric", "created_by", "closed_by")
            .filter(pk=session_id)
            .first()
        )
    except (ValueError, DjangoValidationError):
        session = None
    if session is None or (
        user is not None and not calibration_is_participant(tenant=tenant, session=session, user=user)
    ):
        raise NotFoundError("Calibration session not found.")
    return session


def calibration_is_participant(*, tenant: Tenant, session: CalibrationSession, user) -> bool:
    return CalibrationParticipant.objects.for_tenant(tenant).filter(session=session, user=user).exists()


def calibration_participants(*, tenant: Tenant, session: CalibrationSession) -> list[dict]:
    """Who is invited, with how many items each answered (counts only: answers stay blind)."""
    answered = dict(
        CalibrationAnswer.objects.for_tenant(tenant)
        .filter(session=session)
        .values("user_id")
        .annotate(n=Count("id"))
        .values_list("user_id", "n")
    )
    rows = (
        CalibrationParticipant.objects.for_tenant(tenant)
        .filter(session=session)
        .select_related("user")
        .order_by("user__username")
    )
    return [
        {"id": row.user_id, "username": row.user.get_username(), "answered": answered.get(row.user_id, 0)}
        for row in rows
    ]


def calibration_criteria(*, tenant: Tenant, session: CalibrationSession) -> list[dict]:
    return rubric_criteria(tenant=tenant, rubric_id=session.rubric_id, version=session.rubric_version) or []


def calibration_work(*, tenant: Tenant, session: CalibrationSession, user) -> list[dict]:
    """The items a participant scores, in order, with the output and their own answer only (blind)."""
    items = list(
        CalibrationItem.objects.for_tenant(tenant).filter(session=session).select_related("output").order_by("position")
    )
    mine = {
        answer.item_id: answer
        for answer in CalibrationAnswer.objects.for_tenant(tenant).filter(session=session, user=user)
    }
    return [{"item": item, "output": item.output, "answer": mine.get(item.pk)} for item in items]


@dataclass
class ItemResult:
    """One item's answers side by side: one entry a participant (None: did not answer)."""

    item: CalibrationItem
    answers: list[CalibrationAnswer | None]
    disagreements: list[str]  # the keys (decision, criteria) on which the answers differ
    gold: dict | None = None

    @property
    def disagrees(self) -> bool:
        return bool(self.disagreements)


@dataclass
class CalibrationResults:
    """A closed session's results: items (disagreements first), participants, agreement per criterion."""

    session: CalibrationSession
    participants: list[dict]
    criteria: list[dict]
    items: list[ItemResult]
    agreement: list[CriterionAgreement] = field(default_factory=list)


def _value(answer: CalibrationAnswer, key: str):
    return answer.decision if key == "decision" else answer.scores.get(key)


def calibration_results(*, tenant: Tenant, session: CalibrationSession) -> CalibrationResults:
    """Everyone's answers per item and criterion, the items where they differ first (the most
    differences first, then in order), the gold answer where there is one, and the session's
    agreement: Krippendorff's alpha at the level of each criterion's kind (nominal for the
    decision, binary and categorical criteria, with Fleiss' kappa; ordinal for graded ones)."""
    participants = calibration_participants(tenant=tenant, session=session)
    order = {person["id"]: index for index, person in enumerate(participants)}
    criteria = calibration_criteria(tenant=tenant, session=session)
    keys = ["decision", *(c["key"] for c in criteria if c.get("kind") != "text")]
    items = list(
        CalibrationItem.objects.for_tenant(tenant).filter(session=session).select_related("output").order_by("position")
    )
    answers = list(CalibrationAnswer.objects.for_tenant(tenant).filter(session=session).select_related("user"))
    by_item: dict[int, list[CalibrationAnswer | None]] = {item.pk: [None] * len(participants) for item in items}
    for answer in answers:
        if answer.user_id in order:
            by_item[answer.item_id][order[answer.user_id]] = answer
    results = []
    for item in items:
        given = [answer for answer in by_item[item.pk] if answer is not None]
        differing = []
        for key in keys:
            values = {str(_value(answer, key)) for answer in given if _value(answer, key) is not None}
            if len(values) > 1:
                differing.append(key)
        results.append(
            ItemResult(item, by_item[item.pk], differing, gold_answer(tenant=tenant, output_id=item.output_id))
        )
    results.sort(key=lambda result: (-len(result.disagreements), result.item.position))
    scales = [Scale.for_decision(), *filter(None, (Scale.for_criterion(c) for c in criteria))]
    agreement = []
    position = {item.pk: index for index, item in enumerate(items)}
    for scale in scales:
        units, values = [], []
        for answer in answers:
            raw = _value(answer, scale.key)
            code = DECISION_CODES.get(raw) if scale.key == "decision" else scale.codes.get(raw)
            if code is not None:
                units.append(position[answer.item_id])
                values.append(float(code))
        agreement.append(criterion_agreement(scale, np.asarray(units, dtype=np.int64), np.asarray(values, dtype=float)))
    return CalibrationResults(session, participants, criteria, results, agreement)
