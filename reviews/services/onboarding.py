"""A new tenant, ready to work: the tenant row, its default policy and its default queue.

Onboarding lives here, in the top layer, because it writes what every layer owns;
``tenants.services.tenant_create`` makes the tenant row alone.
"""

from django.db import transaction

from policies.services import policy_create_default
from reviews.services.queues import queue_create
from tenants.models import Tenant
from tenants.services import tenant_create


@transaction.atomic
def tenant_onboard(*, slug: str, name: str = "") -> Tenant:
    """Create a tenant with the default policy (docs/policies.md) and a ``default`` queue."""
    tenant = tenant_create(slug=slug, name=name)
    policy_create_default(tenant=tenant)
    queue_create(tenant=tenant, name="default")
    return tenant
