"""Celery tasks of the quality layer: thin, idempotent, safe to retry.

The metrics rollup works tenant by tenant, each inside its own scope (hitl/tenancy.py);
listing the tenants reads no tenant-owned row.
"""

from celery import shared_task
from django.db import OperationalError

from quality.rollups import metrics_rollup_all


@shared_task(
    acks_late=True,
    time_limit=1800,
    soft_time_limit=1740,
    autoretry_for=(OperationalError,),
    retry_backoff=True,
    max_retries=3,
)
def metrics_rollup_task() -> int:
    """Rebuild the metrics rollups' hours that changed since each tenant's watermark (quality/rollups.py)."""
    return metrics_rollup_all()
