"""Celery tasks of the tenants layer: thin, idempotent, safe to retry."""

from celery import shared_task

from tenants.audit import audit_checkpoints_due


@shared_task(acks_late=True, time_limit=300)
def audit_checkpoints_task() -> int:
    """Sign the chain head of every tenant whose audit log grew since its last checkpoint."""
    return audit_checkpoints_due()
