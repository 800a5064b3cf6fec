"""Typed results: frozen dataclasses built from the API's JSON (``raw`` keeps the whole body)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

Delivery = Literal["deliver", "hold", "block"]
DECIDED_STATUSES = frozenset({"auto_approved", "approved", "rejected", "corrected", "blocked"})


def _time(value: str | None) -> datetime | None:
    if value is None:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


@dataclass(frozen=True)
class Receipt:
    """What the API answers at once to a submission."""

    id: str
    external_id: str
    application: str
    status: str
    risk_tier: str | None
    review_required: bool
    delivery: Delivery
    policy_version: int | None
    received_at: datetime
    created: bool = field(default=True, compare=False)  # False: a repeat, the record stored earlier

    @classmethod
    def from_json(cls, body: dict[str, Any], *, created: bool = True) -> Receipt:
        return cls(
            id=body["id"],
            external_id=body["external_id"],
            application=body["application"],
            status=body["status"],
            risk_tier=body.get("risk_tier"),
            review_required=body["review_required"],
            delivery=body["delivery"],
            policy_version=body.get("policy_version"),
            received_at=_time(body["received_at"]),  # type: ignore[arg-type]
            created=created,
        )


@dataclass(frozen=True)
class BatchItem:
    """One item of a batch: ``created``, ``existing``, ``conflict`` or ``invalid`` (then ``error``)."""

    index: int
    outcome: Literal["created", "existing", "conflict", "invalid"]
    status_code: int
    output: Receipt | None
    error: dict[str, Any] | None


@dataclass(frozen=True)
class BatchResult:
    results: list[BatchItem]
    created: int
    existing: int
    conflicts: int
    invalid: int

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> BatchResult:
        items = [
            BatchItem(
                index=item["index"],
                outcome=item["outcome"],
                status_code=item["status_code"],
                output=Receipt.from_json(item["output"], created=item["outcome"] == "created")
                if item.get("output")
                else None,
                error=item.get("error"),
            )
            for item in body["results"]
        ]
        return cls(items, body["created"], body["existing"], body["conflicts"], body["invalid"])


@dataclass(frozen=True)
class Output:
    """An output as ``GET /api/v1/outputs/{id}`` shows it; ``decided`` once people or the policy decided."""

    id: str
    external_id: str
    application: str
    status: str
    delivery: Delivery
    risk_tier: str | None
    decision: Literal["approved", "rejected", "corrected"] | None
    final_output: str | None
    decided_at: datetime | None
    decision_reason: str
    raw: dict[str, Any] = field(repr=False, compare=False)

    @property
    def decided(self) -> bool:
        return self.status in DECIDED_STATUSES

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> Output:
        return cls(
            id=body["id"],
            external_id=body["external_id"],
            application=body["application"],
            status=body["status"],
            delivery=body["delivery"],
            risk_tier=body.get("risk_tier"),
            decision=body.get("decision"),
            final_output=body.get("final_output"),
            decided_at=_time(body.get("decided_at")),
            decision_reason=body.get("decision_reason", ""),
            raw=body,
        )


@dataclass(frozen=True)
class WebhookEvent:
    """A verified webhook: ``event`` (``output.decided``, ...), the delivery id (the same on every retry)."""

    event: str
    delivery_id: str
    output: dict[str, Any]
    raw: dict[str, Any] = field(repr=False, compare=False)


@dataclass(frozen=True)
class SessionTurn:
    """One output of a session (``GET /api/v1/sessions/{id}``), in the order received."""

    id: str
    external_id: str
    application: str
    input: Any
    output: str
    status: str
    delivery: Delivery
    decision: str | None
    final_output: str | None
    received_at: datetime

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> SessionTurn:
        return cls(
            id=body["id"],
            external_id=body["external_id"],
            application=body["application"],
            input=body["input"],
            output=body["output"],
            status=body["status"],
            delivery=body["delivery"],
            decision=body.get("decision"),
            final_output=body.get("final_output"),
            received_at=_time(body["received_at"]),  # type: ignore[arg-type]
        )
