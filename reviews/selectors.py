"""Reads for outputs; every one takes the tenant."""

from django.db.models import QuerySet

from hitl.errors import NotFoundError
from reviews.models import Output
from tenants.models import Tenant


def output_get_for_tenant(*, tenant: Tenant, output_id) -> Output:
    """The tenant's output, or NotFoundError: missing and foreign look the same."""
    output = Output.objects.for_tenant(tenant).select_related("decided_by").filter(pk=output_id).first()
    if output is None:
        raise NotFoundError("Output not found.")
    return output


def output_list(*, tenant: Tenant) -> QuerySet[Output]:
    return Output.objects.for_tenant(tenant).defer("input", "output", "trace", "content_hash")


def webhook_list(*, tenant: Tenant):
    from reviews.models import WebhookEndpoint

    return WebhookEndpoint.objects.for_tenant(tenant).filter(is_active=True).order_by("created_at")
