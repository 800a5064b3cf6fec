"""The auditor's "Verify now": each run of the chain verification stored with who asked and what it found.

The check itself is ``tenants.audit.audit_verify``, the one ``manage.py verify_audit``
runs; this module only keeps its result (``AuditVerification``) and runs it in a Celery
task, so that a long chain does not hold a web request: the page polls the row.
"""

import logging

from django.db import transaction
from django.utils import timezone

from hitl.enqueue import enqueue_on_commit
from tenants import auditchain
from tenants.audit import audit_verify, public_key
from tenants.models import AuditCheckpoint, AuditHead, AuditVerification, AuditVerificationStatus, Tenant

logger = logging.getLogger(__name__)


@transaction.atomic
def audit_verification_start(*, tenant: Tenant, user=None, source: str = "page") -> AuditVerification:
    """Ask for a verification of the tenant's chain; one already running is returned instead of a second."""
    running = (
        AuditVerification.objects.for_tenant(tenant)
        .filter(status=AuditVerificationStatus.RUNNING, finished_at__isnull=True)
        .order_by("-started_at")
        .first()
    )
    if running is not None and (timezone.now() - running.started_at).total_seconds() < 3600:
        return running
    head = AuditHead.objects.for_tenant(tenant).values_list("last_seq", flat=True).first() or 0
    verification = AuditVerification.objects.for_tenant(tenant).create(
        requested_by=user, source=source, started_at=timezone.now(), head_seq_at_start=head
    )
    from tenants.tasks import audit_verification_task

    enqueue_on_commit(
        lambda: audit_verification_task.delay(verification.pk), what=f"audit verification {verification.pk}"
    )
    return verification


def audit_verification_run(*, verification_id: int) -> AuditVerification | None:
    """Run one asked verification and store its result (idempotent: a finished one is left alone)."""
    verification = AuditVerification.unscoped.select_related("tenant").filter(pk=verification_id).first()
    if verification is None or verification.finished_at is not None:
        return verification
    tenant = verification.tenant
    try:
        report = audit_verify(tenant)
    except Exception as error:  # stored for the page, then raised for the worker's log
        AuditVerification.objects.for_tenant(tenant).filter(pk=verification.pk).update(
            status=AuditVerificationStatus.ERROR, finished_at=timezone.now(), reason=str(error)[:2000]
        )
        raise
    AuditVerification.objects.for_tenant(tenant).filter(pk=verification.pk, finished_at__isnull=True).update(
        status=AuditVerificationStatus.PASSED if report.ok else AuditVerificationStatus.FAILED,
        finished_at=timezone.now(),
        events=report.events,
        checkpoints=report.checkpoints,
        last_seq=report.last_seq,
        last_hash=report.last_hash,
        bad_seq=report.bad_seq,
        reason=report.reason,
        problems=list(report.problems),
    )
    verification.refresh_from_db()
    return verification


def audit_verification_record(*, tenant: Tenant, report, started_at, user=None, source: str = "command"):
    """Store a verification run elsewhere (the ``verify_audit`` command)."""
    head = report.last_seq
    return AuditVerification.objects.for_tenant(tenant).create(
        requested_by=user,
        source=source,
        started_at=started_at,
        finished_at=timezone.now(),
        head_seq_at_start=head,
        status=AuditVerificationStatus.PASSED if report.ok else AuditVerificationStatus.FAILED,
        events=report.events,
        checkpoints=report.checkpoints,
        last_seq=report.last_seq,
        last_hash=report.last_hash,
        bad_seq=report.bad_seq,
        reason=report.reason,
        problems=list(report.problems),
    )


# Reads -----------------------------------------------------------------------


def audit_verification_get(*, tenant: Tenant, verification_id: int) -> AuditVerification | None:
    return (
        AuditVerification.objects.for_tenant(tenant).select_related("requested_by").filter(pk=verification_id).first()
    )


def audit_verifications_recent(*, tenant: Tenant, limit: int = 10) -> list[AuditVerification]:
    return list(
        AuditVerification.objects.for_tenant(tenant).select_related("requested_by").order_by("-started_at")[:limit]
    )


def audit_chain_status(*, tenant: Tenant) -> dict:
    """The head of the tenant's chain and its last signed checkpoint."""
    head = AuditHead.objects.for_tenant(tenant).values("last_seq", "last_hash").first()
    checkpoint = AuditCheckpoint.objects.for_tenant(tenant).order_by("-seq", "-signed_at").first()
    signature = ""
    if checkpoint is not None:
        kid, public = public_key()
        if checkpoint.key_id != kid:
            signature = "other-key"  # signed with a key no longer configured: verify_audit names it
        elif auditchain.checkpoint_valid(
            public, tenant.slug, checkpoint.seq, checkpoint.head_hash, checkpoint.signed_at, checkpoint.signature
        ):
            signature = "valid"
        else:
            signature = "invalid"
    return {
        "signature": signature,
        "key_id": public_key()[0],
        "head_seq": head["last_seq"] if head else 0,
        "head_hash": head["last_hash"] if head else "",
        "checkpoint": checkpoint,
        "behind": (head["last_seq"] if head else 0) - (checkpoint.seq if checkpoint else 0),
    }
