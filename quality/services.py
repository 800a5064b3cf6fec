"""Writes of the quality layer: keyword-only functions in a transaction (house style rule 2).

Golden sets are curated here (created, items promoted from reviewed outputs or imported
from JSONL, removed); every change of a set's items is one new version and one audit
event. The tables live in the reviews layer, which plants their items as tasks.
"""

from collections.abc import Iterator
from datetime import datetime, timedelta

import orjson
from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from pydantic import ValidationError

from hitl.errors import ConflictError, DomainValidationError, NotFoundError, RuleViolationError, pydantic_fields
from policies.models import Judge, Rubric
from policies.scoring import scores_validate
from policies.selectors import rubric_criteria, rubric_get
from policies.services import judge_flag_raise
from quality.agreement import judge_version_agreement
from quality.datasets import DatasetFilter, dataset_count
from quality.models import (
    CalibrationAnswer,
    CalibrationItem,
    CalibrationParticipant,
    CalibrationSession,
    CalibrationStatus,
)
from quality.schemas import GoldItemLine
from reviews.models import Decision, GoldenSet, GoldItem, Output, OutputStatus, Queue, Review
from reviews.services.gold import gold_items_of_version
from reviews.services.webhooks import webhook_event_send
from tenants.audit import Actor, audit_record, audit_record_batch, text_digest
from tenants.auditchain import digest
from tenants.models import Membership, Role, Tenant

MAX_IMPORT_LINES = 10_000
MAX_ERRORS_SHOWN = 50  # errors named in an import's answer; the message counts them all
EXPECTED_OF_DECISION = {Decision.APPROVED: "approve", Decision.REJECTED: "reject", Decision.CORRECTED: "correct"}


def person_of(actor):
    """The person behind an actor (a user, or an API key's person), or None."""
    if isinstance(actor, Actor):
        return actor.person if actor.person is not None else getattr(actor.key, "user", None)
    return actor if getattr(actor, "pk", None) is not None else None


@transaction.atomic
def golden_set_create(
    *, tenant: Tenant, name: str, description: str = "", queue: str | None = None, skill: str | None = None, actor
) -> GoldenSet:
    if bool(queue) == bool(skill):
        message = "Give a queue or a skill, one of the two."
        raise RuleViolationError(f"queue: {message}", fields={"queue": [message], "skill": [message]})
    queue_row = None
    if queue:
        queue_row = Queue.objects.for_tenant(tenant).filter(name=queue).first()
        if queue_row is None:
            raise RuleViolationError(f"queue: no queue named {queue}", fields={"queue": ["No such queue."]})
    try:
        with transaction.atomic():
            golden_set = GoldenSet.objects.for_tenant(tenant).create(
                name=name, description=description, queue=queue_row, skill=skill or ""
            )
    except IntegrityError as error:
        raise ConflictError(f"name: a golden set {name} exists", code="conflict") from error
    audit_record(
        tenant=tenant,
        actor=actor,
        kind="golden_set.created",
        object_type="golden_set",
        object_id=golden_set.pk,
        data={"name": name, "queue": queue_row.pk if queue_row else None, "skill": skill or ""},
    )
    return golden_set


def _set_for_update(tenant: Tenant, golden_set_id: int) -> GoldenSet:
    golden_set = GoldenSet.objects.for_tenant(tenant).select_for_update(no_key=True).filter(pk=golden_set_id).first()
    if golden_set is None:
        raise NotFoundError("Golden set not found.")
    return golden_set


def _next_version(golden_set: GoldenSet) -> int:
    golden_set.version += 1
    golden_set.updated_at = timezone.now()
    golden_set.save(update_fields=["version", "updated_at"])
    return golden_set.version


def _item_digest(item: GoldItem) -> str:
    return digest(
        {
            "id": str(item.pk),
            "application": item.application,
            "output": item.output,
            "expected_decision": item.expected_decision,
            "expected_scores": item.expected_scores,
            "expected_output": item.expected_output,
            "rubric": item.rubric_id,
            "rubric_version": item.rubric_version,
            "source_output": str(item.source_output_id) if item.source_output_id else None,
        }
    )


