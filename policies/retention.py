"""Retention per tenant and legal holds: the writes (services) and the reads (selectors).

How long a tenant keeps outputs' payloads is configuration, owned here with the rest of
the tenant's governance settings; the redaction itself writes outputs and reviews, so it
lives in the layer that owns them (``reviews.services.retention``), which reads the period
and the holds through this module. Every change is versioned by django-simple-history
(who, when, why) like the policy.
"""

from datetime import datetime, timedelta

from django.db import IntegrityError, transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from hitl.errors import DomainValidationError, NotFoundError, RuleViolationError
from policies.models import RETENTION_DEFAULT_DAYS, RETENTION_MIN_DAYS, LegalHold, Retention
from tenants.audit import audit_record
from tenants.models import Tenant

RETENTION_MAX_DAYS = 36_500  # a hundred years: beyond it is a typo, not a policy


def retention_get(*, tenant: Tenant) -> Retention | None:
    return Retention.objects.for_tenant(tenant).filter().first()


def retention_days(*, tenant: Tenant) -> int:
    """The tenant's period in days (the default when it never set one), never below the floor."""
    retention = retention_get(tenant=tenant)
    return max(retention.days if retention else RETENTION_DEFAULT_DAYS, RETENTION_MIN_DAYS)


def retention_cutoff(*, days: int, now: datetime) -> datetime:
    """Outputs received before this moment are past retention. ``days`` below the floor count as
    the floor: whatever a caller passes, nothing younger than six months is ever redacted."""
    return now - timedelta(days=max(int(days), RETENTION_MIN_DAYS))


def retention_days_check(days) -> int:
    if isinstance(days, bool) or not isinstance(days, int):
        raise DomainValidationError("days: a whole number of days", fields={"days": ["A whole number of days."]})
    if days < RETENTION_MIN_DAYS:
        message = f"At least {RETENTION_MIN_DAYS} days (six months: EU AI Act Art. 19 and 26(6))."
        raise RuleViolationError(f"days: {message}", fields={"days": [message]})
    if days > RETENTION_MAX_DAYS:
        message = f"At most {RETENTION_MAX_DAYS} days."
        raise RuleViolationError(f"days: {message}", fields={"days": [message]})
    return days


@transaction.atomic
def retention_set(*, tenant: Tenant, days: int, user=None, reason: str = "") -> Retention:
    """Set how long the tenant keeps payloads; the reason goes into the history record."""
    days = retention_days_check(days)
    retention = Retention.objects.for_tenant(tenant).select_for_update(no_key=True).filter().first()
    if retention is None:
        retention = Retention(tenant=tenant)
    before = retention.days if retention.pk else None
    retention.days = days
    retention.updated_by = user
    retention._history_user = user
    retention._change_reason = reason or f"retention {days} days"
    retention.save()
    audit_record(
        tenant=tenant,
        actor=user,
        kind="retention.set",
        object_type="retention",
        object_id=retention.pk,
        data={"before": {"days": before}, "after": {"days": days}, "reason": reason},
    )
    return retention


def retention_watermark_set(*, tenant: Tenant, through: datetime | None) -> None:
    """The retention job's progress (operational, kept out of the history: hence update())."""
    Retention.objects.for_tenant(tenant).filter().update(redacted_through=through)


def retention_row_ensure(*, tenant: Tenant) -> Retention:
    """The tenant's row, created with the default period when it has none (the job keeps its watermark
    there); its creation is a configuration change like any other: in the history and the audit chain."""
    retention = retention_get(tenant=tenant)
    if retention is None:
        with transaction.atomic():
            retention = Retention(tenant=tenant, days=RETENTION_DEFAULT_DAYS)
            retention._change_reason = f"retention {RETENTION_DEFAULT_DAYS} days: the default, until an admin sets it"
            try:
                with transaction.atomic():  # (a savepoint: another process may create it at the same moment)
                    retention.save()
            except IntegrityError:
                return Retention.objects.for_tenant(tenant).get()
            audit_record(
                tenant=tenant,
                actor=None,  # the system: the retention job, or the first hold, made the default explicit
                kind="retention.set",
                object_type="retention",
                object_id=retention.pk,
                data={"before": {"days": None}, "after": {"days": RETENTION_DEFAULT_DAYS}, "reason": "the default"},
            )
    return retention


# Legal holds -----------------------------------------------------------------


