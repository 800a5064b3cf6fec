"""Writes for tenants, memberships and API keys."""

import hashlib
import secrets
import uuid
from datetime import datetime

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.forms import PasswordResetForm
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.utils import timezone

from hitl.errors import DomainValidationError, ForbiddenError, fields_message
from hitl.ratelimit import client_address
from hitl.tenancy import cross_tenant, tenant_scope
from tenants.audit import OPERATOR, Actor, audit_record, changes
from tenants.models import ApiKey, ApiKeyRole, Membership, Role, Tenant

API_KEY_PREFIX = "hitl_"

# Which key roles a member may hold, by their membership role: a key never
# grants more than its person has.
KEY_ROLES_BY_MEMBERSHIP_ROLE = {
    Role.ADMIN: set(ApiKeyRole.values),
    Role.REVIEWER: {ApiKeyRole.REVIEWER},
    Role.AUDITOR: {ApiKeyRole.AUDITOR},
    Role.QUALITY_LEAD: {ApiKeyRole.QUALITY_LEAD},
    Role.VIEWER: set(),
}


class PlatformOperator:
    """The platform operator at the command line (``create_api_key``, ``demo``), who may
    create a key for any member: there is no web session to tie the act to a person."""

    audit_actor = OPERATOR  # how the audit log names this actor

    def __repr__(self) -> str:
        return "PLATFORM_OPERATOR"


PLATFORM_OPERATOR = PlatformOperator()


def actor_person(actor):
    """The person who acts (recorded as who did it), or None for the platform operator.

    Services that record who did something take ``actor`` as a required argument:
    a person, or ``PLATFORM_OPERATOR``; forgetting to name one is an error, not the operator.
    """
    if actor is PLATFORM_OPERATOR:
        return None
    if actor is None or getattr(actor, "pk", None) is None:
        raise ForbiddenError("Name who acts: a person, or the platform operator.")
    return actor


def api_key_hash(raw_key: str) -> str:
    # Keys carry 256 random bits, so a fast hash is enough: there is nothing to brute-force.
    return hashlib.sha256(raw_key.encode()).hexdigest()


def _raise_from_django(error: ValidationError) -> None:
    fields = {name: [str(message) for message in messages] for name, messages in error.message_dict.items()}
    raise DomainValidationError(fields_message(fields), fields=fields) from error


def _history_by(instance, actor) -> None:
    """Name who made the change in its history row (else the request's user, via simple-history's middleware)."""
    if actor is not None:
        instance._history_user = actor


def tenant_config_changed(*, tenant: Tenant) -> None:
    """Renew the token that keys the cached policy and routing, in the caller's transaction.

    An operational cache key, kept out of the tenant's history on purpose (hence update()).
    """
    tenant.config_token = uuid.uuid4()
    Tenant.objects.filter(pk=tenant.pk).update(config_token=tenant.config_token)


@transaction.atomic
def people_rights_changed(*, user_ids) -> None:
    """Renew the configuration token of every tenant these people belong to.

    Their reviewer rights, including what their groups may work, are cached per token,
    so they are worked out again on the people's next request. A person spans
    tenants, hence the one query across them.
    """
    with cross_tenant("person_memberships"):
        tenant_ids = set(Membership.unscoped.filter(user_id__in=list(user_ids)).values_list("tenant_id", flat=True))
    for tenant in Tenant.objects.filter(pk__in=tenant_ids).order_by("pk"):
        tenant_config_changed(tenant=tenant)


@transaction.atomic
def tenant_create(*, slug: str, name: str = "") -> Tenant:
    """The tenant row alone; ``reviews.services.onboarding.tenant_onboard`` adds its policy and queue."""
    tenant = Tenant(slug=slug, name=name or slug)
    try:
        tenant.full_clean()
    except ValidationError as error:
        _raise_from_django(error)
    try:
        with transaction.atomic():
            tenant.save()
    except IntegrityError as error:  # the slug was taken between the check and the insert
        raise DomainValidationError("slug: already taken", fields={"slug": ["Already taken."]}) from error
    audit_record(
        tenant=tenant,
        actor=None,
        kind="tenant.created",
        object_type="tenant",
        object_id=tenant.pk,
        data={"after": {"slug": tenant.slug, "name": tenant.name}},
    )
    return tenant


@transaction.atomic
def tenant_update(*, tenant: Tenant, name: str, actor=None) -> Tenant:
    """Rename a tenant. The slug is its identifier in commands and scripts, so it stays."""
    name = (name or "").strip()
    if not name or len(name) > 200:
        raise DomainValidationError("name: 1 to 200 characters", fields={"name": ["1 to 200 characters."]})
    before = {"name": tenant.name}
    tenant.name = name
    _history_by(tenant, actor)
    tenant.save(update_fields=["name"])
    audit_record(
        tenant=tenant,
        actor=actor,
        kind="tenant.updated",
        object_type="tenant",
        object_id=tenant.pk,
        data=changes(before, {"name": name}),
    )
    return tenant


