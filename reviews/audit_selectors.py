"""Reads for the auditor's pages (``/audit/``): the output search, an output's full story,
and the history of every configuration with diffs. Every function takes the tenant.

The search is keyset-paginated on ``(received_at, id)`` newest first, so that a page deep
in millions of outputs costs what the first one does; its filters map onto the output
indexes (``output_tenant_received``, ``output_tenant_app_received``,
``output_tenant_status_received``) and the reviewer filter onto the review's reviewer index.
"""

import base64
import binascii
import difflib
import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.db import connection, connections
from django.db.models import F, Min, OuterRef, Q, QuerySet, Subquery
from django.db.models.expressions import Window
from django.db.models.functions import Lag
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from hitl.db import created_before, read_database
from hitl.errors import NotFoundError
from policies.models import Application, Judge, LegalHold, Policy, Retention, Rubric
from policies.retention import hold_covers, legal_holds, retention_days
from policies.selectors import compiled_policy_version, rubric_criteria
from reviews.models import (
    Decision,
    Feedback,
    Judgement,
    Output,
    OutputStatus,
    Queue,
    QueueAccessEvent,
    Review,
    ReviewTask,
    TaskPurpose,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
)
from reviews.services.ingest import output_audit_digest_of
from tenants import auditchain
from tenants.models import ApiKey, AuditEvent, Membership, Role, Tenant
from tenants.selectors import members_of

SEARCH_PAGE_SIZE = 50

# What the search's "decision" filter offers: the final decision, or where an undecided output is.
DECISION_FILTERS = {
    "approved": ("Approved by people", Q(decision=Decision.APPROVED)),
    "rejected": ("Rejected", Q(decision=Decision.REJECTED)),
    "corrected": ("Corrected", Q(decision=Decision.CORRECTED)),
    "auto_approved": ("Auto-approved (not sampled)", Q(status=OutputStatus.AUTO_APPROVED)),
    "blocked": ("Blocked", Q(status=OutputStatus.BLOCKED)),
    "pending": ("Waiting for people", Q(status=OutputStatus.PENDING_REVIEW)),
    "judging": ("Waiting for judges", Q(status__in=(OutputStatus.RECEIVED, OutputStatus.JUDGING))),
}

# Only what the table shows: never the payloads.
SEARCH_COLUMNS = (
    "id",
    "external_id",
    "application",
    "risk_tier",
    "review_required",
    "decision_reason",
    "sampling_draw",
    "policy_version",
    "status",
    "decision",
    "decided_at",
    "decided_by__username",
    "received_at",
    "redacted_at",
)


# The search ------------------------------------------------------------------


REVIEWING_ROLES = (Role.REVIEWER, Role.ADMIN)  # the roles that review


def audit_reviewers(*, tenant: Tenant) -> list[tuple[int, str]]:
    """``(user id, label)`` of everyone who may have reviewed in the tenant, by username: the
    members who review now, and people who did in a role that reviews once (a membership removed,
    a role changed), found in the membership events of the audit trail (a few rows, read over
    the index on the object), labelled as former reviewers."""
    now = {m.user_id for m in members_of(tenant=tenant) if m.role in REVIEWING_ROLES}
    once = set()
    events = AuditEvent.objects.for_tenant(tenant).filter(object_type="membership").values_list("data", flat=True)
    for data in events:
        data = data or {}
        roles = {(data.get(side) or {}).get("role") for side in ("before", "after")}
        if roles & {role.value for role in REVIEWING_ROLES} and isinstance(data.get("user"), int):
            once.add(data["user"])
    names = dict(get_user_model().objects.filter(pk__in=now | once).values_list("pk", "username"))
    return sorted(
        ((pk, name if pk in now else f"{name} (former reviewer)") for pk, name in names.items()),
        key=lambda choice: choice[1].lower(),
    )


def username_of(*, user_id: int) -> str | None:
    """A person's username (people are no tenant's; what a tenant's records name them by)."""
    return get_user_model().objects.filter(pk=user_id).values_list("username", flat=True).first()


