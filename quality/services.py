"""Writes of the quality layer: keyword-only functions in a transaction (house style rule 2)."""

from datetime import datetime, timedelta

from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import transaction
from django.utils import timezone

from hitl.errors import ConflictError, DomainValidationError, NotFoundError, RuleViolationError
from policies.models import Judge
from policies.scoring import scores_validate
from policies.selectors import rubric_criteria, rubric_get
from policies.services import judge_flag_raise
from quality.agreement import judge_version_agreement
from quality.models import (
    CalibrationAnswer,
    CalibrationItem,
    CalibrationParticipant,
    CalibrationSession,
    CalibrationStatus,
)
from reviews.models import Output
from reviews.services.webhooks import webhook_event_send
from tenants.audit import audit_record
from tenants.models import Membership, Role, Tenant

CALIBRATION_DECISIONS = ("approve", "reject", "correct")


def judge_flag_settings() -> dict:
    return {
        "threshold": float(settings.HITL_JUDGE_FLAG_BELOW_KAPPA),
        "min_compared": int(settings.HITL_JUDGE_FLAG_MIN_COMPARED),
        "window_days": int(settings.HITL_JUDGE_FLAG_WINDOW_DAYS),
        "sample_rate": settings.HITL_JUDGE_FLAG_SAMPLE_RATE,
    }


@transaction.atomic
def judges_agreement_check(*, tenant: Tenant, now: datetime | None = None) -> list[int]:
    """Flag every active judge whose current version agrees too little with people.

    Over the last ``HITL_JUDGE_FLAG_WINDOW_DAYS`` (by the time people decided), a judge's
    current version with at least ``HITL_JUDGE_FLAG_MIN_COMPARED`` verdicts compared and a
    Cohen's kappa below ``HITL_JUDGE_FLAG_BELOW_KAPPA`` (or undefined: it never agrees beyond
    chance) is flagged: audited (``judge.flagged``), and each webhook endpoint gets a
    ``judge.flagged`` event. Idempotent: a judge flagged already is left as it is until a
    person clears it. Returns the ids of the judges flagged now.
    """
    now = now or timezone.now()
    config = judge_flag_settings()
    start = now - timedelta(days=config["window_days"])
    judges = {judge.pk: judge for judge in Judge.objects.for_tenant(tenant).filter(is_active=True)}
    flagged = []
    for figure in judge_version_agreement(tenant=tenant, start=start, end=now):
        judge = judges.get(figure.judge)
        if judge is None or figure.version != judge.version or figure.compared < config["min_compared"]:
            continue
        if figure.kappa is not None and figure.kappa >= config["threshold"]:
            continue
        flag = judge_flag_raise(
            tenant=tenant,
            judge=judge,
            kappa=figure.kappa,
            agreement_rate=figure.percent_agreement,
            compared=figure.compared,
            threshold=config["threshold"],
            sample_rate=config["sample_rate"],
            period_start=start,
            period_end=now,
        )
        if flag is None:
            continue
        webhook_event_send(
            tenant=tenant,
            event="judge.flagged",
            payload={
                "judge": {"id": judge.pk, "name": judge.name, "kind": judge.kind, "version": judge.version},
                "flag": {
                    "id": flag.pk,
                    "kappa": flag.kappa,
                    "agreement_rate": flag.agreement_rate,
                    "compared": flag.compared,
                    "threshold": flag.threshold,
                    "sample_rate": flag.sample_rate,
                    "period_start": start.isoformat(),
                    "period_end": now.isoformat(),
                    "flagged_at": flag.flagged_at.isoformat(),
                },
            },
        )
        flagged.append(judge.pk)
    return flagged


# Calibration sessions (issue 13 point 3; seed 002: "multiple reviewers score the same set of
# conversations, compare notes, and align on interpretation").

CALIBRATION_MAX_ITEMS = 200
CALIBRATION_ROLES = frozenset({Role.REVIEWER, Role.QUALITY_LEAD, Role.ADMIN})


