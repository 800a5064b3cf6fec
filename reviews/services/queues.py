"""Queues: where tasks wait, what they require of reviewers, and who may work them."""

from django.contrib.auth.models import Permission
from django.db import transaction
from django.utils import timezone

from hitl.errors import DomainValidationError
from reviews.models import (
    Queue,
    QueueAccessAction,
    QueueAccessEvent,
    QueueGroupObjectPermission,
    QueueUserObjectPermission,
)
from tenants.audit import audit_record
from tenants.audit import changes as diff
from tenants.models import Membership, Role, Tenant
from tenants.services import actor_person, tenant_config_changed


def _string_list(value, field: str) -> list[str]:
    if not isinstance(value, list | tuple) or not all(isinstance(item, str) and item for item in value):
        raise DomainValidationError(
            f"{field}: a list of names", fields={field: ["Must be a list of non-empty strings."]}
        )
    return list(value)


@transaction.atomic
def queue_create(
    *,
    tenant: Tenant,
    name: str,
    tiers=(),
    applications=(),
    required_skills=(),
    min_reviewer_level: int = 1,
    priority: int = 0,
    actor=None,
) -> Queue:
    if not name or len(name) > 100:
        raise DomainValidationError("name: 1 to 100 characters", fields={"name": ["1 to 100 characters."]})
    if not 1 <= min_reviewer_level <= 3:
        raise DomainValidationError("min_reviewer_level: 1, 2 or 3", fields={"min_reviewer_level": ["1, 2 or 3."]})
    if Queue.objects.for_tenant(tenant).filter(name=name).exists():
        raise DomainValidationError(f"name: a queue '{name}' exists", fields={"name": ["Already exists."]})
    queue = Queue.objects.for_tenant(tenant).create(
        name=name,
        tiers=_string_list(tiers, "tiers"),
        applications=_string_list(applications, "applications"),
        required_skills=_string_list(required_skills, "required_skills"),
        min_reviewer_level=min_reviewer_level,
        priority=priority,
    )
    tenant_config_changed(tenant=tenant)
    audit_record(
        tenant=tenant,
        actor=actor,
        kind="queue.created",
        object_type="queue",
        object_id=queue.pk,
        data={"after": {"name": name, **_queue_state(queue)}},
    )
    return queue


def _queue_state(queue: Queue) -> dict:
    return {
        "tiers": queue.tiers,
        "applications": queue.applications,
        "required_skills": queue.required_skills,
        "min_reviewer_level": queue.min_reviewer_level,
        "priority": queue.priority,
    }


@transaction.atomic
def queue_update(*, queue: Queue, **changes) -> Queue:
    """Change a queue's routing or requirements; new outputs route by it from the next request."""
    allowed = {"tiers", "applications", "required_skills", "min_reviewer_level", "priority"}
    unknown = set(changes) - allowed
    if unknown:
        raise DomainValidationError(
            f"cannot change {', '.join(sorted(unknown))}", fields={key: ["Not changeable."] for key in unknown}
        )
    for key in ("tiers", "applications", "required_skills"):
        if key in changes:
            changes[key] = _string_list(changes[key], key)
    if "min_reviewer_level" in changes and not 1 <= changes["min_reviewer_level"] <= 3:
        raise DomainValidationError("min_reviewer_level: 1, 2 or 3", fields={"min_reviewer_level": ["1, 2 or 3."]})
    before = _queue_state(queue)
    for key, value in changes.items():
        setattr(queue, key, value)
    queue.save(update_fields=list(changes))
    tenant_config_changed(tenant=queue.tenant)
    audit_record(
        tenant=queue.tenant,
        actor=None,
        kind="queue.updated",
        object_type="queue",
        object_id=queue.pk,
        data=diff(before, _queue_state(queue)),
    )
    return queue


def _work_queue_permission() -> Permission:
    return Permission.objects.get(content_type__app_label="reviews", codename="work_queue")


def _access_event(*, queue: Queue, action: str, actor, user=None, group=None) -> QueueAccessEvent:
    """The grant or revocation as a row and an audit event, in the caller's transaction (``actor``: a person)."""
    audit_record(
        tenant=queue.tenant,
        actor=actor,
        kind=f"queue.{'granted' if action == QueueAccessAction.GRANT else 'revoked'}",
        object_type="queue",
        object_id=queue.pk,
        data={
            "queue": queue.name,
            "user": None if user is None else user.pk,
            "group": None if group is None else group.name,
        },
    )
    return QueueAccessEvent.objects.for_tenant(queue.tenant).create(
        queue=queue,
        action=action,
        user=user,
        group=group,
        group_name=group.name if group is not None else "",
        actor=actor,
        created_at=timezone.now(),
    )


@transaction.atomic
def queue_grant(*, queue: Queue, user, actor) -> QueueAccessEvent | None:
    """Let a member work a queue (a django-guardian object permission), from their next claim.

    ``actor`` is who grants it (a person, or ``PLATFORM_OPERATOR``); the grant is
    recorded as a :class:`QueueAccessEvent`, unless the person already had it.
    """
    actor = actor_person(actor)  # named before anything is written
    membership = Membership.objects.for_tenant(queue.tenant).filter(user=user).first()
    if membership is None or membership.role not in Role.reviewing():
        raise DomainValidationError(
            "user: only reviewers and admins of the tenant work queues",
            fields={"user": ["Not a reviewer of this tenant."]},
        )
    _, created = QueueUserObjectPermission.objects.get_or_create(
        user=user, content_object=queue, permission=_work_queue_permission()
    )
    if not created:
        return None
    tenant_config_changed(tenant=queue.tenant)  # reviewer rights are cached per token
    return _access_event(queue=queue, action=QueueAccessAction.GRANT, actor=actor, user=user)


@transaction.atomic
def queue_revoke(*, queue: Queue, user, actor) -> QueueAccessEvent | None:
    """Take the right to work a queue from a person; effective from their next claim."""
    actor = actor_person(actor)
    deleted, _ = QueueUserObjectPermission.objects.filter(
        user=user, content_object=queue, permission=_work_queue_permission()
    ).delete()
    if not deleted:
        return None
    tenant_config_changed(tenant=queue.tenant)
    return _access_event(queue=queue, action=QueueAccessAction.REVOKE, actor=actor, user=user)


@transaction.atomic
def queue_grant_group(*, queue: Queue, group, actor) -> QueueAccessEvent | None:
    """Let a group work a queue. Only the group's members who review in the queue's
    tenant can claim from it: the claim checks the membership, as for a person's grant."""
    actor = actor_person(actor)
    _, created = QueueGroupObjectPermission.objects.get_or_create(
        group=group, content_object=queue, permission=_work_queue_permission()
    )
    if not created:
        return None
    tenant_config_changed(tenant=queue.tenant)
    return _access_event(queue=queue, action=QueueAccessAction.GRANT, actor=actor, group=group)


@transaction.atomic
def queue_revoke_group(*, queue: Queue, group, actor) -> QueueAccessEvent | None:
    """Take the right to work a queue from a group; effective from its members' next claim."""
    actor = actor_person(actor)
    deleted, _ = QueueGroupObjectPermission.objects.filter(
        group=group, content_object=queue, permission=_work_queue_permission()
    ).delete()
    if not deleted:
        return None
    tenant_config_changed(tenant=queue.tenant)
    return _access_event(queue=queue, action=QueueAccessAction.REVOKE, actor=actor, group=group)
