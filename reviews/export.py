"""The compliance export: one record per output received in a period, with its whole story.

A record holds what arrived (application, tier, policy version, the sampling draw and its
reason), what the judges said, every human review (who, at which level, when, what they were
shown, scores, decision, correction, comment, time spent), approvals, escalations, the final
decision, the webhook deliveries and whether the tier's SLA was met, and the output's digest.

Memory stays flat whatever the period: the outputs are read in ``(received_at, id)`` order
through a server-side cursor (PostgreSQL) in chunks of :data:`EXPORT_CHUNK`; each chunk's
child rows are fetched with one query per kind (verdicts, tasks, reviews, deliveries), never
one per output, and the chunk is written out before the next is read. On PostgreSQL the whole
export reads one REPEATABLE READ, READ ONLY snapshot, so the children match their outputs.

Exports and the auditor's searches read from the ``replica`` database alias when
``DATABASE_REPLICA_URL`` configures one (:func:`read_database`).
"""

import re
from collections import defaultdict
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from functools import lru_cache
from itertools import islice

import orjson
from django.db import connections, transaction
from django.db.models import CharField, F, Func, Max, Q
from django.db.models.expressions import RawSQL
from django.db.models.functions import Cast
from django.utils import timezone

from hitl.db import read_database
from hitl.tenancy import tenant_scope
from reviews.models import Judgement, Output, Review, ReviewTask, TaskPurpose, WebhookDelivery
from tenants.models import Tenant

EXPORT_CHUNK = 2000
CSV_CONTENT_TYPE = "text/csv; charset=utf-8"
JSONL_CONTENT_TYPE = "application/x-ndjson"
FORMATS = ("csv", "jsonl")

_OUTPUT_FIELDS = (
    "id:id",
    "external_id",
    "application",
    "time:received_at",
    "risk_tier",
    "policy_version",
    "sampling_draw",
    "decision_reason",
    "received_risk_tier",
    "received_decision_reason",
    "review_required",
    "status",
    "delivery",
    "decision",
    "decided_by__username",
    "time:decided_at",
    "content_hash",
    "audit_digest",
)

# The flat columns of the CSV, in order; the nested parts follow as JSON cells.
CSV_COLUMNS = (
    "id",
    "external_id",
    "application",
    "received_at",
    "tier",
    "policy_version",
    "sampling_draw",
    "sampling_reason",
    "received_tier",
    "received_reason",
    "review_required",
    "status",
    "delivery",
    "judge_count",
    "judges_failed",
    "review_count",
    "first_reviewer",
    "first_reviewed_at",
    "approval_count",
    "escalation_count",
    "final_decision",
    "decided_by",
    "decided_at",
    "delivery_status",
    "delivered_at",
    "sla_due_at",
    "sla",
    "content_hash",
    "digest",
    "judges",
    "reviews",
    "approvals",
    "escalations",
    "tasks",
    "deliveries",
)
CSV_JSON_COLUMNS = ("judges", "reviews", "approvals", "escalations", "tasks", "deliveries")
# OWASP's CSV injection advice: a cell a spreadsheet would read as a formula gets a leading quote.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "'")


def _iso(value: datetime | str | None) -> str | None:
    """ISO 8601 in UTC with six fraction digits and ``Z``: the audit chain's form of a time
    (tenants/auditchain.py ``format_time``), so that a record's digest recomputes from it.
    A string is one PostgreSQL already wrote in that form (:func:`_time`)."""
    if value is None or isinstance(value, str):
        return value
    return value.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


# On PostgreSQL the database writes times in the chain's form and ids as text, where Python
# would parse each timestamp from text (psycopg's loader, a regular expression a value), then
# format it again, and build a UUID object to turn it back into a string: most of an export's
# CPU. Elsewhere (SQLite: small, embedded) the values come as the ORM gives them.
_CHAIN_TIME = "to_char(%(expressions)s AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"