def _retention_lock(tenant: Tenant) -> None:
    """Holds change under the lock the retention job takes for each batch, so that a batch sees
    every hold placed before it and none is placed in the middle of one."""
    retention = retention_row_ensure(tenant=tenant)
    Retention.objects.for_tenant(tenant).select_for_update(no_key=True).filter(pk=retention.pk).first()


def legal_holds(*, tenant: Tenant, active: bool | None = None) -> QuerySet[LegalHold]:
    holds = LegalHold.objects.for_tenant(tenant).select_related("placed_by", "released_by")
    if active is not None:
        holds = holds.filter(released_at__isnull=active)
    return holds.order_by("-placed_at", "-pk")


def held_outputs_q(holds) -> Q:
    """A condition on outputs (``application``, ``received_at``) true for those any of ``holds`` covers."""
    covered = Q(pk__in=[])
    for hold in holds:
        condition = Q()
        if hold.application:
            condition &= Q(application=hold.application)
        if hold.received_from is not None:
            condition &= Q(received_at__gte=hold.received_from)
        if hold.received_until is not None:
            condition &= Q(received_at__lt=hold.received_until)
        covered |= condition
    return covered


def hold_covers(hold: LegalHold, *, application: str, received_at: datetime) -> bool:
    return (
        (not hold.application or hold.application == application)
        and (hold.received_from is None or received_at >= hold.received_from)
        and (hold.received_until is None or received_at < hold.received_until)
    )


@transaction.atomic
def legal_hold_place(
    *,
    tenant: Tenant,
    reason: str,
    application: str = "",
    received_from: datetime | None = None,
    received_until: datetime | None = None,
    user=None,
) -> LegalHold:
    """Suspend retention for an application, a period, or an application in a period."""
    fields: dict[str, list[str]] = {}
    application = (application or "").strip()
    reason = (reason or "").strip()
    if not reason:
        fields["reason"] = ["Say why: the reason is kept with the hold."]
    if not application and received_from is None and received_until is None:
        fields["application"] = ["Name an application, a period, or both."]
    if received_from is not None and received_until is not None and received_from >= received_until:
        fields["received_until"] = ["Must be after the start of the period."]
    if fields:
        raise RuleViolationError("; ".join(f"{key}: {' '.join(value)}" for key, value in fields.items()), fields=fields)
    _retention_lock(tenant)
    hold = LegalHold(
        tenant=tenant,
        application=application,
        received_from=received_from,
        received_until=received_until,
        reason=reason,
        placed_by=user,
    )
    hold._history_user = user
    hold._change_reason = reason
    hold.save()
    audit_record(
        tenant=tenant,
        actor=user,
        kind="legal_hold.placed",
        object_type="legal_hold",
        object_id=hold.pk,
        data={"after": _hold_data(hold), "reason": reason},
    )
    return hold


@transaction.atomic
def legal_hold_release(*, tenant: Tenant, hold_id: int, reason: str, user=None) -> LegalHold:
    """End a hold; the outputs it kept become subject to retention at the job's next run."""
    _retention_lock(tenant)
    hold = LegalHold.objects.for_tenant(tenant).select_for_update(no_key=True).filter(pk=hold_id).first()
    if hold is None:
        raise NotFoundError("Legal hold not found.")
    reason = (reason or "").strip()
    if not reason:
        raise RuleViolationError("reason: say why the hold ends", fields={"reason": ["Say why the hold ends."]})
    if hold.released_at is not None:
        raise RuleViolationError("This hold was already released.", code="already_released")
    hold.released_at = timezone.now()
    hold.released_by = user
    hold.release_reason = reason
    hold._history_user = user
    hold._change_reason = reason
    hold.save(update_fields=["released_at", "released_by", "release_reason"])
    # What the hold kept may lie behind the job's watermark: make it look again.
    retention_watermark_set(tenant=tenant, through=None)
    audit_record(
        tenant=tenant,
        actor=user,
        kind="legal_hold.released",
        object_type="legal_hold",
        object_id=hold.pk,
        data={"before": _hold_data(hold), "reason": reason},
    )
    return hold


def _hold_data(hold: LegalHold) -> dict:
    return {
        "application": hold.application,
        "received_from": hold.received_from.isoformat() if hold.received_from else None,
        "received_until": hold.received_until.isoformat() if hold.received_until else None,
    }
