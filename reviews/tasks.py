"""Celery tasks of the review loop: thin, idempotent, safe to retry.

Each task declares whose rows it touches (hitl/tenancy.py): the sweeps cross tenants
(``beat_sweep``); a task sent for some rows reads their tenant (``task_routing``) and
acts inside it.
"""

from celery import shared_task
from django.conf import settings
from django.db import OperationalError
from django.utils import timezone

from hitl.tenancy import cross_tenant, tenant_scope
from policies.models import Judge
from reviews.models import Certification, CertificationStatus, DeliveryStatus, WebhookDelivery
from reviews.services.claims import tasks_release_expired
from reviews.services.gold import certifications_expire
from reviews.services.judging import judges_reconcile, judges_run
from reviews.services.retention import retention_apply_all
from reviews.services.signals import signal_statistics_refresh_all
from reviews.services.sla import tasks_sla_sweep
from reviews.services.webhooks import backoff_seconds, webhook_attempt, webhook_deliveries_due
from tenants.models import Tenant


@shared_task(bind=True, acks_late=True, time_limit=60, soft_time_limit=45, max_retries=None)
def webhook_deliver_task(self, delivery_id: str) -> str:
    """One attempt; if it failed and attempts remain, schedule the next with backoff."""
    tenant_id = _tenant_of(WebhookDelivery.unscoped.filter(pk=delivery_id))
    if tenant_id is None:
        return "gone"
    with tenant_scope(tenant_id):
        delivery = webhook_attempt(delivery_id=delivery_id)
    if delivery is None or delivery.status != DeliveryStatus.PENDING:
        return delivery.status if delivery else "gone"
    if not settings.CELERY_TASK_ALWAYS_EAGER:
        raise self.retry(countdown=backoff_seconds(delivery.attempts))
    return delivery.status  # in-process mode: the periodic sweep (or a replay) sends the next attempt


def _tenant_of(rows) -> int | None:
    """The tenant of the first of ``rows`` (a task's message names rows, not their tenant)."""
    with cross_tenant("task_routing"):
        return rows.order_by("pk").values_list("tenant_id", flat=True).first()


@shared_task(acks_late=True, time_limit=120)
@cross_tenant("beat_sweep")
def webhook_sweep_task() -> int:
    """Re-enqueue deliveries that are due: recovers from lost messages and in-process mode."""
    due = webhook_deliveries_due()
    for delivery_id in due:
        webhook_deliver_task.delay(delivery_id)
    return len(due)


@shared_task(acks_late=True, time_limit=120)
@cross_tenant("beat_sweep")
def tasks_release_expired_task() -> int:
    """Leases that ran out go back to their queues."""
    return tasks_release_expired()


@shared_task(acks_late=True, time_limit=120)
@cross_tenant("beat_sweep")
def tasks_sla_sweep_task() -> int:
    """Tasks still open at their due time escalate and tell the services (once each)."""
    return tasks_sla_sweep()


_JUDGE_TASK_OPTIONS = {
    "acks_late": True,  # a worker killed mid-task leaves the message to be redelivered (the reconciler is the backstop)
    "soft_time_limit": 270,  # a judge still running then records an error verdict (LLM params fit in 240 s)
    "time_limit": 300,
    "autoretry_for": (OperationalError,),  # the database blinked: the whole task again (it skips what it stored)
    "retry_backoff": True,
    "max_retries": 5,
}


@shared_task(**_JUDGE_TASK_OPTIONS)
def judges_run_task(judge_ids: list[int], output_ids: list[str]) -> int:
    """Judges of one tenant on some outputs; the judges' own retries and timeouts are in their clients."""
    tenant_id = _tenant_of(Judge.unscoped.filter(pk__in=judge_ids))
    if tenant_id is None:
        return 0
    with tenant_scope(tenant_id):
        return judges_run(judge_ids=judge_ids, output_ids=output_ids)


@shared_task(**_JUDGE_TASK_OPTIONS)
def judge_run_task(judge_id: int, output_ids: list[str]) -> int:
    """One judge on some outputs (the earlier message shape, still accepted)."""
    return judges_run_task(judge_ids=[judge_id], output_ids=output_ids)


@shared_task(acks_late=True, time_limit=300)
@cross_tenant("beat_sweep")
def judges_reconcile_task() -> int:
    """Outputs still waiting for judges past the timeout get their missing judges again."""
    return judges_reconcile()


@shared_task(acks_late=True, time_limit=300)
@cross_tenant("beat_sweep")
def compliance_exports_resume_task() -> int:
    """Compliance exports whose message was lost, or whose worker died, are sent again."""
    from reviews.bundle import compliance_exports_resume

    return compliance_exports_resume()


@shared_task(acks_late=True, time_limit=3600, soft_time_limit=3500)
@cross_tenant("beat_sweep")
def retention_apply_task() -> int:
    """Redact the payloads of outputs past their tenant's retention (idempotent; batches commit as they go)."""
    return retention_apply_all()


@shared_task(acks_late=True, time_limit=600, soft_time_limit=540)
@cross_tenant("beat_sweep")
def signal_statistics_refresh_task() -> int:
    """Fold new outputs into their applications' running statistics (outlier signals)."""
    return signal_statistics_refresh_all()


@shared_task(
    acks_late=True,
    time_limit=6 * 3600,
    soft_time_limit=6 * 3600 - 60,
    autoretry_for=(OperationalError,),
    retry_backoff=True,
    max_retries=3,
)
def compliance_export_task(export_id: str) -> str:
    """Build one compliance bundle; a finished one is left alone, an interrupted one starts over."""
    from reviews.bundle import compliance_export_build

    with cross_tenant("task_routing"):  # the export row names its tenant
        return compliance_export_build(export_id=export_id).status


@shared_task(acks_late=True, time_limit=600, soft_time_limit=540, autoretry_for=(OperationalError,), max_retries=3)
def certifications_expire_task() -> int:
    """Certifications past the end of their period become ``expired`` (docs/quality.md).

    Listing the tenants that have some crosses them (``beat_sweep``); each tenant's
    certifications expire inside that tenant's scope only, in its own transaction.
    Idempotent: a second run finds none.
    """
    now = timezone.now()
    with cross_tenant("beat_sweep"):  # the tenants with an active certification past its period
        tenant_ids = sorted(
            set(
                Certification.unscoped.filter(status=CertificationStatus.ACTIVE, valid_until__lte=now).values_list(
                    "tenant_id", flat=True
                )
            )
        )
    expired = 0
    for tenant_id in tenant_ids:
        with tenant_scope(tenant_id):
            expired += certifications_expire(tenant=Tenant.objects.get(pk=tenant_id), now=now)
    return expired