def _membership_fields_check(*, role: str, reviewer_level: int, skills) -> list[str]:
    """The rules of a membership's role, level and skills; returns the skills as a list."""
    if role not in Role.values:
        raise DomainValidationError(
            f"role: must be one of {', '.join(Role.values)}", fields={"role": [f"Unknown role '{role}'."]}
        )
    if not isinstance(reviewer_level, int) or not 1 <= reviewer_level <= 3:
        raise DomainValidationError(
            "reviewer_level: must be 1, 2 or 3", fields={"reviewer_level": ["Must be 1, 2 or 3."]}
        )
    skills = skills or []
    if not isinstance(skills, list) or not all(isinstance(skill, str) and skill for skill in skills):
        raise DomainValidationError(
            "skills: must be a list of non-empty strings", fields={"skills": ["Must be strings."]}
        )
    return skills


def _member_keys_revoke(*, tenant: Tenant, user, allowed_roles: set[str]) -> int:
    """Revoke the person's active keys in the tenant whose role they may no longer hold.

    Authentication already refuses such keys (it checks the membership on every
    request); revoking them as well keeps the key list honest and stops a key from
    coming back to life if the person later rejoins or regains the role.
    """
    revoked = 0
    keys = ApiKey.objects.for_tenant(tenant).filter(user=user, revoked_at__isnull=True).exclude(role__in=allowed_roles)
    for api_key in keys.select_for_update(no_key=True):
        api_key_revoke(api_key=api_key)
        revoked += 1
    return revoked


def _membership_state(membership: Membership) -> dict:
    return {
        "user": membership.user_id,
        "username": membership.user.get_username(),
        "role": membership.role,
        "reviewer_level": membership.reviewer_level,
        "skills": list(membership.skills or []),
    }


def _membership_audit(membership: Membership, kind: str, before: dict | None, actor) -> None:
    after = None if kind == "membership.deleted" else _membership_state(membership)
    data = {"after": after} if before is None else ({"before": before} if after is None else changes(before, after))
    data["user"] = membership.user_id
    audit_record(
        tenant=membership.tenant, actor=actor, kind=kind, object_type="membership", object_id=membership.pk, data=data
    )


@transaction.atomic
def membership_create(
    *, tenant: Tenant, user, role: str, reviewer_level: int = 1, skills: list[str] | None = None, actor=None
) -> Membership:
    skills = _membership_fields_check(role=role, reviewer_level=reviewer_level, skills=skills)
    if Membership.objects.for_tenant(tenant).filter(user=user).exists():
        raise DomainValidationError(
            f"user: {user} is already a member of {tenant}", fields={"user": ["Already a member."]}
        )
    try:
        with transaction.atomic():
            membership = Membership.objects.for_tenant(tenant).create(
                user=user, role=role, reviewer_level=reviewer_level, skills=skills
            )
            tenant_config_changed(tenant=tenant)  # cached reviewer profiles depend on memberships
            _membership_audit(membership, "membership.created", None, actor)
            return membership
    except IntegrityError as error:  # added meanwhile by a concurrent request
        raise DomainValidationError(
            f"user: {user} is already a member of {tenant}", fields={"user": ["Already a member."]}
        ) from error


@transaction.atomic
def membership_update(
    *, membership: Membership, role: str, reviewer_level: int, skills: list[str], actor=None
) -> Membership:
    """Change a person's role, level or skills in one tenant; effective from their next request.

    Keys the new role does not allow are revoked, and the cached reviewer rights
    (keyed by the tenant's config token) are renewed.
    """
    skills = _membership_fields_check(role=role, reviewer_level=reviewer_level, skills=skills)
    before = _membership_state(membership)
    membership.role, membership.reviewer_level, membership.skills = role, reviewer_level, skills
    _history_by(membership, actor)
    membership.save(update_fields=["role", "reviewer_level", "skills"])
    # The tenant's row before the keys' revocation, which appends to the tenant's audit chain at
    # once (a savepoint): every configuration change takes the two in this order, so none deadlock.
    tenant_config_changed(tenant=membership.tenant)
    _member_keys_revoke(
        tenant=membership.tenant, user=membership.user, allowed_roles=KEY_ROLES_BY_MEMBERSHIP_ROLE[role]
    )
    _membership_audit(membership, "membership.updated", before, actor)
    return membership