def audit_applications(*, tenant: Tenant) -> list[str]:
    """The applications that sent outputs, sorted. On PostgreSQL a loose index scan of
    ``output_tenant_app_received`` (one index probe per application, not a walk over every
    output: a DISTINCT reads the whole index, which at millions of outputs is the page's cost)."""
    using = read_database()
    if connections[using].vendor != "postgresql":
        return list(
            Output.objects.for_tenant(tenant)
            .using(using)
            .order_by("application")
            .values_list("application", flat=True)
            .distinct()
        )
    table = Output._meta.db_table
    sql = f"""
        WITH RECURSIVE apps(application) AS (
            (SELECT application FROM {table} WHERE tenant_id = %s ORDER BY application LIMIT 1)
            UNION ALL
            SELECT (SELECT o.application FROM {table} o
                     WHERE o.tenant_id = %s AND o.application > apps.application
                     ORDER BY o.application LIMIT 1)
              FROM apps WHERE apps.application IS NOT NULL
        )
        SELECT application FROM apps WHERE application IS NOT NULL
    """  # noqa: S608 (the table name is the model's)
    with connections[using].cursor() as cursor:
        cursor.execute(sql, [tenant.pk, tenant.pk])
        return [row[0] for row in cursor.fetchall()]


# The same filters on a record of the compliance export (reviews.export), for the search's CSV.
_DECISION_MATCHES = {
    "approved": lambda r: r["final_decision"] == Decision.APPROVED,
    "rejected": lambda r: r["final_decision"] == Decision.REJECTED,
    "corrected": lambda r: r["final_decision"] == Decision.CORRECTED,
    "auto_approved": lambda r: r["status"] == OutputStatus.AUTO_APPROVED,
    "blocked": lambda r: r["status"] == OutputStatus.BLOCKED,
    "pending": lambda r: r["status"] == OutputStatus.PENDING_REVIEW,
    "judging": lambda r: r["status"] in (OutputStatus.RECEIVED, OutputStatus.JUDGING),
}


def audit_record_matches(record: dict, values: dict, reviewer: str | None) -> bool:
    """Whether an export record passes the search's filters (the period is the export's own)."""
    if values.get("application") and record["application"] != values["application"]:
        return False
    if values.get("tier") and record["tier"] != values["tier"]:
        return False
    if values.get("decision") and not _DECISION_MATCHES[values["decision"]](record):
        return False
    if values.get("reviewer_id") is not None:
        return any(review["reviewer"] == reviewer for review in record.get("reviews", ()))
    return True


