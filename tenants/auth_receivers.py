"""Changes to Django auth's groups renew the cached reviewer rights: the one use of signals.

House style keeps side effects out of signals (rule 12), with this exception. A person's
groups are Django auth's own many-to-many (``User.groups``), written by Django's user and
group admin pages and by ``user.groups.add()`` / ``group.user_set.remove()`` anywhere,
and a group is deleted by Django's admin: none of those paths goes through a service of
ours. Yet what a group may work (its queue permissions) is part of each member's
reviewer rights, cached per tenant configuration token (``reviews.services.claims``).
Without these receivers, someone removed from a group would keep claiming from its
queues until some unrelated change renewed the token. They only renew tokens; the
rights themselves are still worked out by the claim.
"""

from django.contrib.auth import get_user_model, user_logged_in, user_login_failed
from django.contrib.auth.models import Group
from django.db.models.signals import m2m_changed, pre_delete
from django.dispatch import receiver

from tenants.services import people_rights_changed, sign_in_record

User = get_user_model()


@receiver(m2m_changed, sender=User.groups.through, dispatch_uid="tenants.groups_changed")
def groups_changed(sender, instance, action, reverse, pk_set, **kwargs) -> None:
    """``user.groups.add/remove/set/clear`` (``reverse`` False: ``instance`` is the person)
    and ``group.user_set...`` (``reverse`` True: ``instance`` is the group)."""
    if action == "pre_clear" and reverse:
        # After the clear the group has no members left to name: remember them now.
        instance._members_before_clear = list(instance.user_set.values_list("pk", flat=True))
        return
    if action not in ("post_add", "post_remove", "post_clear"):
        return
    if not reverse:
        user_ids = [instance.pk]
    elif action == "post_clear":
        user_ids = getattr(instance, "_members_before_clear", [])
    else:
        user_ids = list(pk_set or ())
    if user_ids:
        people_rights_changed(user_ids=user_ids)


@receiver(pre_delete, sender=Group, dispatch_uid="tenants.group_deleted")
def group_deleted(sender, instance, **kwargs) -> None:
    """Deleting a group takes its queue permissions from all its members at once."""
    user_ids = list(instance.user_set.values_list("pk", flat=True))
    if user_ids:
        people_rights_changed(user_ids=user_ids)


# Sign-ins are governance events too (who could act, when): Django's own login view and
# the admin's signal them, and no service of ours runs there. Each goes to the audit log
# of every tenant the person belongs to (a person may act in any of them once signed in).


@receiver(user_logged_in, dispatch_uid="tenants.signed_in")
def signed_in(sender, request, user, **kwargs) -> None:
    sign_in_record(user=user, kind="auth.signed_in", request=request)


@receiver(user_login_failed, dispatch_uid="tenants.sign_in_failed")
def sign_in_failed(sender, credentials, request=None, **kwargs) -> None:
    username = (credentials or {}).get("username")
    user = User.objects.filter(username=username).first() if isinstance(username, str) and username else None
    if user is not None:  # an unknown name belongs to no tenant: the rate limiter logs it
        sign_in_record(user=user, kind="auth.sign_in_failed", request=request)