def _time(name: str, postgres: bool):
    """A time column in the chain's form (PostgreSQL) or as stored, for :func:`_iso`."""
    return Func(F(name), template=_CHAIN_TIME, output_field=CharField()) if postgres else F(name)


def _id(name: str, postgres: bool):
    """A UUID column as its hyphenated text (PostgreSQL) or as a UUID, for ``str``."""
    return Cast(name, CharField()) if postgres else F(name)


def _columns(names: tuple, postgres: bool) -> dict:
    """``values_list`` expressions for ``names``: ``time:x`` and ``id:x`` as above, others as they are."""
    columns = {}
    for position, name in enumerate(names):
        kind, _, field = name.rpartition(":")
        alias = f"c{position}"
        if kind == "time":
            columns[alias] = _time(field, postgres)
        elif kind == "id":
            columns[alias] = _id(field, postgres)
        else:
            columns[alias] = F(field)
    return columns


def _values(queryset, names: tuple, postgres: bool):
    columns = _columns(names, postgres)
    return queryset.annotate(**columns).values_list(*columns)


def _chunks(rows: Iterable, size: int) -> Iterator[list]:
    iterator = iter(rows)
    while chunk := list(islice(iterator, size)):
        yield chunk


def _group(rows: Iterable[tuple]) -> dict:
    grouped = defaultdict(list)
    for row in rows:
        grouped[row[0]].append(row)
    return grouped


def _ids_filter(ids: list, using: str):
    """``output_id IN`` the chunk's ids: on PostgreSQL one array parameter rather than
    thousands of placeholders (which Django and psycopg would each process one by one)."""
    if connections[using].vendor == "postgresql":
        # As one text: psycopg would otherwise dump (and quote) each of the array's items.
        return RawSQL("SELECT unnest(string_to_array(%s, ',')::uuid[])", (",".join(map(str, ids)),))
    return ids


_JUDGEMENT_FIELDS = (
    "id:output_id",
    "judge__name",
    "judge_version",
    "result",
    "score",
    "unsure",
    "rationale",
    "model",
    "time:created_at",
)
_TASK_FIELDS = (
    "id:output_id",
    "id:id",
    "purpose",
    "queue__name",
    "level_required",
    "status",
    "time:created_at",
    "time:due_at",
    "escalation_reason",
)
_REVIEW_FIELDS = (
    "id:output_id",
    "reviewer__username",
    "task__level_required",
    "purpose",
    "time:created_at",
    "shown",
    "scores",
    "decision",
    "corrected_output",
    "comment",
    "time_spent_seconds",
    "rubric_version",
)
_DELIVERY_FIELDS = (
    "id:output_id",
    "id:id",
    "event",
    "endpoint__url",
    "status",
    "attempts",
    "time:created_at",
    "time:delivered_at",
    "last_error",
)


def _children(tenant: Tenant, ids: list, using: str) -> tuple[dict, dict, dict, dict]:
    """The child rows of one chunk of outputs: one query per kind, grouped by output."""
    postgres = connections[using].vendor == "postgresql"
    ids = _ids_filter(ids, using)

    def rows(queryset, fields: tuple) -> dict:
        chunk = queryset.using(using).filter(output_id__in=ids).order_by("output_id", "created_at", "id")
        return _group(_values(chunk, fields, postgres))

    delivered = Max(
        "attempt_log__attempted_at", filter=Q(attempt_log__status_code__gte=200, attempt_log__status_code__lt=300)
    )
    return (
        rows(Judgement.objects.for_tenant(tenant), _JUDGEMENT_FIELDS),
        rows(ReviewTask.objects.for_tenant(tenant), _TASK_FIELDS),
        rows(Review.objects.for_tenant(tenant), _REVIEW_FIELDS),
        rows(WebhookDelivery.objects.for_tenant(tenant).annotate(delivered_at=delivered), _DELIVERY_FIELDS),
    )


