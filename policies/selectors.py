"""Reads for policies: the current document, its history, and the compiled form ingest uses."""

from functools import lru_cache

from hitl.errors import NotFoundError
from policies.engine import CompiledPolicy
from policies.models import Application, Override, Policy, Rubric
from tenants.models import Tenant


def policy_get(*, tenant: Tenant) -> Policy:
    policy = Policy.objects.for_tenant(tenant).first()
    if policy is None:
        raise NotFoundError("This tenant has no policy yet.")
    return policy


def policy_history(*, tenant: Tenant, limit: int = 100):
    """Published versions, newest first, with who and why."""
    policy = policy_get(tenant=tenant)
    return policy.history.select_related("history_user").order_by("-version", "-history_date")[:limit]


def policy_version_document(*, tenant: Tenant, version: int) -> dict | None:
    """The document of one version, for recomputing old decisions."""
    policy = policy_get(tenant=tenant)
    record = policy.history.filter(version=version).order_by("-history_date").first()
    return record.document if record else None


def compiled_policy(*, tenant: Tenant) -> CompiledPolicy:
    """The tenant's policy and overrides, compiled; cached per configuration token.

    The token changes with every published policy or override (in the same
    transaction), and the API key lookup reads it on every request, so a cached
    entry is never stale: a new token is a new cache key.
    """
    return _compiled(tenant.pk, str(tenant.config_token))


@lru_cache(maxsize=1024)
def _compiled(tenant_id: int, config_token: str) -> CompiledPolicy:
    tenant = Tenant(pk=tenant_id)
    policy = Policy.objects.for_tenant(tenant).values("version", "document").first()
    if policy is None:
        raise NotFoundError("This tenant has no policy yet.")
    overrides = dict(
        Application.objects.for_tenant(tenant).exclude(override=Override.NONE).values_list("name", "override")
    )
    return CompiledPolicy(
        tenant_id=tenant_id, version=policy["version"], document=policy["document"], overrides=overrides
    )


def rubric_list(*, tenant: Tenant):
    return Rubric.objects.for_tenant(tenant).order_by("name")


def rubric_get(*, tenant: Tenant, name: str) -> Rubric:
    rubric = Rubric.objects.for_tenant(tenant).filter(name=name).first()
    if rubric is None:
        raise NotFoundError("Rubric not found.")
    return rubric