def cursor_encode(received_at: datetime, output_id) -> str:
    raw = f"{received_at.isoformat()}|{output_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def cursor_decode(cursor: str) -> tuple[datetime, uuid.UUID] | None:
    """The position a cursor names, or None for a cursor that is not one of ours."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        moment, _, output_id = raw.partition("|")
        parsed = parse_datetime(moment)
        if parsed is None or timezone.is_naive(parsed):
            return None
        return parsed, uuid.UUID(output_id)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        return None


def audit_output_search(
    *,
    tenant: Tenant,
    received_from: datetime | None = None,
    received_until: datetime | None = None,
    application: str = "",
    tier: str = "",
    decision: str = "",
    reviewer_id: int | None = None,
) -> QuerySet[Output]:
    """The tenant's outputs matching the filters, newest first, as rows of ``SEARCH_COLUMNS``
    plus ``sla_due`` (the earliest due time of its approval tasks)."""
    # A replica when one is configured (DATABASE_REPLICA_URL): auditors never slow ingest and claims.
    outputs = Output.objects.for_tenant(tenant).using(read_database())
    if received_from is not None:
        outputs = outputs.filter(received_at__gte=received_from)
    if received_until is not None:
        outputs = outputs.filter(received_at__lt=received_until)
    if application:
        outputs = outputs.filter(application=application)
    if tier:
        outputs = outputs.filter(risk_tier=tier)
    if decision in DECISION_FILTERS:
        outputs = outputs.filter(DECISION_FILTERS[decision][1])
    if reviewer_id is not None:
        # Through the review's reviewer index: the outputs this person reviewed, not a scan of all.
        reviewed = Review.objects.for_tenant(tenant).filter(reviewer_id=reviewer_id).values("output_id")
        outputs = outputs.filter(pk__in=reviewed)
    due = (
        ReviewTask.objects.for_tenant(tenant)
        .filter(output_id=OuterRef("pk"), purpose=TaskPurpose.APPROVAL)
        .order_by()
        .values("output_id")
        .annotate(first=Min("due_at"))
        .values("first")
    )
    return outputs.annotate(sla_due=Subquery(due)).order_by("-received_at", "-id").values(*SEARCH_COLUMNS, "sla_due")


@dataclass(frozen=True)
class OutputPage:
    """One page of a search, newest first, with the cursors of the pages beside it ('' where none)."""

    rows: list[dict]
    older: str  # the ``after`` cursor of the next, older page
    newer: str  # the ``before`` cursor of the previous, newer page


def audit_output_page(rows: QuerySet, *, after: str = "", before: str = "", size: int | None = None) -> OutputPage:
    """One page of :func:`audit_output_search` (newest first): the one after the cursor ``after``
    (older rows), or the one before the cursor ``before`` (newer rows, read oldest first over the
    same index and turned round), or the first."""
    size = size or SEARCH_PAGE_SIZE
    position = cursor_decode(before or after) if (before or after) else None
    newer_side = bool(before) and position is not None
    if position is not None:
        moment, output_id = position
        # The bound on received_at alone is what the index range-scans; the OR only breaks ties
        # (an OR on its own made PostgreSQL walk the index from the newest row: 100x slower mid-way).
        if newer_side:
            rows = rows.filter(received_at__gte=moment).filter(Q(received_at__gt=moment) | Q(id__gt=output_id))
            rows = rows.reverse()
        else:
            rows = rows.filter(received_at__lte=moment).filter(Q(received_at__lt=moment) | Q(id__lt=output_id))
    page = list(rows[: size + 1])
    more = len(page) > size
    page = page[:size]
    if newer_side:
        page.reverse()

    def cursor_of(row: dict) -> str:
        return cursor_encode(row["received_at"], row["id"])

    if newer_side:  # came from an older page: there is one after this; newer ones if more were read
        older, newer = (cursor_of(page[-1]) if page else ""), (cursor_of(page[0]) if more and page else "")
    else:
        older = cursor_of(page[-1]) if more else ""
        newer = cursor_of(page[0]) if position is not None and page else ""
    now = timezone.now()
    decisions, statuses = dict(Decision.choices), dict(OutputStatus.choices)
    for row in page:
        row["decision_label"] = decisions.get(row["decision"]) or statuses.get(row["status"], row["status"])
        row["sla"] = sla_state(
            review_required=row["review_required"], due=row["sla_due"], decided_at=row["decided_at"], now=now
        )
    return OutputPage(page, older, newer)


def sla_state(*, review_required: bool, due: datetime | None, decided_at: datetime | None, now: datetime) -> str:
    """The export's words (``reviews.export``): ``met``, ``missed`` (decided late, or undecided past
    due), ``pending`` (undecided, not yet due), or ``''`` (nobody had to review it: the export's ``none``)."""
    if not review_required or due is None:
        return ""
    if decided_at is not None:
        return "met" if decided_at <= due else "missed"
    return "missed" if now > due else "pending"


# The story of one output -----------------------------------------------------


@dataclass
class StoryEvent:
    """One line of an output's story, in time order."""

    at: datetime
    kind: str  # received, classified, judged, reclassified, task, claimed, review, decided, feedback, delivery, audit
    title: str
    order: int = 0  # ties at the same instant keep the life's order
    data: dict = field(default_factory=dict)


def text_diff(original: str, changed: str) -> list[tuple[str, str]]:
    """Word-level differences as ``(op, text)`` with op ``same``, ``del`` or ``ins``."""
    before, after = original.split(" "), changed.split(" ")
    parts: list[tuple[str, str]] = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(a=before, b=after, autojunk=False).get_opcodes():
        if op == "equal":
            parts.append(("same", " ".join(before[i1:i2])))
            continue
        if op in ("delete", "replace"):
            parts.append(("del", " ".join(before[i1:i2])))
        if op in ("insert", "replace"):
            parts.append(("ins", " ".join(after[j1:j2])))
    return [(op, text + " ") for op, text in parts]


def _rate_of(tenant: Tenant, output: Output, tier_name: str) -> dict:
    """The tier ``tier_name`` of the policy version that classified the output, as it was then."""
    if output.policy_version is None:
        return {}
    try:
        policy = compiled_policy_version(tenant=tenant, version=output.policy_version)
    except Exception:  # a version the history no longer has: say so rather than fail the page
        return {"missing": True}
    tier = policy.tiers.get(tier_name)
    if tier is None:
        return {}
    return {
        "review_rate": tier.review_rate,
        "mode": tier.mode,
        "sla_minutes": tier.sla_minutes,
        "required_approvals": tier.required_approvals,
        "min_reviewer_level": tier.min_reviewer_level,
        "rubric": tier.rubric or "",
    }


def audit_output_story(*, tenant: Tenant, output_id) -> dict:
    """Everything that happened to one output, each event with its time, in order."""
    output = Output.objects.for_tenant(tenant).select_related("decided_by").filter(pk=output_id).first()
    if output is None:
        raise NotFoundError("Output not found.")
    tier, reason = output.ingest_classification
    events: list[StoryEvent] = [
        StoryEvent(output.received_at, "received", "Received", 0),
        StoryEvent(
            output.received_at,
            "classified",
            f"Classified {tier or '(no tier)'} under policy v{output.policy_version}",
            1,
            {"tier": _rate_of(tenant, output, tier), "tier_name": tier, "reason": reason},
        ),
    ]
    if output.received_risk_tier is not None and output.judged_at is not None:  # the judges' completion changed it
        events.append(
            StoryEvent(
                output.judged_at,
                "reclassified",
                f"The judges' verdicts decided: tier {output.risk_tier or '(no tier)'}",
                2,
                {"tier_name": output.risk_tier, "reason": output.decision_reason},
            )
        )
    judgements = list(
        Judgement.objects.for_tenant(tenant).filter(output_id=output.pk).select_related("judge").order_by("created_at")
    )
    for judgement in judgements:
        events.append(
            StoryEvent(
                judgement.created_at,
                "judged",
                f"Judge {judgement.judge.name} v{judgement.judge_version}: {judgement.result}",
                2,
                {"judgement": judgement},
            )
        )
    tasks = list(
        ReviewTask.objects.for_tenant(tenant)
        .filter(output_id=output.pk)
        .select_related("queue", "claimed_by", "rubric")
        .order_by("created_at", "id")
    )
    for task in tasks:
        events.append(
            StoryEvent(
                task.created_at,
                "task",
                f"Task for {task.get_purpose_display().lower()} in queue {task.queue.name}",
                3,
                {"task": task},
            )
        )
        if task.claimed_at is not None:
            events.append(StoryEvent(task.claimed_at, "claimed", f"Claimed by {task.claimed_by}", 4, {"task": task}))
    reviews = list(
        Review.objects.for_tenant(tenant)
        .filter(output_id=output.pk)
        .select_related("reviewer", "rubric")
        .order_by("created_at")
    )
    for review in reviews:
        criteria = rubric_criteria(tenant=tenant, rubric_id=review.rubric_id, version=review.rubric_version) or []
        labels = {criterion["key"]: criterion.get("label", criterion["key"]) for criterion in criteria}
        events.append(
            StoryEvent(
                review.created_at,
                "review",
                f"{review.get_decision_display()} by {review.reviewer}",
                5,
                {
                    "review": review,
                    "scores": [(labels.get(key, key), value) for key, value in (review.scores or {}).items()],
                    "shown_matches": (review.shown or {}).get("content_hash") == output.content_hash,
                    "diff": text_diff(output.output, review.corrected_output)
                    if review.corrected_output and not output.redacted_at
                    else [],
                },
            )
        )
    if output.decided_at is not None:
        events.append(
            StoryEvent(
                output.decided_at,
                "decided",
                f"Decided: {output.get_decision_display() or output.get_status_display()}",
                6,
                {"decided_by": output.decided_by},
            )
        )
    for item in Feedback.objects.for_tenant(tenant).filter(output_id=output.pk).order_by("created_at"):
        events.append(
            StoryEvent(item.created_at, "feedback", f"End user: {item.get_rating_display()}", 7, {"feedback": item})
        )
    deliveries = list(
        WebhookDelivery.objects.for_tenant(tenant)
        .filter(output_id=output.pk)
        .select_related("endpoint")
        .order_by("created_at")
    )
    attempts: dict = {}
    for attempt in WebhookAttempt.objects.for_tenant(tenant).filter(delivery__in=deliveries).order_by("attempted_at"):
        attempts.setdefault(attempt.delivery_id, []).append(attempt)
    for delivery in deliveries:
        events.append(
            StoryEvent(
                delivery.created_at,
                "delivery",
                f"Webhook {delivery.event} to {delivery.endpoint.url}: {delivery.get_status_display().lower()}",
                8,
                {"delivery": delivery, "attempts": attempts.get(delivery.pk, [])},
            )
        )
    if output.redacted_at is not None:
        events.append(StoryEvent(output.redacted_at, "redacted", "Payloads redacted under retention", 9))
    events.sort(key=lambda event: (event.at, event.order))
    holds = [
        hold
        for hold in legal_holds(tenant=tenant, active=True)
        if hold_covers(hold, application=output.application, received_at=output.received_at)
    ]
    return {
        "output": output,
        "events": events,
        "judgements": judgements,
        "tasks": tasks,
        "reviews": reviews,
        "deliveries": deliveries,
        "holds": holds,
        "retention_days": retention_days(tenant=tenant),
    }


# Configuration history -------------------------------------------------------

# Each kind of configuration: its model, how a record is named, and the fields left out of its diff.
_NOISE = {"updated_at", "created_at", "tenant", "id"}


@dataclass(frozen=True)
class ConfigKind:
    key: str
    label: str
    model: Any
    name: Any  # record -> what it is called
    hidden: frozenset = frozenset()


CONFIG_KINDS: dict[str, ConfigKind] = {
    kind.key: kind
    for kind in (
        ConfigKind("policy", "Policy versions", Policy, lambda r: f"policy v{r.version}"),
        ConfigKind(
            "applications", "Stop buttons and application rubrics", Application, lambda r: f"application {r.name}"
        ),
        ConfigKind("rubrics", "Rubrics", Rubric, lambda r: f"rubric {r.name} v{r.version}"),
        ConfigKind("judges", "Judges", Judge, lambda r: f"judge {r.name} v{r.version}"),
        ConfigKind("queues", "Queues", Queue, lambda r: f"queue {r.name}"),
        ConfigKind("members", "Memberships", Membership, lambda r: f"membership of {r.person_name}"),
        ConfigKind("keys", "API keys", ApiKey, lambda r: f"key {r.name} (hitl_{r.prefix}_…)", frozenset({"key_hash"})),
        ConfigKind("webhooks", "Webhooks", WebhookEndpoint, lambda r: f"webhook {r.url}"),
        ConfigKind("retention", "Retention", Retention, lambda r: f"retention {r.days} days"),
        ConfigKind("holds", "Legal holds", LegalHold, lambda r: f"legal hold #{r.id}"),
    )
}
CONFIG_PAGE_SIZE = 50


def _record_document(kind: ConfigKind, record) -> dict:
    document = {}
    for model_field in kind.model._meta.concrete_fields:
        name = model_field.name
        if name in _NOISE or name in kind.hidden or not hasattr(record, model_field.attname):
            continue
        value = getattr(record, model_field.attname)
        document[name if model_field.attname == name else model_field.attname] = value
    return document


def json_diff(before: dict | None, after: dict | None) -> list[tuple[str, str]]:
    """A unified diff of two documents as ``(kind, line)``, kind ``add``, ``del``, ``hunk`` or ``same``."""

    def lines(document):
        if document is None:
            return []
        return json.dumps(document, indent=2, sort_keys=True, default=str, ensure_ascii=False).splitlines()

    diff = []
    for line in list(difflib.unified_diff(lines(before), lines(after), lineterm="", n=3))[2:]:
        if line.startswith("@@"):
            diff.append(("hunk", line))
        elif line.startswith("+"):
            diff.append(("add", line))
        elif line.startswith("-"):
            diff.append(("del", line))
        else:
            diff.append(("same", line))
    return diff


def audit_config_history(*, tenant: Tenant, kind: str, before: int | None = None) -> tuple[list[dict], int | None]:
    """The latest changes of one kind of configuration, newest first, each with who, when, why
    and its diff against the previous version of the same object. Two queries: the page (with
    each record's predecessor found by a window over the object's history) and the predecessors.
    Returns the rows and the ``before`` of the next page (None at the end)."""
    config = CONFIG_KINDS[kind]
    history = config.model.history.model
    records = (
        history.objects.filter(tenant_id=tenant.pk)
        .annotate(
            previous_id=Window(Lag("history_id"), partition_by=[F("id")], order_by=[F("history_date"), F("history_id")])
        )
        .select_related("history_user")
        .order_by("-history_date", "-history_id")
    )
    if before is not None:
        records = records.filter(history_id__lt=before)
    page = list(records[: CONFIG_PAGE_SIZE + 1])
    following = None
    if len(page) > CONFIG_PAGE_SIZE:
        page = page[:CONFIG_PAGE_SIZE]
        following = page[-1].history_id
    previous_ids = [record.previous_id for record in page if record.previous_id is not None]
    previous = {record.history_id: record for record in history.objects.filter(history_id__in=previous_ids)}
    acted = _unattributed_actors(tenant, page)
    user_ids = {getattr(record, "user_id", None) for record in page} - {None}
    names = dict(get_user_model().objects.filter(pk__in=user_ids).values_list("pk", "username")) if user_ids else {}
    rows = []
    for record in page:
        record.person_name = names.get(getattr(record, "user_id", None), f"user #{getattr(record, 'user_id', '')}")
        document = _record_document(config, record)
        earlier = previous.get(record.previous_id)
        before_document = _record_document(config, earlier) if earlier is not None else None
        rows.append(
            {
                "record": record,
                "name": config.name(record),
                "change": {"+": "created", "~": "changed", "-": "deleted"}.get(record.history_type, ""),
                "who": record.history_user,
                "who_else": acted.get(record.history_id, ""),  # no person: the key, the system, the operator
                "why": getattr(record, "history_change_reason", None) or "",
                "diff": json_diff(before_document, document if record.history_type != "-" else None),
                "document": document,
            }
        )
    return rows, following


def _unattributed_actors(tenant: Tenant, records: list) -> dict[int, str]:
    """For history records of no person, who the change's audit event names (a key and its role,
    the system, the platform operator): the event of the same object within seconds of the record,
    the same transaction's. One query, over the events' (tenant, at) index."""
    unknown = [record for record in records if record.history_user_id is None]
    if not unknown:
        return {}
    slack = timedelta(seconds=5)
    events = list(
        AuditEvent.objects.for_tenant(tenant)
        .filter(
            at__gte=min(record.history_date for record in unknown) - slack,
            at__lte=max(record.history_date for record in unknown) + slack,
            object_id__in={str(record.id) for record in unknown},
        )
        .select_related("actor_key")
        .only("at", "object_id", "actor_role", "actor_key__name")
    )
    labels = {}
    for record in unknown:
        near = [e for e in events if e.object_id == str(record.id) and abs(e.at - record.history_date) <= slack]
        if not near:
            continue
        event = min(near, key=lambda e: abs(e.at - record.history_date))
        if event.actor_key is not None:
            labels[record.history_id] = f"key {event.actor_key.name} ({event.actor_role})"
        else:
            labels[record.history_id] = {
                "system": "the system (scheduled work)",
                "operator": "the platform operator",
            }.get(event.actor_role, event.actor_role)
    return labels


def audit_queue_access(*, tenant: Tenant, limit: int = 100, before: int | None = None) -> list[QueueAccessEvent]:
    """Who gave or took the right to work a queue (grants are events, not history records), newest
    first; with ``before`` (an event's id), those before it (none for an id not the tenant's)."""
    events = QueueAccessEvent.objects.for_tenant(tenant).order_by("-created_at", "-pk")
    if before is not None and (events := created_before(events, before)) is None:
        return []
    return list(events.select_related("queue", "user", "actor")[:limit])


def audit_policy_version(*, tenant: Tenant, version: int) -> dict:
    """One published policy version (its latest record), who published it and why, and its diff
    against the version before it."""
    records = Policy.history.filter(tenant_id=tenant.pk).select_related("history_user")
    record = records.filter(version=version).order_by("-history_date", "-history_id").first()
    if record is None:
        raise NotFoundError("Policy version not found.")
    earlier = records.filter(version__lt=version).order_by("-version", "-history_date", "-history_id").first()
    return {
        "record": record,
        "who_else": _unattributed_actors(tenant, [record]).get(record.history_id, ""),
        "version": version,
        "previous": earlier,
        "document_json": json.dumps(record.document, indent=2, sort_keys=True, ensure_ascii=False),
        "diff": json_diff(earlier.document if earlier else None, record.document),
        "newer": records.filter(version__gt=version).order_by("version").values_list("version", flat=True).first(),
    }


# The output in the audit chain --------------------------------------------------

# How long after an output's time its batch event may be appended (same transaction: seconds).
_BATCH_WINDOWS = {"output.received": timedelta(minutes=5), "output.redacted": timedelta(hours=2)}


def _event_fields(tenant: Tenant, event: AuditEvent) -> dict:
    return {
        "tenant": tenant.slug,
        "at": event.at,
        "kind": event.kind,
        "actor_person": event.actor_person_id,
        "actor_key": event.actor_key_id,
        "actor_role": event.actor_role,
        "object_type": event.object_type,
        "object_id": event.object_id,
        "data": event.data,
    }


# Payload text some events carry (a review's correction and comment, feedback, the final output):
# once retention redacted the output, the page withholds them too (the row keeps them: it is hashed).
PAYLOAD_KEYS = frozenset(
    {"comment", "corrected_output", "final_output", "input", "output", "trace", "escalation_reason"}
)


def _shown_data(data, *, redacted: bool) -> str:
    if data is None:
        return ""
    if redacted and isinstance(data, dict):
        data = {
            key: "(redacted under retention)" if key in PAYLOAD_KEYS and value else value for key, value in data.items()
        }
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False, default=str)