def _sla(decided_at: str | None, tasks: list[dict], now: str) -> tuple[str | None, str]:
    """The SLA's due time (the earliest approval task's) and ``met``, ``missed``, ``pending`` or ``none``.

    Times in the chain's form (:func:`_iso`: UTC, fixed width), which sort as the instants do."""
    dues = [task["due_at"] for task in tasks if task["purpose"] == TaskPurpose.APPROVAL]
    if not dues:
        return None, "none"
    due = min(dues)
    if decided_at is not None:
        return due, "met" if decided_at <= due else "missed"
    return due, "missed" if now > due else "pending"


def _record(row: tuple, judgements: list, tasks: list, reviews: list, deliveries: list, now: str) -> dict:
    (
        output_id,
        external_id,
        application,
        received_at,
        tier,
        policy_version,
        draw,
        reason,
        received_tier,
        received_reason,
        review_required,
        status,
        delivery,
        decision,
        decided_by,
        decided_at,
        content_hash,
        audit_digest,
    ) = row
    task_list = [
        {
            "id": str(task_id),
            "purpose": purpose,
            "queue": queue,
            "level_required": level,
            "status": task_status,
            "created_at": _iso(created),
            "due_at": _iso(due),
        }
        for _, task_id, purpose, queue, level, task_status, created, due, _reason in tasks
    ]
    review_list = [
        {
            "reviewer": reviewer,
            "level": level,
            "purpose": purpose,
            "reviewed_at": _iso(created),
            "shown": shown,
            "scores": scores,
            "decision": verdict,
            "correction": correction or None,
            "comment": comment,
            "time_spent_seconds": spent,
            "rubric_version": version,
        }
        for _, reviewer, level, purpose, created, shown, scores, verdict, correction, comment, spent, version in (
            reviews
        )
    ]
    decided_at = _iso(decided_at)
    sla_due, sla = _sla(decided_at, task_list, now)
    delivered = [_iso(item[7]) for item in deliveries if item[7] is not None]
    return {
        "id": str(output_id),
        "external_id": external_id,
        "application": application,
        "received_at": _iso(received_at),
        "tier": tier,
        "policy_version": policy_version,
        "sampling_draw": draw,
        "sampling_reason": reason,
        # as classified at ingest, when something changed them since (the judges): what the digest covers
        "received_tier": received_tier,
        "received_reason": received_reason,
        "review_required": review_required,
        "status": status,
        "delivery": delivery,
        "judges": [
            {
                "judge": name,
                "version": version,
                "result": result,
                "score": score,
                "unsure": unsure,
                "rationale": rationale,
                "model": model,
                "judged_at": _iso(created),
            }
            for _, name, version, result, score, unsure, rationale, model, created in judgements
        ],
        "reviews": review_list,
        "approvals": [
            {"reviewer": review["reviewer"], "approved_at": review["reviewed_at"]}
            for review in review_list
            if review["decision"] == Review.Verdict.APPROVE and review["purpose"] == TaskPurpose.APPROVAL
        ],
        "escalations": [
            {
                "reviewer": review["reviewer"],
                "escalated_at": review["reviewed_at"],
                "from_level": review["level"],
                "reason": review["comment"],
            }
            for review in review_list
            if review["decision"] == Review.Verdict.ESCALATE
        ],
        "tasks": task_list,
        "final_decision": decision or None,
        "decided_by": decided_by,
        "decided_at": decided_at,
        "deliveries": [
            {
                "id": str(delivery_id),
                "event": event,
                "endpoint": url,
                "status": delivery_status,
                "attempts": attempts,
                "created_at": _iso(created),
                "delivered_at": _iso(delivered_at),
                "last_error": error,
            }
            for _, delivery_id, event, url, delivery_status, attempts, created, delivered_at, error in deliveries
        ],
        "delivered_at": min(delivered) if delivered else None,
        "sla_due_at": sla_due,
        "sla": sla,
        "content_hash": content_hash,
        "digest": audit_digest or None,
    }


