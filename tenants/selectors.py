"""Reads for tenants and API keys."""

import hmac

from django.db.models import OuterRef, Subquery

from hitl.errors import NotFoundError
from tenants.models import ApiKey, Membership, Role, Tenant
from tenants.services import API_KEY_PREFIX, KEY_ROLES_BY_MEMBERSHIP_ROLE, api_key_hash


def api_key_account(raw_key: str) -> str | None:
    """The prefix a raw key names (its account, for counting failures), or None if it names none."""
    if not raw_key.startswith(API_KEY_PREFIX):
        return None
    prefix, _, _ = raw_key[len(API_KEY_PREFIX) :].partition("_")
    return prefix[:16] or None


def api_key_authenticate(*, raw_key: str) -> ApiKey | None:
    """The active key for ``raw_key`` with its tenant, or None.

    Authentication is the one read that starts without a tenant: the key names it.
    """
    if not raw_key.startswith(API_KEY_PREFIX):
        return None
    prefix, _, secret = raw_key[len(API_KEY_PREFIX) :].partition("_")
    if not prefix or not secret:
        return None
    # No ORDER BY (prefix is unique) and no join to the user: the person, when a
    # view needs them, is loaded lazily. This query runs on every request.
    # A deactivated person has no role anywhere, so their keys stop at the next request.
    member_role = Membership.unscoped.filter(
        tenant=OuterRef("tenant"), user=OuterRef("user"), user__is_active=True
    ).values("role")[:1]
    matches = list(
        ApiKey.unscoped.select_related("tenant").filter(prefix=prefix).annotate(member_role=Subquery(member_role))[:1]
    )
    api_key = matches[0] if matches else None
    if api_key is None or not hmac.compare_digest(api_key.key_hash, api_key_hash(raw_key)):
        return None
    if api_key.revoked_at is not None:
        return None
    if api_key.user_id is not None and api_key.role not in KEY_ROLES_BY_MEMBERSHIP_ROLE.get(api_key.member_role, ()):
        return None  # the person left the tenant, was deactivated, or no longer holds a role that allows this key
    return api_key


def tenant_get_by_slug(*, slug: str) -> Tenant | None:
    return Tenant.objects.filter(slug=slug).first()


def tenants_administered_by(*, user) -> list[int]:
    """Ids of the tenants a person administers (for the Django admin's scoping)."""
    return list(Membership.unscoped.filter(user=user, role=Role.ADMIN).values_list("tenant_id", flat=True))


def memberships_of(*, user) -> list[Membership]:
    """A person's memberships in every tenant, by tenant slug.

    Crosses tenants by design: it lists the tenants a person may switch between.
    """
    return list(Membership.unscoped.filter(user=user).select_related("tenant").order_by("tenant__slug"))


def api_keys_of(*, tenant: Tenant, user) -> list[ApiKey]:
    """The keys acting for one person in one tenant, newest first (revoked ones too)."""
    return list(ApiKey.objects.for_tenant(tenant).filter(user=user).order_by("-created_at"))


def members_of(*, tenant: Tenant) -> list[Membership]:
    """A tenant's memberships with their people, by username."""
    return list(Membership.objects.for_tenant(tenant).select_related("user").order_by("user__username"))


def membership_get_for_tenant(*, tenant: Tenant, membership_id) -> Membership:
    """One membership of the tenant, or NotFoundError: missing and foreign look the same."""
    membership = Membership.objects.for_tenant(tenant).select_related("user", "tenant").filter(pk=membership_id).first()
    if membership is None:
        raise NotFoundError("Member not found.")
    return membership


def admins_count(*, tenant: Tenant) -> int:
    return Membership.objects.for_tenant(tenant).filter(role=Role.ADMIN).count()