def audit_output_trail(*, tenant: Tenant, output: Output, tasks=(), reviews=()) -> dict:
    """The audit events about one output (its own, its tasks' and reviews', and the batch events
    whose Merkle tree holds it), each with its seq, hash and whether its hash recomputes; and
    whether the output's digest is committed to by the chain: the digest recomputed from the
    record equals the stored one, which is a leaf of its ``output.received`` event's root."""
    output_id = str(output.pk)
    events = AuditEvent.objects.for_tenant(tenant)
    wanted = Q(object_type="output", object_id=output_id)
    if tasks:
        wanted |= Q(object_type="task", object_id__in=[str(task.pk) for task in tasks])
    if reviews:
        wanted |= Q(object_type="review", object_id__in=[str(review.pk) for review in reviews])
    found = {event.seq: event for event in events.filter(wanted)}
    # Batch events commit to many records at once: found by the ids they list, near the time
    # each record was made (the event is appended in the same transaction).
    lookups = [("output.received", [output_id], [output.received_at], _BATCH_WINDOWS["output.received"])]
    if output.redacted_at is not None:
        lookups.append(("output.redacted", [output_id], [output.redacted_at], _BATCH_WINDOWS["output.redacted"]))
    if output.judged_at is not None:
        lookups.append(("output.judged", [output_id], [output.judged_at], timedelta(minutes=5)))
    if tasks:
        lookups.append(
            ("task.created", [str(t.pk) for t in tasks], [t.created_at for t in tasks], timedelta(minutes=5))
        )
        lookups.append(("task.expired", [str(t.pk) for t in tasks], [], None))  # whenever the sweep ran
    for kind, ids, moments, window in lookups:
        batches = events.filter(kind=kind)
        if moments:
            batches = batches.filter(at__gte=min(moments) - timedelta(minutes=1), at__lte=max(moments) + window)
        if connection.vendor == "postgresql":
            contains = Q(pk__in=[])
            for item in ids:
                contains |= Q(data__ids__contains=[item])  # jsonb @>
            batches = batches.filter(contains)
        for event in batches:
            if set(ids) & set((event.data or {}).get("ids", ())):
                found[event.seq] = event
    people = dict(
        get_user_model()
        .objects.filter(pk__in={event.actor_person_id for event in found.values() if event.actor_person_id})
        .values_list("pk", "username")
    )
    rows = []
    for seq in sorted(found):
        event = found[seq]
        recomputed = auditchain.chain_hash(
            event.prev_hash, event.seq, auditchain.event_body(_event_fields(tenant, event))
        )
        rows.append(
            {
                "event": event,
                "hash_ok": recomputed == event.hash,
                "actor": people.get(event.actor_person_id, ""),
                "data": _shown_data(event.data, redacted=output.redacted_at is not None),
            }
        )
    received = next((row["event"] for row in rows if row["event"].kind == "output.received"), None)
    commitment = {"event": received, "digest_ok": False, "root_ok": False, "leaf": None, "size": 0}
    output.tenant = tenant  # (the digest names the tenant by its slug)
    recomputed_digest = output_audit_digest_of(output)  # the ingest's tier and reason, whatever changed since
    commitment["recomputed"] = recomputed_digest
    commitment["digest_ok"] = bool(output.audit_digest) and recomputed_digest == output.audit_digest
    if received is not None:
        ids = received.data["ids"]
        stored = dict(Output.objects.for_tenant(tenant).filter(pk__in=ids).values_list("pk", "audit_digest"))
        leaves = [stored.get(uuid.UUID(item), "") for item in ids]
        commitment.update(
            leaf=ids.index(output_id),
            size=len(ids),
            root_ok=all(leaves) and auditchain.merkle_root(leaves) == received.data.get("root"),
        )
    commitment["committed"] = (
        commitment["digest_ok"]
        and commitment["root_ok"]
        and received is not None
        and next(row["hash_ok"] for row in rows if row["event"] is received)
    )
    return {"rows": rows, "commitment": commitment}


# What the rows of the output's life do not show by themselves: every claim, release, expiry and
# escalation of its tasks, each renewal of a lease (the task row keeps only its latest state).
TIMELINE_AUDIT_KINDS = {
    "task.claimed": "Task claimed",
    "task.released": "Task released",
    "task.expired": "Lease expired: task back in its queue",
    "task.escalated": "Task escalated",
    "task.lease_renewed": "Lease renewed",
}


def timeline_audit_events(rows: list[dict]) -> list[StoryEvent]:
    events = []
    for row in rows:
        event = row["event"]
        if event.kind not in TIMELINE_AUDIT_KINDS:
            continue
        who = row.get("actor") or event.actor_role
        events.append(
            StoryEvent(
                event.at,
                "claimed" if event.kind == "task.claimed" else "audit",  # (each claim, with its lease)
                f"{TIMELINE_AUDIT_KINDS[event.kind]} ({who})",
                4,
                {"event": event, "detail": f"audit seq {event.seq}, task {event.object_id or 'batch'}"},
            )
        )
    return events
