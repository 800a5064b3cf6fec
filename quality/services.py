"""Writes of the quality layer: keyword-only functions in a transaction (house style rule 2).

Golden sets are curated here (created, items promoted from reviewed outputs or imported
from JSONL, removed); every change of a set's items is one new version and one audit
event. The tables live in the reviews layer, which plants their items as tasks.
"""

from collections.abc import Iterator

import orjson
from django.db import IntegrityError, transaction
from django.utils import timezone
from pydantic import ValidationError

from hitl.errors import ConflictError, DomainValidationError, NotFoundError, RuleViolationError, pydantic_fields
from policies.models import Rubric
from policies.scoring import scores_validate
from policies.selectors import rubric_criteria
from quality.schemas import GoldItemLine
from reviews.models import Decision, GoldenSet, GoldItem, Output, OutputStatus, Queue, Review
from reviews.services.gold import gold_items_of_version
from tenants.audit import Actor, audit_record, audit_record_batch
from tenants.auditchain import digest
from tenants.models import Tenant

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
    golden_set = GoldenSet.objects.for_tenant(tenant).select_for_update().filter(pk=golden_set_id).first()
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
