"""Reads of the quality layer, each taking the tenant."""

from datetime import datetime, timedelta

from django.db.models import Case, Count, IntegerField, Q, QuerySet, Value, When
from django.utils import timezone

from hitl.errors import NotFoundError
from reviews.models import (
    Certification,
    CertificationStatus,
    Exam,
    GoldenSet,
    GoldItem,
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