@transaction.atomic
def membership_delete(*, membership: Membership, actor=None) -> None:
    """The person leaves the tenant: their keys of it are revoked, their rights end at once."""
    tenant, user = membership.tenant, membership.user
    # The membership's row first, as membership_update takes it (its save) before the tenant's.
    Membership.objects.for_tenant(tenant).select_for_update(no_key=True).filter(pk=membership.pk).first()
    tenant_config_changed(tenant=tenant)  # the tenant's row before the audit chain's (membership_update)
    _member_keys_revoke(tenant=tenant, user=user, allowed_roles=set())
    before, membership_id = _membership_state(membership), membership.pk
    _history_by(membership, actor)
    membership.delete()
    membership.pk = membership_id
    _membership_audit(membership, "membership.deleted", before, actor)


def _api_key_creator_check(*, tenant: Tenant, user, actor) -> None:
    """Who may create a key: a key that acts for a person only by that person or the
    platform operator; a key for no person (a service's) only by an admin of the tenant.

    So a tenant admin can never hold a key that acts for a colleague (and approve in
    their name), though they may revoke any key of the tenant.
    """
    actor = actor_person(actor)
    if actor is None:
        return
    if user is not None:
        if actor.pk != user.pk:
            raise ForbiddenError(
                f"user: a key that acts for {user} is created only by {user} (or the platform operator)",
                fields={"user": ["A key that acts for a person is created only by that person."]},
            )
        return
    if not actor.is_superuser and not (
        Membership.objects.for_tenant(tenant).filter(user=actor, role=Role.ADMIN).exists()
    ):
        raise ForbiddenError("Only an admin of the tenant creates keys that act for no person.")


@transaction.atomic
def api_key_create(*, tenant: Tenant, role: str, name: str, user=None, actor) -> tuple[ApiKey, str]:
    """Create a key and return it with the raw secret, which is never stored or shown again.

    ``actor`` is the person creating it, or ``PLATFORM_OPERATOR`` for the operator's
    commands; see :func:`_api_key_creator_check` for who may create which key.
    """
    if role not in ApiKeyRole.values:
        raise DomainValidationError(
            f"role: must be one of {', '.join(ApiKeyRole.values)}",
            fields={"role": [f"Unknown role '{role}'; use one of {', '.join(ApiKeyRole.values)}."]},
        )
    if not name or len(name) > 100:
        raise DomainValidationError("name: 1 to 100 characters", fields={"name": ["1 to 100 characters."]})
    if role == ApiKeyRole.REVIEWER and user is None:
        raise DomainValidationError(
            "user: a reviewer key acts for a person; name the user",
            fields={"user": ["Required for role reviewer: a reviewer key acts for a person."]},
        )
    _api_key_creator_check(tenant=tenant, user=user, actor=actor)
    if user is not None and not user.is_active:
        raise DomainValidationError(
            f"user: {user} is deactivated", fields={"user": ["This person's account is deactivated."]}
        )
    if user is not None:
        membership = Membership.objects.for_tenant(tenant).filter(user=user).first()
        if membership is None:
            raise DomainValidationError(
                f"user: {user} is not a member of {tenant}", fields={"user": ["Not a member of this tenant."]}
            )
        if role not in KEY_ROLES_BY_MEMBERSHIP_ROLE[membership.role]:
            raise DomainValidationError(
                f"role: a {membership.role} may not hold a {role} key",
                fields={"role": [f"Not allowed for a member with role {membership.role}."]},
            )
    prefix = secrets.token_hex(6)
    raw_key = f"{API_KEY_PREFIX}{prefix}_{secrets.token_urlsafe(32)}"
    api_key = ApiKey.objects.for_tenant(tenant).create(
        name=name, role=role, user=user, prefix=prefix, key_hash=api_key_hash(raw_key)
    )
    audit_record(
        tenant=tenant,
        actor=actor,
        kind="api_key.created",
        object_type="api_key",
        object_id=api_key.pk,
        data={"after": {"name": name, "role": role, "user": api_key.user_id, "prefix": prefix}},
    )
    return api_key, raw_key


@transaction.atomic
def api_key_update(*, api_key: ApiKey, name: str, actor=None) -> ApiKey:
    """Rename a key. Its tenant, role and person are fixed: revoke it and create another."""
    if not name or len(name) > 100:
        raise DomainValidationError("name: 1 to 100 characters", fields={"name": ["1 to 100 characters."]})
    before = {"name": api_key.name}
    api_key.name = name
    _history_by(api_key, actor)
    api_key.save(update_fields=["name"])
    audit_record(
        tenant=api_key.tenant,
        actor=actor,
        kind="api_key.renamed",
        object_type="api_key",
        object_id=api_key.pk,
        data=changes(before, {"name": name}),
    )
    return api_key


