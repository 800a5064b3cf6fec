"""The governance events the services append, who they name, and the check that a service without one fails."""

import pytest
from django.db import transaction

from reviews.models import Output
from tenants.audit import audit_verify
from tenants.models import AuditEvent
from tests import audit_watch
from tests.conftest import make_client
from tests.factories import UserFactory
from tests.reviews.conftest import GOOD_SCORES, claim, review, reviewer, submit

pytestmark = pytest.mark.django_db


def events(tenant, **filters):
    return list(AuditEvent.objects.for_tenant(tenant).filter(**filters).order_by("seq"))


def test_the_life_of_a_reviewed_output_is_in_the_log(tenant, workflow):
    rita = reviewer(tenant, 1, "rita")
    output = submit(workflow, 1, "medium-app")
    task = claim(rita).json()
    assert review(rita, task["id"], decision="approve", scores=GOOD_SCORES, time_spent_seconds=42).status_code == 201

    kinds = [event.kind for event in events(tenant, seq__gt=0)]
    tail = kinds[kinds.index("output.received") :]
    assert tail == ["output.received", "task.claimed", "task.reviewed"]
    received, claimed, reviewed = events(tenant, kind__in=tail)
    assert received.actor_role == "service" and received.actor_key_id == workflow["service"].api_key.pk
    assert received.data["ids"] == [output["id"]] and received.data["tasks"]["ids"] == [task["id"]]
    assert (claimed.object_id, claimed.actor_person_id, claimed.actor_role) == (task["id"], rita.person.pk, "reviewer")
    assert claimed.actor_key_id == rita.api_key.pk
    assert reviewed.data["scores"] == GOOD_SCORES and reviewed.data["time_spent_seconds"] == 42
    assert reviewed.data["shown"]["output_id"] == output["id"]
    assert reviewed.data["decided"]["output"] == output["id"] and reviewed.data["decided"]["decision"] == "approved"
    assert audit_verify(tenant).ok


def test_a_task_that_feedback_opens_names_the_key_that_sent_the_feedback(tenant, workflow):
    output = submit(workflow, 1, "quiet-app")  # auto-approved: no task until a thumbs down
    service = workflow["service"]
    down = service.post(f"/api/v1/outputs/{output['id']}/feedback", {"rating": "down"}, format="json")
    assert down.json()["review_task_created"] is True

    (created,) = events(tenant, kind="task.created")
    assert (created.actor_key_id, created.actor_role) == (service.api_key.pk, "service")
    assert audit_verify(tenant).ok


def test_the_chain_keeps_digests_of_what_people_wrote_never_the_words(tenant, workflow):
    """Comments, corrections, final outputs and feedback comments are in their own rows, which
    retention may blank; the append-only chain holds only their SHA-256."""
    import hashlib

    rita = reviewer(tenant, 1, "rita")
    output = submit(workflow, 1, "medium-app")
    task = claim(rita).json()
    written = review(
        rita, task["id"], decision="correct", scores=GOOD_SCORES, corrected_output="Fixed: call 555-0100", comment="PII"
    )
    assert written.status_code == 201, written.content
    feedback = workflow["service"].post(
        f"/api/v1/outputs/{output['id']}/feedback", {"rating": "down", "comment": "Jane Doe was upset"}, format="json"
    )
    assert feedback.status_code in (200, 201), feedback.content

    def sha(text):
        return "sha256:" + hashlib.sha256(text.encode()).hexdigest()

    (reviewed,) = events(tenant, kind="task.reviewed")
    assert reviewed.data["corrected_output_sha256"] == sha("Fixed: call 555-0100")
    assert reviewed.data["comment_sha256"] == sha("PII")
    assert reviewed.data["decided"]["final_output_sha256"] == sha("Fixed: call 555-0100")
    (added,) = events(tenant, kind="feedback.added")
    assert added.data["comment_sha256"] == sha("Jane Doe was upset")
    every_event = " ".join(str(event.data) for event in events(tenant))
    for words in ("555-0100", "Jane Doe", "'PII'"):
        assert words not in every_event
    assert audit_verify(tenant).ok


def test_an_escalation_and_a_release(tenant, workflow):
    rita, sam = reviewer(tenant, 1, "rita"), reviewer(tenant, 2, "sam")
    submit(workflow, 1, "medium-app")
    task = claim(rita).json()
    assert rita.post(f"/api/v1/tasks/{task['id']}/release").status_code in (200, 204)
    task = claim(rita).json()
    escalated = review(rita, task["id"], decision="escalate", comment="not sure", scores=GOOD_SCORES)
    assert escalated.status_code == 201, escalated.content
    assert [event.kind for event in events(tenant, object_id=task["id"])] == [
        "task.claimed",
        "task.released",
        "task.claimed",
        "task.escalated",
    ]
    assert events(tenant, kind="task.escalated")[0].data["level_required"] == 2
    assert sam  # the level-2 reviewer the task now waits for