def export_records(*, tenant: Tenant, start: datetime, end: datetime, using: str | None = None) -> Iterator[dict]:
    """Every output of ``tenant`` received in ``[start, end)``, oldest first, as export records.

    A generator: nothing is read until it is iterated, and closing it ends the read. It enters
    the tenant's scope itself: a streamed response is iterated after the view returned (and left
    the request's scope), where row-level security would show it no row.
    """
    with tenant_scope(tenant):
        yield from _export_records(tenant=tenant, start=start, end=end, using=using)


def _export_records(*, tenant: Tenant, start: datetime, end: datetime, using: str | None) -> Iterator[dict]:
    using = using or read_database()
    now = _iso(timezone.now())
    outputs = _values(
        Output.objects.for_tenant(tenant)
        .using(using)
        .filter(received_at__gte=start, received_at__lt=end)
        .order_by("received_at", "id"),
        _OUTPUT_FIELDS,
        connections[using].vendor == "postgresql",
    )
    # A snapshot of its own when the export opens the transaction (not inside a caller's).
    own_snapshot = connections[using].vendor == "postgresql" and not connections[using].in_atomic_block
    with transaction.atomic(using=using):
        if own_snapshot:
            with connections[using].cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        # Inside a transaction, .iterator() on PostgreSQL is a server-side cursor without HOLD:
        # rows arrive EXPORT_CHUNK at a time and nothing is materialized.
        for chunk in _chunks(outputs.iterator(chunk_size=EXPORT_CHUNK), EXPORT_CHUNK):
            ids = [row[0] for row in chunk]
            judgements, tasks, reviews, deliveries = _children(tenant, ids, using)
            for row in chunk:
                key = row[0]
                yield _record(row, judgements[key], tasks[key], reviews[key], deliveries[key], now)


def _cell(value) -> str:
    if value is None:
        return ""
    if value.__class__ is str:
        return "'" + value if value.startswith(_FORMULA_STARTS) else value
    if value is True or value is False:
        return "true" if value else "false"
    return str(value)


_NEEDS_QUOTES = re.compile(r'[",\r\n]').search


def csv_line(cells: list[str]) -> str:
    """One RFC 4180 line (CRLF), quoting only the cells that need it.

    The standard library's writer inspects every character through its dialect, about six
    times slower on these rows (long ids and JSON cells); the output is the same.
    """
    return (
        ",".join('"' + cell.replace('"', '""') + '"' if _NEEDS_QUOTES(cell) is not None else cell for cell in cells)
        + "\r\n"
    )


def _json_cell(value: list) -> str:
    return orjson.dumps(value).decode() if value else "[]"


def csv_row(record: dict) -> list[str]:
    """One record as the CSV's cells (:data:`CSV_COLUMNS`): flat fields, counts and firsts, nested parts as JSON."""
    reviews, judges, deliveries = record["reviews"], record["judges"], record["deliveries"]
    first = reviews[0] if reviews else None
    cell = _cell
    return [
        record["id"],
        cell(record["external_id"]),
        cell(record["application"]),
        record["received_at"],
        cell(record["tier"]),
        cell(record["policy_version"]),
        cell(record["sampling_draw"]),
        cell(record["sampling_reason"]),
        cell(record["received_tier"]),
        cell(record["received_reason"]),
        cell(record["review_required"]),
        record["status"],
        record["delivery"],
        str(len(judges)),
        str(sum(1 for judge in judges if judge["result"] == "fail")) if judges else "0",
        str(len(reviews)),
        cell(first["reviewer"]) if first else "",
        first["reviewed_at"] if first else "",
        str(len(record["approvals"])),
        str(len(record["escalations"])),
        cell(record["final_decision"]),
        cell(record["decided_by"]),
        cell(record["decided_at"]),
        deliveries[-1]["status"] if deliveries else "",
        cell(record["delivered_at"]),
        cell(record["sla_due_at"]),
        record["sla"],
        cell(record["content_hash"]),
        cell(record["digest"]),
        _json_cell(judges),
        _json_cell(reviews),
        _json_cell(record["approvals"]),
        _json_cell(record["escalations"]),
        _json_cell(record["tasks"]),
        _json_cell(deliveries),
    ]


