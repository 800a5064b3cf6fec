"""The pydantic models of the tenants layer's API: the audit log and its signing key."""

from datetime import datetime
from typing import Any, Literal

from hitl.schemas import ResponseModel


class AuditPublicKeyOut(ResponseModel):
    """The Ed25519 key that signs audit checkpoints; check signatures offline with it (docs/compliance.md)."""

    algorithm: Literal["Ed25519"]
    key_id: str
    public_key: str  # base64 of the 32-byte raw public key


class AuditEventOut(ResponseModel):
    """One event of the tenant's hash-chained audit log."""

    seq: int
    at: datetime
    kind: str
    actor_person: int | None
    actor_key: int | None
    actor_role: str
    object_type: str
    object_id: str
    data: dict[str, Any] | None
    prev_hash: str
    hash: str

    @classmethod
    def of(cls, event) -> "AuditEventOut":
        return cls(
            seq=event.seq,
            at=event.at,
            kind=event.kind,
            actor_person=event.actor_person_id,
            actor_key=event.actor_key_id,
            actor_role=event.actor_role,
            object_type=event.object_type,
            object_id=event.object_id,
            data=event.data,
            prev_hash=event.prev_hash,
            hash=event.hash,
        )


class AuditEventPage(ResponseModel):
    """One page of events, newest first; follow ``next`` (an opaque cursor URL) for older ones."""

    next: str | None
    previous: str | None
    results: list[AuditEventOut]
