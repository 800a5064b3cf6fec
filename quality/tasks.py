"""Celery tasks of the quality layer: thin and idempotent, each declaring its tenant scope."""

from celery import shared_task
from django.db import OperationalError

from hitl.tenancy import cross_tenant, tenant_scope
from policies.models import Judge
from quality.rollups import metrics_rollup_all
from quality.services import judges_agreement_check
from tenants.models import Tenant


@shared_task(acks_late=True, time_limit=600, soft_time_limit=540)
def judges_agreement_check_task() -> int:
    """Every tenant's judges against people (hourly on beat): flags judges that agree too little.

    Listing the tenants crosses them (``beat_sweep``); each tenant's check runs inside that
    tenant's scope only. Idempotent: an open flag is never raised twice.
    """
    with cross_tenant("beat_sweep"):  # the tenants that run judges
        tenant_ids = sorted(set(Judge.unscoped.filter(is_active=True).values_list("tenant_id", flat=True)))
    flagged = 0
    for tenant_id in tenant_ids:
        with tenant_scope(tenant_id):
            tenant = Tenant.objects.get(pk=tenant_id)
            flagged += len(judges_agreement_check(tenant=tenant))
    return flagged


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
