"""Celery tasks of the tenants layer: thin, idempotent, safe to retry."""

from celery import shared_task

from hitl.tenancy import cross_tenant
from tenants.audit import audit_checkpoints_due
from tenants.verification import audit_verification_run


@shared_task(acks_late=True, time_limit=300)
@cross_tenant("beat_sweep")
def audit_checkpoints_task() -> int:
    """Sign the chain head of every tenant whose audit log grew since its last checkpoint."""
    return audit_checkpoints_due()


@shared_task(acks_late=True, time_limit=1800, soft_time_limit=1750)
@cross_tenant("task_routing")  # the verification row names its tenant
def audit_verification_task(verification_id: int) -> str:
    """Run one verification an auditor asked for (tenants.verification); idempotent."""
    verification = audit_verification_run(verification_id=verification_id)
    return verification.status if verification else "gone"