def _text(value: str | None) -> str:
    """A free-text cell: the formula guard, then quotes when it needs them."""
    if value is None:
        return ""
    if value.startswith(_FORMULA_STARTS):
        value = "'" + value
    return '"' + value.replace('"', '""') + '"' if _NEEDS_QUOTES(value) is not None else value


# The cells whose values repeat across rows (an application, a tier, a rule's reason, a person's
# name): each distinct value inspected once, the rest a lookup (a bounded cache, so that a period
# of many distinct reasons costs memory no more than a few thousand cells).
_label = lru_cache(maxsize=4096)(_text)


def _json_quoted(value: list) -> str:
    # A non-empty JSON list of objects always holds a quote, so it is always quoted; "[" needs no guard.
    return '"' + orjson.dumps(value).decode().replace('"', '""') + '"' if value else "[]"


def csv_record_line(record: dict) -> str:
    """``csv_line(csv_row(record))``, about twice as fast: only free-text cells are inspected
    (ids, times, hashes, numbers and enumerations never need quotes or the formula guard)."""
    reviews, judges, deliveries = record["reviews"], record["judges"], record["deliveries"]
    first = reviews[0] if reviews else None
    version, draw = record["policy_version"], record["sampling_draw"]
    return (
        ",".join(
            (
                record["id"],
                _text(record["external_id"]),
                _label(record["application"]),
                record["received_at"],
                _label(record["tier"]),
                "" if version is None else str(version),
                "" if draw is None else str(draw),
                _label(record["sampling_reason"]),
                _label(record["received_tier"]),
                _label(record["received_reason"]),
                "true" if record["review_required"] else "false",
                record["status"],
                record["delivery"],
                str(len(judges)),
                str(sum(1 for judge in judges if judge["result"] == "fail")) if judges else "0",
                str(len(reviews)),
                _label(first["reviewer"]) if first else "",
                first["reviewed_at"] if first else "",
                str(len(record["approvals"])),
                str(len(record["escalations"])),
                record["final_decision"] or "",
                _label(record["decided_by"]),
                record["decided_at"] or "",
                deliveries[-1]["status"] if deliveries else "",
                record["delivered_at"] or "",
                record["sla_due_at"] or "",
                record["sla"],
                record["content_hash"] or "",
                record["digest"] or "",
                _json_quoted(judges),
                _json_quoted(reviews),
                _json_quoted(record["approvals"]),
                _json_quoted(record["escalations"]),
                _json_quoted(record["tasks"]),
                _json_quoted(deliveries),
            )
        )
        + "\r\n"
    )


def csv_chunks(records: Iterable[dict], *, rows_per_chunk: int = 500) -> Iterator[bytes]:
    """The CSV as UTF-8 bytes with a BOM (so spreadsheets read it as UTF-8), a few hundred rows a chunk."""
    yield ("\ufeff" + csv_line(list(CSV_COLUMNS))).encode()
    lines = []
    for record in records:
        lines.append(csv_record_line(record))
        if len(lines) == rows_per_chunk:
            yield "".join(lines).encode()
            lines = []
    if lines:
        yield "".join(lines).encode()


def jsonl_chunks(records: Iterable[dict], *, rows_per_chunk: int = 500) -> Iterator[bytes]:
    """One JSON object per line, a few hundred lines a chunk."""
    lines = []
    for record in records:
        lines.append(orjson.dumps(record))
        if len(lines) == rows_per_chunk:
            lines.append(b"")
            yield b"\n".join(lines)
            lines = []
    if lines:
        lines.append(b"")
        yield b"\n".join(lines)


def export_chunks(*, tenant: Tenant, start: datetime, end: datetime, format: str) -> Iterator[bytes]:
    records = export_records(tenant=tenant, start=start, end=end)
    return csv_chunks(records) if format == "csv" else jsonl_chunks(records)