@transaction.atomic
def api_key_revoke(*, api_key: ApiKey, actor=None) -> ApiKey:
    if api_key.revoked_at is None:
        api_key.revoked_at = timezone.now()
        api_key.save(update_fields=["revoked_at"])
        audit_record(
            tenant=api_key.tenant,
            actor=actor,
            kind="api_key.revoked",
            object_type="api_key",
            object_id=api_key.pk,
            data={"name": api_key.name, "role": api_key.role, "user": api_key.user_id},
        )
    return api_key


def api_key_touch(*, api_key: ApiKey, now: datetime) -> None:
    """Record use, at most once a minute per key, so that ingest does not write per request.

    A plain UPDATE of one operational column that history excludes; it never
    contends with the request's own transaction.
    """
    with tenant_scope(api_key.tenant_id):
        ApiKey.unscoped.filter(pk=api_key.pk).update(last_used_at=now)
    api_key.last_used_at = now


def sign_in_record(*, user, kind: str, request=None) -> int:
    """A sign-in (``auth.signed_in``) or a failed one (``auth.sign_in_failed``) of a person,
    in the audit log of each tenant they belong to; returns how many."""
    address = client_address(request) if request is not None else ""
    with cross_tenant("person_memberships"):  # the person's tenants: memberships cross tenants
        tenants = list(
            Tenant.objects.filter(pk__in=Membership.unscoped.filter(user=user).values("tenant_id")).order_by("pk")
        )
    for tenant in tenants:
        with transaction.atomic(), tenant_scope(tenant):  # each tenant's chain, in its own scope
            audit_record(
                tenant=tenant,
                actor=Actor.of_person(user, "person"),
                kind=kind,
                object_type="user",
                object_id=user.pk,
                data={"username": user.get_username(), "address": address},
            )
    return len(tenants)


def user_get_or_create(*, username: str, email: str = "", password: str | None = None):
    user_model = get_user_model()
    user, created = user_model.objects.get_or_create(username=username, defaults={"email": email})
    if created or password:
        if password:
            user.set_password(password)
        else:
            user.set_unusable_password()
        user.save()
    return user


class _InvitationMail(PasswordResetForm):
    """Django's password-reset mail, sent to one person whatever their password's state
    (an invited person has none yet: the link lets them choose one)."""

    def __init__(self, user):
        super().__init__({"email": user.email})
        self.invited = user

    def get_users(self, email):
        yield self.invited


def member_invitation_send(*, user, tenant: Tenant, role: str, domain: str, use_https: bool) -> None:
    """Mail a person the link to choose their password (``EMAIL_BACKEND``; the console in development)."""
    mail = _InvitationMail(user)
    if mail.is_valid():
        mail.save(
            domain_override=domain,
            use_https=use_https,
            subject_template_name="tenants/invite_subject.txt",
            email_template_name="tenants/invite_email.txt",
            from_email=settings.DEFAULT_FROM_EMAIL,
            extra_email_context={"tenant": tenant.name, "role": role},
        )


@transaction.atomic
def member_invite(
    *,
    tenant: Tenant,
    email: str,
    role: str,
    reviewer_level: int = 1,
    skills: list[str] | None = None,
    domain: str,
    use_https: bool = True,
) -> Membership:
    """Add a person to the tenant by email and mail them a link to choose a password.

    The person's account is the one with this address, else a new one (username: the
    address) with no usable password. The same mail goes out either way, once the
    transaction commits, so that the inviting admin learns nothing about accounts in
    other tenants.
    """
    email = (email or "").strip()
    try:
        validate_email(email)
    except ValidationError:
        message = "Not an email address."
        raise DomainValidationError(f"email: {message}", fields={"email": [message]}) from None
    if len(email) > 150:
        raise DomainValidationError("email: at most 150 characters", fields={"email": ["At most 150 characters."]})
    user_model = get_user_model()
    user = user_model.objects.filter(email__iexact=email).order_by("pk").first()
    if user is None:
        user = user_get_or_create(username=email.lower(), email=email)
        if user.email.lower() != email.lower():  # the name is taken by an account with another address
            raise DomainValidationError(
                "email: this address cannot be invited; ask the platform operator",
                fields={"email": ["This address cannot be invited; ask the platform operator."]},
            )
    membership = membership_create(tenant=tenant, user=user, role=role, reviewer_level=reviewer_level, skills=skills)
    transaction.on_commit(
        lambda: member_invitation_send(user=user, tenant=tenant, role=role, domain=domain, use_https=use_https)
    )
    return membership
