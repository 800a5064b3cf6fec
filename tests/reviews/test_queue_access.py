"""Who may work a queue follows changes at once, and every grant and revocation is on record.

A person's rights (their queues, direct or through a group) are cached per tenant
configuration token; each change here must renew it, so that the next claim sees it.
"""

from datetime import timedelta

import pytest
from django.contrib.auth.models import Group
from django.utils import timezone

from hitl.errors import ForbiddenError
from reviews.models import Queue, QueueAccessEvent
from reviews.services.queues import queue_grant, queue_grant_group, queue_revoke, queue_revoke_group
from tenants.services import PLATFORM_OPERATOR, membership_create
from tests.conftest import make_client
from tests.factories import UserFactory
from tests.reviews.conftest import claim, submit


@pytest.fixture
def default_queue(tenant):
    return Queue.objects.for_tenant(tenant).get(name="default")


@pytest.fixture
def admin(tenant):
    person = UserFactory(username="ada")
    membership_create(tenant=tenant, user=person, role="admin")
    return person


@pytest.fixture
def rita(tenant):
    """A reviewer of the tenant with no queue of her own yet, and her key."""
    person = UserFactory(username="rita")
    membership_create(tenant=tenant, user=person, role="reviewer")
    client = make_client(tenant, "reviewer", user=person)
    client.person = person
    return client


@pytest.fixture
def group_on_default_queue(default_queue, admin):
    group = Group.objects.create(name="night shift")
    queue_grant_group(queue=default_queue, group=group, actor=admin)
    return group


def test_a_grant_and_a_revocation_are_recorded_with_who_and_when(tenant, default_queue, admin, rita):
    before = timezone.now()
    granted = queue_grant(queue=default_queue, user=rita.person, actor=admin)
    assert queue_grant(queue=default_queue, user=rita.person, actor=admin) is None  # nothing changed
    revoked = queue_revoke(queue=default_queue, user=rita.person, actor=PLATFORM_OPERATOR)
    assert queue_revoke(queue=default_queue, user=rita.person, actor=admin) is None

    events = list(QueueAccessEvent.objects.for_tenant(tenant).order_by("created_at", "pk"))
    assert events == [granted, revoked]
    assert [(e.action, e.queue, e.user, e.actor) for e in events] == [
        ("grant", default_queue, rita.person, admin),
        ("revoke", default_queue, rita.person, None),  # the platform operator at the command line
    ]
    assert all(before <= e.created_at <= timezone.now() for e in events)


def test_a_group_grant_is_recorded_and_keeps_the_groups_name(tenant, default_queue, admin):
    group = Group.objects.create(name="night shift")
    queue_grant_group(queue=default_queue, group=group, actor=admin)
    queue_revoke_group(queue=default_queue, group=group, actor=admin)
    group.delete()

    events = QueueAccessEvent.objects.for_tenant(tenant).order_by("created_at", "pk")
    assert [(e.action, e.group_id, e.group_name, e.actor) for e in events] == [
        ("grant", None, "night shift", admin),
        ("revoke", None, "night shift", admin),
    ]


def test_a_grant_names_who_grants_before_writing_anything(tenant, default_queue, rita):
    with pytest.raises(ForbiddenError):
        queue_grant(queue=default_queue, user=rita.person, actor=None)

    assert not default_queue.queueuserobjectpermission_set.exists()
    assert not QueueAccessEvent.objects.for_tenant(tenant).exists()


def test_a_revoked_person_cannot_claim_from_the_next_request(tenant, workflow, default_queue, admin, rita):
    submit(workflow, 1, "medium-app")
    queue_grant(queue=default_queue, user=rita.person, actor=admin)
    assert claim(rita, queue="default").status_code == 200  # rights cached now

    queue_revoke(queue=default_queue, user=rita.person, actor=admin)
    submit(workflow, 2, "medium-app")

    assert claim(rita).status_code == 204


def test_a_groups_revoked_permission_stops_its_members_at_once(
    tenant, workflow, default_queue, admin, rita, group_on_default_queue
):
    rita.person.groups.add(group_on_default_queue)
    submit(workflow, 1, "medium-app")
    submit(workflow, 2, "medium-app")
    assert claim(rita).status_code == 200

    queue_revoke_group(queue=default_queue, group=group_on_default_queue, actor=admin)

    assert claim(rita).status_code == 204


@pytest.mark.parametrize(
    "leave",
    [
        lambda person, group: person.groups.remove(group),
        lambda person, group: group.user_set.remove(person),
        lambda person, group: person.groups.clear(),
        lambda person, group: group.user_set.clear(),
        lambda person, group: person.groups.set([]),
        lambda person, group: group.delete(),
    ],
    ids=["groups.remove", "user_set.remove", "groups.clear", "user_set.clear", "groups.set", "group deleted"],
)
def test_leaving_a_group_takes_effect_on_the_next_claim(tenant, workflow, rita, group_on_default_queue, leave):
    rita.person.groups.add(group_on_default_queue)
    submit(workflow, 1, "medium-app")
    submit(workflow, 2, "medium-app")
    assert claim(rita).status_code == 200  # through the group; the rights are cached now

    leave(rita.person, group_on_default_queue)

    assert claim(rita).status_code == 204


@pytest.mark.parametrize(
    "join",
    [lambda person, group: person.groups.add(group), lambda person, group: group.user_set.add(person)],
    ids=["groups.add", "user_set.add"],
)
def test_joining_a_group_takes_effect_on_the_next_claim(tenant, workflow, rita, group_on_default_queue, join):
    submit(workflow, 1, "medium-app")
    assert claim(rita).status_code == 204  # no queue yet, and that is cached

    join(rita.person, group_on_default_queue)

    assert claim(rita).status_code == 200


def test_a_group_change_renews_only_the_tenants_of_its_people(tenant, other_tenant, rita, group_on_default_queue):
    for each in (tenant, other_tenant):
        each.refresh_from_db()
    tokens = {t.pk: t.config_token for t in (tenant, other_tenant)}

    rita.person.groups.add(group_on_default_queue)

    tenant.refresh_from_db()
    other_tenant.refresh_from_db()
    assert tenant.config_token != tokens[tenant.pk]
    assert other_tenant.config_token == tokens[other_tenant.pk]


def test_grant_events_are_kept_per_tenant(tenant, other_tenant, default_queue, admin, rita):
    queue_grant(queue=default_queue, user=rita.person, actor=admin)

    assert QueueAccessEvent.objects.for_tenant(tenant).count() == 1
    assert not QueueAccessEvent.objects.for_tenant(other_tenant).exists()
    assert QueueAccessEvent.objects.for_tenant(tenant).get().created_at > timezone.now() - timedelta(minutes=1)