def _expected_check(
    tenant: Tenant, *, rubric_id, rubric_version, decision: str, scores: dict, expected_output: str, where: str = ""
) -> dict:
    """The expected answer as a reviewer's would be checked: scores against the rubric version."""
    if decision == "correct" and not expected_output:
        message = "Required when the expected decision is correct."
        raise RuleViolationError(f"{where}expected_output: {message}", fields={f"{where}expected_output": [message]})
    criteria = rubric_criteria(tenant=tenant, rubric_id=rubric_id, version=rubric_version)
    try:
        return scores_validate(criteria=criteria, scores=scores, decision=decision)
    except DomainValidationError as error:
        fields = {f"{where}expected_{key}": value for key, value in error.fields.items()}
        raise RuleViolationError(
            f"{where}expected_" + error.message if not where else f"{where}{error.message}", fields=fields
        ) from error


@transaction.atomic
def gold_item_promote(
    *,
    tenant: Tenant,
    golden_set_id: int,
    output_id,
    actor,
    expected_decision: str | None = None,
    expected_scores: dict | None = None,
    expected_output: str | None = None,
    note: str = "",
) -> GoldItem:
    """A reviewed output becomes an item of the set (a new version). The expected answer defaults to
    the output's decision and the scores of the review that decided it."""
    golden_set = _set_for_update(tenant, golden_set_id)
    try:
        output = Output.objects.for_tenant(tenant).filter(pk=output_id).exclude(status=OutputStatus.GOLD).first()
    except (ValueError, DomainValidationError):
        output = None
    if output is None:  # the set exists (the path); the body names no output of this tenant: a 422
        message = "No such output in this tenant."
        raise RuleViolationError(f"output_id: {message}", fields={"output_id": [message]})
    deciding = (
        Review.objects.for_tenant(tenant)
        .filter(output=output)
        .exclude(decision=Review.Verdict.ESCALATE)
        .order_by("reviewer_id" if not output.decided_by_id else "created_at")
    )
    review = deciding.filter(reviewer_id=output.decided_by_id).first() if output.decided_by_id else None
    review = review or deciding.last()
    if review is None:
        message = "Only a reviewed output can be promoted: nobody has reviewed this one yet."
        raise RuleViolationError(f"output_id: {message}", fields={"output_id": [message]})
    decision = expected_decision or EXPECTED_OF_DECISION.get(output.decision) or review.decision
    scores = expected_scores if expected_scores is not None else review.scores
    correction = expected_output if expected_output is not None else ""
    if decision == "correct" and expected_output is None:
        correction = output.final_output if output.decision == Decision.CORRECTED else review.corrected_output
    scores = _expected_check(
        tenant,
        rubric_id=review.rubric_id,
        rubric_version=review.rubric_version,
        decision=decision,
        scores=scores,
        expected_output=correction,
    )
    version = _next_version(golden_set)
    item = GoldItem.objects.for_tenant(tenant).create(
        golden_set=golden_set,
        added_in=version,
        source_output=output,
        application=output.application,
        input=output.input,
        output=output.output,
        trace=output.trace,
        metadata=output.metadata,
        model=output.model,
        confidence=output.confidence,
        risk_tier=output.risk_tier,
        rubric_id=review.rubric_id,
        rubric_version=review.rubric_version,
        expected_decision=decision,
        expected_scores=scores,
        expected_output=correction or "",
        note=note,
        created_by=person_of(actor),
    )
    audit_record(
        tenant=tenant,
        actor=actor,
        kind="golden_set.item_promoted",
        object_type="golden_set",
        object_id=golden_set.pk,
        data={
            "item": str(item.pk),
            "output": str(output.pk),
            "version": version,
            "expected_decision": decision,
            "expected_scores": scores,
        },
    )
    return item


def _rubrics_by_name(tenant: Tenant) -> dict[str, tuple[int, int]]:
    return {
        name: (pk, version)
        for pk, name, version in Rubric.objects.for_tenant(tenant).values_list("pk", "name", "version")
    }


