"""Datasets out of reviewed outputs: fine-tuning examples from people's decisions, as JSON Lines.

Two formats, each the one OpenAI's fine-tuning takes (and OpenAI-compatible trainers with it):

- ``chat`` (supervised fine-tuning): ``{"messages": [{"role": "system"|"user"|"assistant",
  "content": ...}, ...]}``, the output's input as the conversation and, as the last assistant
  turn, what people decided it should be: the corrected output of a **corrected** output, the
  output itself of an **approved** one.
- ``preference`` (direct preference optimization): ``{"input": {"messages": [...]},
  "preferred_output": [{"role": "assistant", "content": <corrected>}],
  "non_preferred_output": [{"role": "assistant", "content": <original>}]}``, one line per
  corrected output whose correction differs from the original.

The input becomes messages thus: a list of ``{role, content}`` messages keeps its ``system``,
``user`` and ``assistant`` messages (``developer`` counts as ``system``; tool and other roles
are left out), a string is one user message, anything else one user message holding its JSON
(keys sorted: PostgreSQL's jsonb does not keep their order).

Only outputs whose payloads are still there: an output redacted by retention (``redacted_at``)
is never exported, whatever its decision. Rows are read as the compliance export reads them
(reviews/export.py): in ``(received_at, id)`` order through a server-side cursor, a chunk at a
time, inside one REPEATABLE READ snapshot on PostgreSQL, from the read replica when there is
one; the body is written a few hundred lines at a time, so memory stays flat however many.
"""

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime

import orjson
from django.db import connections, transaction
from django.db.models import F, Q, QuerySet

from hitl.db import read_database
from hitl.tenancy import tenant_scope
from reviews.export import jsonl_chunks
from reviews.models import Decision, Output
from tenants.models import Tenant

FORMATS = ("chat", "preference")
DECISIONS = ("approved", "corrected")  # what a dataset line can be made of (a rejected output has no answer)
CONTENT_TYPE = "application/x-ndjson"
DATASET_CHUNK = 2000
LINES_PER_CHUNK = 500
_ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}


@dataclass(frozen=True)
class DatasetFilter:
    """Which reviewed outputs a dataset holds: received in ``[start, end)`` (each optional), of these
    applications, tiers and final decisions (empty: any), decided at or before ``as_of``."""

    format: str
    as_of: datetime
    start: datetime | None = None
    end: datetime | None = None
    applications: tuple[str, ...] = ()
    tiers: tuple[str, ...] = ()
    decisions: tuple[str, ...] = field(default=("corrected",))

    def describe(self) -> dict:
        """The filter as the audit event records it."""
        return {
            "format": self.format,
            "from": self.start.isoformat() if self.start else None,
            "to": self.end.isoformat() if self.end else None,
            "applications": list(self.applications),
            "tiers": list(self.tiers),
            "decisions": list(self.decisions),
            "as_of": self.as_of.isoformat(),
        }


def dataset_queryset(*, tenant: Tenant, dataset: DatasetFilter, using: str | None = None) -> QuerySet:
    """The outputs a dataset holds, oldest first (a read: it takes the tenant)."""
    decisions = [Decision.CORRECTED] if dataset.format == "preference" else list(dataset.decisions)
    outputs = (
        Output.objects.for_tenant(tenant)
        .using(using or read_database())
        .filter(decision__in=decisions, redacted_at__isnull=True, decided_at__lte=dataset.as_of)
    )
    if dataset.start is not None:
        outputs = outputs.filter(received_at__gte=dataset.start)
    if dataset.end is not None:
        outputs = outputs.filter(received_at__lt=dataset.end)
    if dataset.applications:
        outputs = outputs.filter(application__in=dataset.applications)
    if dataset.tiers:
        outputs = outputs.filter(risk_tier__in=dataset.tiers)
    if dataset.format == "preference" or Decision.CORRECTED in decisions:
        # A correction that is empty or equal to the original teaches nothing (and corrected
        # outputs always have one: the last correction is their final output).
        outputs = outputs.exclude(Q(decision=Decision.CORRECTED) & (Q(final_output__isnull=True) | Q(final_output="")))
    if dataset.format == "preference":
        outputs = outputs.exclude(final_output=F("output"))
    return outputs.order_by("received_at", "id")


def dataset_count(*, tenant: Tenant, dataset: DatasetFilter) -> int:
    return dataset_queryset(tenant=tenant, dataset=dataset).count()


def _content(value) -> str:
    return value if isinstance(value, str) else orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


def input_messages(value) -> list[dict]:
    """An output's input as chat messages (see the module's docstring)."""
    if isinstance(value, list) and value and all(isinstance(item, dict) and "content" in item for item in value):
        messages = [
            {"role": _ROLES[str(item.get("role", "user"))], "content": _content(item["content"])}
            for item in value
            if str(item.get("role", "user")) in _ROLES
        ]
        if messages:
            return messages
    if isinstance(value, str):
        return [{"role": "user", "content": value}]
    return [{"role": "user", "content": _content(value)}]


def chat_line(*, input, output: str, final_output: str | None, decision: str) -> dict:
    """One supervised example: the conversation, then the answer people stood behind."""
    answer = final_output if decision == Decision.CORRECTED else output
    return {"messages": [*input_messages(input), {"role": "assistant", "content": answer}]}


def preference_line(*, input, output: str, final_output: str) -> dict:
    """One preference pair: the correction preferred over the original."""
    return {
        "input": {"messages": input_messages(input)},
        "preferred_output": [{"role": "assistant", "content": final_output}],
        "non_preferred_output": [{"role": "assistant", "content": output}],
    }


def dataset_lines(*, tenant: Tenant, dataset: DatasetFilter, chunk_size: int = DATASET_CHUNK) -> Iterator[bytes]:
    """The dataset as JSON Lines, a few hundred lines a chunk, read as it is written.

    A generator that enters the tenant's scope itself: a streamed response is iterated after
    the view returned (and left the request's scope).
    """
    with tenant_scope(tenant):
        using = read_database()
        rows = dataset_queryset(tenant=tenant, dataset=dataset, using=using).values_list(
            "input", "output", "final_output", "decision"
        )
        own_snapshot = connections[using].vendor == "postgresql" and not connections[using].in_atomic_block
        with transaction.atomic(using=using):
            if own_snapshot:
                with connections[using].cursor() as cursor:
                    cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            records = (
                preference_line(input=input_value, output=output, final_output=final_output)
                if dataset.format == "preference"
                else chat_line(input=input_value, output=output, final_output=final_output, decision=decision)
                for input_value, output, final_output, decision in rows.iterator(chunk_size=chunk_size)
            )
            yield from jsonl_chunks(records, rows_per_chunk=LINES_PER_CHUNK)


def dataset_file_name(dataset: DatasetFilter) -> str:
    return f"{dataset.format}-{dataset.as_of:%Y%m%dT%H%M%S}.jsonl"
