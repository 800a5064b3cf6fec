"""Writes for outputs: idempotent ingest, built for volume.

A batch costs a fixed number of queries whatever its length: one lookup of the
external ids already stored, one INSERT of the new rows, in one transaction.
"""

import hashlib
from dataclasses import dataclass
from typing import Literal

import orjson
from django.db import transaction
from django.utils import timezone

from hitl.db import bulk_insert
from reviews.models import Delivery, Output, OutputStatus
from reviews.schemas import OutputSubmission
from tenants.models import Tenant

RECEIPT_FIELDS = (
    "id",
    "external_id",
    "application",
    "status",
    "risk_tier",
    "review_required",
    "delivery",
    "received_at",
)

_INSERT_FIELDS = (
    "id",
    "tenant",
    "external_id",
    "application",
    "input",
    "output",
    "trace",
    "metadata",
    "model",
    "confidence",
    "content_hash",
    "status",
    "risk_tier",
    "review_required",
    "delivery",
    "received_at",
)


@dataclass(frozen=True, slots=True)
class IngestResult:
    """What became of one submission: its outcome and the stored record's receipt fields."""

    outcome: Literal["created", "existing", "conflict"]
    receipt: dict


def _json(value) -> str:
    return orjson.dumps(value).decode()


def output_content_hash(submission: OutputSubmission) -> str:
    """SHA-256 of the canonical body (keys sorted at every depth)."""
    canonical = orjson.dumps(submission.model_dump(), option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(canonical).hexdigest()


def output_ingest(*, tenant: Tenant, submission: OutputSubmission) -> IngestResult:
    """Store one output, or return the stored one on a repeat (409-worthy on a different body)."""
    return output_ingest_batch(tenant=tenant, submissions=[submission])[0]


@transaction.atomic
def output_ingest_batch(*, tenant: Tenant, submissions: list[OutputSubmission]) -> list[IngestResult]:
    """Store new outputs in one transaction; a result per submission, in order.

    A concurrent request may insert some of the same external ids between our
    lookup and our insert. The insert skips those (``ON CONFLICT DO NOTHING``,
    which waits for the other transaction to finish) and they are read back and
    answered as repeats or conflicts. New rows are inserted in external-id order
    so that overlapping concurrent batches lock in the same order and cannot deadlock.
    """
    hashes = [output_content_hash(submission) for submission in submissions]
    known = _known_receipts(tenant, {submission.external_id for submission in submissions})
    now = timezone.now()
    results: list[IngestResult] = []
    new_rows: list[tuple] = []
    for submission, content_hash in zip(submissions, hashes, strict=True):
        row = known.get(submission.external_id)
        if row is not None:
            outcome = "existing" if row["content_hash"] == content_hash else "conflict"
            results.append(IngestResult(outcome, row))
            continue
        row = {
            "id": Output._meta.pk.default(),
            "external_id": submission.external_id,
            "application": submission.application,
            "status": OutputStatus.RECEIVED.value,
            "risk_tier": "",
            "review_required": False,
            "delivery": Delivery.DELIVER.value,
            "received_at": now,
            "content_hash": content_hash,
        }
        known[submission.external_id] = row  # a repeat later in the same batch sees it
        new_rows.append(
            (
                row["id"],
                tenant.pk,
                submission.external_id,
                submission.application,
                _json(submission.input),
                submission.output,
                _json(submission.trace),
                _json(submission.metadata),
                submission.model,
                submission.confidence,
                content_hash,
                row["status"],
                row["risk_tier"],
                row["review_required"],
                row["delivery"],
                now,
            )
        )
        results.append(IngestResult("created", row))
    new_rows.sort(key=lambda row: row[2])  # by external_id: one lock order for everyone
    inserted = bulk_insert(Output, _INSERT_FIELDS, new_rows, skip_conflicts_on=("tenant", "external_id"))
    if inserted is not None and len(inserted) < len(new_rows):
        lost_ids = {row[0] for row in new_rows} - inserted
        results = _answer_lost_races(tenant, results, hashes, lost_ids)
    return results


def _known_receipts(tenant: Tenant, external_ids: set[str]) -> dict[str, dict]:
    rows = (
        Output.objects.for_tenant(tenant).filter(external_id__in=external_ids).values(*RECEIPT_FIELDS, "content_hash")
    )
    return {row["external_id"]: row for row in rows}


def _answer_lost_races(
    tenant: Tenant, results: list[IngestResult], hashes: list[str], lost_ids: set
) -> list[IngestResult]:
    """Rows another transaction stored first: answer with theirs, as a repeat or a conflict."""
    lost = [index for index, result in enumerate(results) if result.receipt["id"] in lost_ids]
    winners = _known_receipts(tenant, {results[index].receipt["external_id"] for index in lost})
    answered = list(results)
    for index in lost:
        winner = winners[results[index].receipt["external_id"]]
        answered[index] = IngestResult("existing" if winner["content_hash"] == hashes[index] else "conflict", winner)
    return answered