def gold_lines_parse(*, tenant: Tenant, body: bytes) -> list[GoldItemLine]:
    """Every line of a JSONL body checked, or a 400 naming each bad line (``line N: field``); blank ones skipped."""
    errors: dict[str, list[str]] = {}
    parsed: list[tuple[int, GoldItemLine]] = []
    rubrics = _rubrics_by_name(tenant)
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as error:
        raise DomainValidationError("body: not UTF-8 text", fields={"body": [str(error)]}) from error
    lines = text.splitlines()
    if sum(1 for line in lines if line.strip()) > MAX_IMPORT_LINES:
        message = f"At most {MAX_IMPORT_LINES} items an import."
        raise DomainValidationError(f"body: {message}", fields={"body": [message]})
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        where = f"line {number}"
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError as error:
            errors[where] = [f"not JSON ({error})"]
            continue
        if not isinstance(data, dict):
            errors[where] = ["must be a JSON object"]
            continue
        try:
            line = GoldItemLine.model_validate(data)
        except ValidationError as error:
            for field, messages in pydantic_fields(error).items():
                errors[f"{where}: {field}"] = messages
            continue
        if line.rubric is not None and line.rubric not in rubrics:
            errors[f"{where}: rubric"] = [f"No rubric named {line.rubric}."]
            continue
        rubric_id, current = rubrics.get(line.rubric, (None, None)) if line.rubric else (None, None)
        if line.rubric_version is not None and current is not None and line.rubric_version > current:
            errors[f"{where}: rubric_version"] = [f"The rubric {line.rubric} is at version {current}."]
            continue
        try:
            line.expected_scores = _expected_check(
                tenant,
                rubric_id=rubric_id,
                rubric_version=line.rubric_version or current,
                decision=line.expected_decision,
                scores=line.expected_scores,
                expected_output=line.expected_output,
                where=f"{where}: ",
            )
        except DomainValidationError as error:
            errors.update(error.fields)
            continue
        parsed.append((number, line))
    if errors:
        named = dict(list(errors.items())[:MAX_ERRORS_SHOWN])
        more = f" (and {len(errors) - len(named)} more)" if len(errors) > len(named) else ""
        summary = "; ".join(f"{key}: {' '.join(value)}" for key, value in named.items())
        raise DomainValidationError(
            f"Nothing was imported: {len(errors)} errors{more}. {summary}", fields=named, code="import_invalid"
        )
    if not parsed:
        raise DomainValidationError("body: no items (one JSON object a line)", fields={"body": ["No items."]})
    return [line for _, line in parsed]


@transaction.atomic
def gold_items_import(*, tenant: Tenant, golden_set_id: int, body: bytes, actor) -> tuple[GoldenSet, int]:
    """A JSONL import: every line valid or nothing stored; all of it one new version and one audit event."""
    golden_set = _set_for_update(tenant, golden_set_id)
    lines = gold_lines_parse(tenant=tenant, body=body)
    rubrics = _rubrics_by_name(tenant)
    version = _next_version(golden_set)
    now = timezone.now()
    creator = person_of(actor)
    items = GoldItem.objects.for_tenant(tenant).bulk_create(
        [
            GoldItem(
                golden_set=golden_set,
                added_in=version,
                application=line.application,
                input=line.input,
                output=line.output,
                trace=line.trace,
                metadata=line.metadata,
                model=line.model,
                confidence=line.confidence,
                rubric_id=rubrics[line.rubric][0] if line.rubric else None,
                rubric_version=(line.rubric_version or rubrics[line.rubric][1]) if line.rubric else None,
                expected_decision=line.expected_decision,
                expected_scores=line.expected_scores,
                expected_output=line.expected_output,
                note=line.note,
                created_by=creator,
                created_at=now,
            )
            for line in lines
        ]
    )
    audit_record_batch(
        tenant=tenant,
        actor=actor,
        kind="golden_set.items_imported",
        object_type="golden_set_item",
        digests=[(item.pk, _item_digest(item)) for item in items],
    )
    return golden_set, len(items)


@transaction.atomic
def gold_item_remove(*, tenant: Tenant, golden_set_id: int, item_id, actor) -> GoldenSet:
    """The item leaves the set from a new version on (older versions keep it: what they were stays)."""
    golden_set = _set_for_update(tenant, golden_set_id)
    try:
        item = gold_items_of_version(tenant=tenant, golden_set=golden_set).filter(pk=item_id).first()
    except (ValueError, DomainValidationError):
        item = None
    if item is None:
        raise NotFoundError("Item not found.")
    version = _next_version(golden_set)
    item.removed_in = version
    item.save(update_fields=["removed_in"])
    audit_record(
        tenant=tenant,
        actor=actor,
        kind="golden_set.item_removed",
        object_type="golden_set",
        object_id=golden_set.pk,
        data={"item": str(item.pk), "version": version},
    )
    return golden_set


