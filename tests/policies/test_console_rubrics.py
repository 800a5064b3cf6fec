"""Rubrics in the console: the list, a new rubric, a new version with a reason, JSON checked."""

import json

import pytest

from policies.models import Rubric
from policies.services import rubric_publish
from tests.pages import field_errors, form_data, member, signed_in

RUBRIC = {"name": "quality", "criteria": [{"key": "correct", "label": "Correct", "kind": "binary"}]}


@pytest.fixture
def admin(tenant):
    return member(tenant, "admin", "ada")


def test_a_new_rubric_is_created_from_the_example_and_listed(tenant, admin):
    client = signed_in(admin)
    data = form_data(client.get("/console/rubrics/").content.decode())
    assert json.loads(data["criteria"])[0]["kind"] == "binary"  # the example is valid JSON

    response = client.post("/console/rubrics/", {**data, "name": "answers", "reason": "first rubric"})

    assert response.status_code == 302 and response["Location"] == "/console/rubrics/answers/"
    rubric = Rubric.objects.for_tenant(tenant).get(name="answers")
    assert rubric.version == 1 and len(rubric.criteria) == 4
    record = rubric.history.get()
    assert (record.history_user, record.history_change_reason) == (admin, "first rubric")
    assert "answers" in client.get("/console/rubrics/").content.decode()


def test_a_new_version_is_published_with_its_reason_and_shown_in_the_versions(tenant, admin):
    rubric_publish(tenant=tenant, document=RUBRIC)
    client = signed_in(admin)
    data = form_data(client.get("/console/rubrics/quality/").content.decode())
    criteria = json.loads(data["criteria"])
    criteria.append({"key": "polite", "label": "Polite", "kind": "graded", "min": 1, "max": 3})

    response = client.post(
        "/console/rubrics/quality/", {**data, "criteria": json.dumps(criteria), "reason": "politeness counts"}
    )

    assert response.status_code == 302
    rubric = Rubric.objects.for_tenant(tenant).get()
    assert rubric.version == 2 and [c["key"] for c in rubric.criteria] == ["correct", "polite"]
    page = client.get("/console/rubrics/quality/").content.decode()
    assert "politeness counts" in page and "Publish version 3" in page


@pytest.mark.parametrize(
    ("criteria", "message"),
    [
        ("[{", "Not JSON"),
        ('{"key": "x"}', "A JSON list of criteria"),
        ('[{"key": "helpful", "label": "Helpful", "kind": "graded"}]', "criterion 1 (helpful)"),
        ('[{"key": "a", "label": "A", "kind": "binary"}, {"key": "a", "label": "B", "kind": "text"}]', "unique"),
        ('[{"key": "a", "label": "A", "kind": "stars"}]', "criterion 1 (a), kind"),
    ],
)
def test_bad_criteria_are_named_beside_the_field_and_nothing_is_written(tenant, admin, criteria, message):
    rubric_publish(tenant=tenant, document=RUBRIC)
    response = signed_in(admin).post("/console/rubrics/quality/", {"criteria": criteria, "reason": "try"})

    assert response.status_code == 400
    page = response.content.decode()
    assert message in field_errors(page, "id_criteria") or message in page
    assert Rubric.objects.for_tenant(tenant).get().version == 1


def test_a_new_rubric_may_not_take_an_existing_name(tenant, admin):
    rubric_publish(tenant=tenant, document=RUBRIC)
    response = signed_in(admin).post(
        "/console/rubrics/", {"name": "quality", "criteria": json.dumps(RUBRIC["criteria"]), "reason": "again"}
    )
    assert response.status_code == 400
    assert "open it to publish a new version" in field_errors(response.content.decode(), "id_name")
    assert Rubric.objects.for_tenant(tenant).get().version == 1


def test_a_reason_is_required(tenant, admin):
    rubric_publish(tenant=tenant, document=RUBRIC)
    response = signed_in(admin).post("/console/rubrics/quality/", {"criteria": json.dumps(RUBRIC["criteria"])})
    assert response.status_code == 400 and "Say why" in field_errors(response.content.decode(), "id_reason")


def test_another_tenants_rubric_is_not_found_and_other_roles_are_refused(tenant, other_tenant):
    rubric_publish(tenant=tenant, document=RUBRIC)
    body = {"criteria": json.dumps(RUBRIC["criteria"]), "reason": "mine now"}
    outsider = signed_in(member(other_tenant, "admin"))
    assert outsider.get("/console/rubrics/quality/").status_code == 404
    assert outsider.post("/console/rubrics/quality/", body).status_code == 404
    for role in ("reviewer", "auditor"):
        client = signed_in(member(tenant, role))
        assert client.get("/console/rubrics/").status_code == 403
        assert client.post("/console/rubrics/quality/", body).status_code == 403
    assert Rubric.unscoped.get().version == 1 and not Rubric.objects.for_tenant(other_tenant).exists()


def test_the_scope_is_published_and_shown_back(tenant, admin):
    rubric_publish(tenant=tenant, document=RUBRIC)
    client = signed_in(admin)
    body = {"criteria": json.dumps(RUBRIC["criteria"]), "scope": "session", "reason": "score conversations"}

    assert client.post("/console/rubrics/quality/", body).status_code == 302

    rubric = Rubric.objects.for_tenant(tenant).get()
    assert (rubric.version, rubric.scope) == (2, "session")
    assert form_data(client.get("/console/rubrics/quality/").content.decode())["scope"] == "session"


def test_a_new_version_may_require_recertification_of_the_queues_using_it(tenant, admin):
    from datetime import timedelta

    from django.utils import timezone

    from policies.defaults import DEFAULT_POLICY
    from policies.services import policy_publish
    from reviews.models import Certification, CertificationStatus, Queue

    rubric_publish(tenant=tenant, document=RUBRIC)
    tiers = [{**tier, "rubric": "quality"} for tier in DEFAULT_POLICY["tiers"]]
    policy_publish(tenant=tenant, document={**DEFAULT_POLICY, "tiers": tiers})
    now = timezone.now()
    certification = Certification.objects.for_tenant(tenant).create(
        user=member(tenant, "reviewer", "rita"),
        queue=Queue.objects.for_tenant(tenant).get(name="default"),
        valid_from=now - timedelta(days=1),
        valid_until=now + timedelta(days=30),
    )
    client = signed_in(admin)
    assert "require_recertification" not in client.get("/console/rubrics/").content.decode()  # new rubrics: none
    body = {"criteria": json.dumps(RUBRIC["criteria"]), "reason": "same criteria, a stricter reading"}

    assert client.post("/console/rubrics/quality/", body).status_code == 302
    certification.refresh_from_db()
    assert certification.status == CertificationStatus.ACTIVE  # not asked

    response = client.post("/console/rubrics/quality/", {**body, "require_recertification": "on"})

    assert response.status_code == 302
    certification.refresh_from_db()
    assert certification.status == CertificationStatus.EXPIRED
    assert "rubric quality version 3" in certification.status_reason
    assert "take the exam again" in client.get(response["Location"]).content.decode()