def test_configuration_changes_name_the_key_and_its_before_and_after(tenant):
    admin = make_client(tenant, "admin")
    response = admin.put(
        "/api/v1/applications/support-bot/override", {"mode": "block", "reason": "leak"}, format="json"
    )
    assert response.status_code == 200
    event = events(tenant, kind="application.override_set")[0]
    assert event.actor_key_id == admin.api_key.pk and event.actor_role == "admin"
    assert event.data == {
        "before": {"override": "", "override_reason": ""},
        "after": {"override": "block", "override_reason": "leak"},
    }


def test_membership_and_keys(tenant):
    person = UserFactory()
    client = make_client(tenant, "reviewer")
    kinds = [event.kind for event in events(tenant)]
    assert "membership.created" in kinds and "api_key.created" in kinds
    from tenants.services import api_key_revoke

    with transaction.atomic():
        api_key_revoke(api_key=client.api_key)
    assert events(tenant, kind="api_key.revoked")[0].object_id == str(client.api_key.pk)
    assert person  # a person of no tenant leaves nothing in this one


def test_sign_ins_and_failed_ones_go_to_the_persons_tenants(tenant, client):
    person = UserFactory(username="ann")
    person.set_password("pw-of-ann-1")
    person.save()
    from tenants.services import membership_create

    membership_create(tenant=tenant, user=person, role="auditor")
    client.post("/login/", {"username": "ann", "password": "wrong"})
    client.post("/login/", {"username": "ann", "password": "pw-of-ann-1"})
    client.post("/login/", {"username": "nobody", "password": "x"})
    assert [event.kind for event in events(tenant, object_type="user")] == ["auth.sign_in_failed", "auth.signed_in"]
    assert all(event.actor_person_id == person.pk for event in events(tenant, object_type="user"))


def test_a_service_that_writes_without_an_audit_event_fails():
    def rogue_service(*, tenant):
        with transaction.atomic():
            Output.objects.for_tenant(tenant).filter(pk=None).update(status="blocked")  # matches nothing: no write
            Output.objects.for_tenant(tenant).update(status="blocked")

    from tests.factories import TenantFactory

    tenant = TenantFactory()
    submitted = make_client(tenant, "service").post(
        "/api/v1/outputs", {"external_id": "x", "application": "a", "input": "i", "output": "o"}, format="json"
    )
    assert submitted.status_code == 201
    checked = audit_watch.watched(rogue_service, "tests.rogue_service")
    with pytest.raises(audit_watch.MissingAuditEvent, match="rogue_service wrote reviews_output"):
        checked(tenant=tenant)


def test_every_service_function_is_watched_wherever_it_is_used():
    import reviews.apis.outputs
    import reviews.services.ingest
    import tenants.services

    functions = audit_watch.service_functions()
    assert "reviews.services.review.review_submit" in functions
    assert "tenants.services.api_key_create" in functions
    for name in functions:
        module_name, _, attribute = name.rpartition(".")
        value = getattr(__import__(module_name, fromlist=[attribute]), attribute)
        assert hasattr(value, "__audit_watched__") == (name not in audit_watch.EXEMPT), name
    # The references other modules took at import are the watched ones too.
    assert reviews.apis.outputs.output_ingest is reviews.services.ingest.output_ingest
    assert hasattr(tenants.services.api_key_revoke, "__audit_watched__")
    assert set(audit_watch.EXEMPT) <= set(functions)  # no stale exemption


def test_a_review_names_the_reviewer_in_the_reviewer_role_with_a_key_or_without_a_request(tenant, workflow):
    """Through the API the review's event names the key, its person and role; submitted by a command
    or a worker (no request: the demo's seeding), the person acting as a reviewer, not "person"."""
    from reviews.services.claims import reviewer_for, task_claim
    from reviews.services.review import review_submit

    rita = reviewer(tenant, 1, "rita")
    submit(workflow, 1, "medium-app")
    assert review(rita, claim(rita).json()["id"], decision="approve", scores=GOOD_SCORES).status_code == 201
    (by_key,) = events(tenant, kind="task.reviewed")
    named = (by_key.actor_person_id, by_key.actor_key_id, by_key.actor_role)
    assert named == (rita.person.pk, rita.api_key.pk, "reviewer")

    submit(workflow, 2, "medium-app")
    task = task_claim(tenant=tenant, reviewer=reviewer_for(tenant=tenant, user=rita.person))
    review_submit(tenant=tenant, user=rita.person, task_id=task["id"], decision="approve", scores=GOOD_SCORES)
    by_command = events(tenant, kind="task.reviewed")[-1]
    assert (by_command.actor_person_id, by_command.actor_key_id, by_command.actor_role) == (
        rita.person.pk,
        None,
        "reviewer",
    )
    assert audit_verify(tenant).ok