@transaction.atomic
def calibration_session_create(
    *, tenant: Tenant, user, name: str, rubric_name: str, output_ids: list, participant_ids: list[int]
) -> CalibrationSession:
    """A session over the tenant's outputs, under the rubric's current version, with people invited.

    Items keep the order given; every output and person must be the tenant's (else a 404,
    as for anything unknown), and participants must be reviewers, quality leads or admins.
    """
    name = (name or "").strip()
    if not name or len(name) > 200:
        raise RuleViolationError("name: 1 to 200 characters, not only spaces", fields={"name": ["Not only spaces."]})
    ids = list(dict.fromkeys(str(value) for value in output_ids))
    if not ids or len(ids) > CALIBRATION_MAX_ITEMS:
        message = f"between 1 and {CALIBRATION_MAX_ITEMS} distinct outputs"
        raise DomainValidationError(f"outputs: {message}", fields={"outputs": [message.capitalize() + "."]})
    people = list(dict.fromkeys(participant_ids))
    if len(people) < 2:  # the schema asks for two entries; that they be two people is this rule's
        raise RuleViolationError(
            "participants: invite at least two distinct people", fields={"participants": ["At least two people."]}
        )
    rubric = rubric_get(tenant=tenant, name=rubric_name)
    try:
        found = set(Output.objects.for_tenant(tenant).filter(pk__in=ids).values_list("pk", flat=True))
    except (ValueError, DjangoValidationError):
        found = set()
    missing = [value for value in ids if value not in {str(pk) for pk in found}]
    if missing:
        raise NotFoundError(f"outputs: output {missing[0]} not found.")
    members = dict(Membership.objects.for_tenant(tenant).filter(user_id__in=people).values_list("user_id", "role"))
    for person in people:
        if person not in members:
            raise NotFoundError(f"participants: person {person} is not a member.")
        if members[person] not in CALIBRATION_ROLES:
            message = f"person {person} is a {members[person]}: only reviewers, quality leads and admins score"
            raise RuleViolationError(f"participants: {message}", fields={"participants": [message]})
    session = CalibrationSession.objects.for_tenant(tenant).create(
        name=name, rubric=rubric, rubric_version=rubric.version, created_by=user
    )
    CalibrationItem.objects.for_tenant(tenant).bulk_create(
        [
            CalibrationItem(tenant=tenant, session=session, output_id=value, position=i + 1)
            for i, value in enumerate(ids)
        ]
    )
    CalibrationParticipant.objects.for_tenant(tenant).bulk_create(
        [CalibrationParticipant(tenant=tenant, session=session, user_id=person) for person in people]
    )
    audit_record(
        tenant=tenant,
        actor=user,
        kind="calibration.created",
        object_type="calibration_session",
        object_id=session.pk,
        data={
            "name": name,
            "rubric": rubric.pk,
            "rubric_version": rubric.version,
            "outputs": ids,
            "participants": people,
        },
    )
    return session


def _session_for_update(tenant: Tenant, session_id) -> CalibrationSession:
    session = CalibrationSession.objects.for_tenant(tenant).select_for_update().filter(pk=session_id).first()
    if session is None:
        raise NotFoundError("Calibration session not found.")
    return session


@transaction.atomic
def calibration_answer_submit(
    *, tenant: Tenant, user, session_id, item_id, decision: str, scores=None, comment: str = ""
) -> CalibrationAnswer:
    """A participant's answer on one item (again: replaces theirs), blind, while the session is open.

    Scores are checked against the session's rubric version as a review's are (errors name
    ``scores.<key>``); a person not invited gets the 404 of a session that does not exist.
    """
    session = _session_for_update(tenant, session_id)
    if not CalibrationParticipant.objects.for_tenant(tenant).filter(session=session, user=user).exists():
        raise NotFoundError("Calibration session not found.")
    if session.status != CalibrationStatus.OPEN:
        raise ConflictError("The session is closed: answers can no longer change.", code="session_closed")
    item = CalibrationItem.objects.for_tenant(tenant).filter(session=session, pk=item_id).first()
    if item is None:
        raise NotFoundError("Item not found in this session.")
    if decision not in CALIBRATION_DECISIONS:
        message = f"one of {', '.join(CALIBRATION_DECISIONS)}"
        raise DomainValidationError(f"decision: {message}", fields={"decision": [message.capitalize() + "."]})
    criteria = rubric_criteria(tenant=tenant, rubric_id=session.rubric_id, version=session.rubric_version)
    scores = scores_validate(criteria=criteria, scores=scores, decision=decision)
    now = timezone.now()
    answer, created = CalibrationAnswer.objects.for_tenant(tenant).update_or_create(
        item=item,
        user=user,
        defaults={"decision": decision, "scores": scores, "comment": comment, "updated_at": now, "session": session},
        create_defaults={
            "decision": decision,
            "scores": scores,
            "comment": comment,
            "created_at": now,
            "updated_at": now,
            "session": session,
            "tenant": tenant,
        },
    )
    audit_record(
        tenant=tenant,
        actor=user,
        kind="calibration.answered",
        object_type="calibration_session",
        object_id=session.pk,
        data={
            "item": item.pk,
            "output": item.output_id,
            "decision": decision,
            "scores": scores,
            "comment": comment,
            "replaced": not created,
        },
    )
    return answer


@transaction.atomic
def calibration_session_close(*, tenant: Tenant, user, session_id) -> CalibrationSession:
    """Close a session: answers freeze and everyone invited sees the results side by side."""
    session = _session_for_update(tenant, session_id)
    if session.status == CalibrationStatus.CLOSED:
        raise ConflictError("The session is closed already.", code="session_closed")
    answered = CalibrationAnswer.objects.for_tenant(tenant).filter(session=session).count()
    session.status, session.closed_by, session.closed_at = CalibrationStatus.CLOSED, user, timezone.now()
    session.save(update_fields=["status", "closed_by", "closed_at"])
    audit_record(
        tenant=tenant,
        actor=user,
        kind="calibration.closed",
        object_type="calibration_session",
        object_id=session.pk,
        data={"answers": answered},
    )
    return session