def gold_item_line(item: GoldItem, rubric_names: dict[int, str]) -> dict:
    """An item as a line of the export: what an import reads, plus its id, versions and origin."""
    return {
        "id": str(item.pk),
        "added_in": item.added_in,
        "source_output": str(item.source_output_id) if item.source_output_id else None,
        "application": item.application,
        "input": item.input,
        "output": item.output,
        "trace": item.trace,
        "metadata": item.metadata,
        "model": item.model,
        "confidence": item.confidence,
        "rubric": rubric_names.get(item.rubric_id),
        "rubric_version": item.rubric_version,
        "expected_decision": item.expected_decision,
        "expected_scores": item.expected_scores,
        "expected_output": item.expected_output,
        "note": item.note,
    }


def golden_set_export(*, tenant: Tenant, golden_set_id: int, version: int | None, actor) -> Iterator[bytes]:
    """The set's items at ``version`` (default: current) as JSONL, streamed in chunks; the export is audited
    first (who took which version, how many items), in its own transaction."""
    golden_set = GoldenSet.objects.for_tenant(tenant).filter(pk=golden_set_id).first()
    if golden_set is None:
        raise NotFoundError("Golden set not found.")
    version = golden_set.version if version is None else version
    if not 0 <= version <= golden_set.version:
        message = f"The set has versions 0 to {golden_set.version}."
        raise RuleViolationError(f"version: {message}", fields={"version": [message]})
    items = gold_items_of_version(tenant=tenant, golden_set=golden_set, version=version)
    with transaction.atomic():
        audit_record(
            tenant=tenant,
            actor=actor,
            kind="golden_set.exported",
            object_type="golden_set",
            object_id=golden_set.pk,
            data={"version": version, "items": items.count()},
        )
    rubric_names = dict(Rubric.objects.for_tenant(tenant).values_list("pk", "name"))

    def chunks() -> Iterator[bytes]:
        buffer = []
        for item in items.iterator(chunk_size=500):
            buffer.append(orjson.dumps(gold_item_line(item, rubric_names)) + b"\n")
            if len(buffer) >= 200:
                yield b"".join(buffer)
                buffer = []
        if buffer:
            yield b"".join(buffer)

    return chunks()


CALIBRATION_DECISIONS = ("approve", "reject", "correct")


def judge_flag_settings() -> dict:
    return {
        "threshold": float(settings.HITL_JUDGE_FLAG_BELOW_KAPPA),
        "min_compared": int(settings.HITL_JUDGE_FLAG_MIN_COMPARED),
        "window_days": int(settings.HITL_JUDGE_FLAG_WINDOW_DAYS),
        "sample_rate": settings.HITL_JUDGE_FLAG_SAMPLE_RATE,
    }


def judges_agreement_check(*, tenant: Tenant, now: datetime | None = None) -> list[int]:
    """Flag every active judge whose current version agrees too little with people.

    Over the last ``HITL_JUDGE_FLAG_WINDOW_DAYS`` (by the time people decided), a judge's
    current version with at least ``HITL_JUDGE_FLAG_MIN_COMPARED`` verdicts compared and a
    Cohen's kappa below ``HITL_JUDGE_FLAG_BELOW_KAPPA`` (or undefined: it never agrees beyond
    chance) is flagged: audited (``judge.flagged``), and each webhook endpoint gets a
    ``judge.flagged`` event. Idempotent: a judge flagged already is left as it is until a
    person clears it. Returns the ids of the judges flagged now.

    Each flag in a transaction of its own, taking its judge's row, the tenant's and the audit
    chain's in ``judge_update``'s order: one transaction for them all held the chain's counter
    row (a nested flag's event, appended at once) while it locked the next judge, which an edit
    of that judge held while waiting for the tenant's row.
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
        # One transaction a flag: its judge's row, then the tenant's, then the chain (as judge_update).
        with transaction.atomic():
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
    session = CalibrationSession.objects.for_tenant(tenant).select_for_update(no_key=True).filter(pk=session_id).first()
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
            "comment_sha256": text_digest(comment),
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


def dataset_export_record(*, tenant: Tenant, dataset: DatasetFilter, actor) -> int:
    """Count a dataset's lines and record who exported which filter, and how many lines, before
    it is streamed (``dataset.export``); the count holds for the stream, which reads the outputs
    decided up to ``dataset.as_of`` only."""
    with transaction.atomic():
        lines = dataset_count(tenant=tenant, dataset=dataset)
        audit_record(
            tenant=tenant,
            actor=actor,
            kind="dataset.export",
            object_type="dataset",
            object_id=dataset.format,
            data={**dataset.describe(), "lines": lines},
        )
    return lines
