"""Calibration sessions over the API (issue 13 point 3): a quality lead picks outputs, a rubric
version and people; each scores blind; once closed, everyone invited sees the results side by side."""

import pytest

from hitl.statistics import krippendorff_alpha
from quality.models import CalibrationAnswer
from reviews.services import output_ingest_batch
from tenants.models import AuditEvent
from tenants.services import membership_create
from tests.conftest import make_client
from tests.factories import UserFactory, output_submission


def person(tenant, role, name):
    user = UserFactory(username=name)
    membership_create(tenant=tenant, user=user, role=role)
    client = make_client(tenant, role, user=user)
    client.person = user
    return client


@pytest.fixture
def setup(tenant, rubric):
    ids = [
        item.receipt["id"]
        for item in output_ingest_batch(tenant=tenant, submissions=[output_submission(n) for n in range(3)])
    ]
    lead = person(tenant, "quality_lead", "quinn")
    ann, bob = person(tenant, "reviewer", "ann"), person(tenant, "reviewer", "bob")
    outsider = person(tenant, "reviewer", "olga")
    response = lead.post(
        "/api/v1/calibration/sessions",
        {"name": "Week 48", "rubric": "quality", "outputs": ids, "participants": [ann.person.pk, bob.person.pk]},
        format="json",
    )
    assert response.status_code == 201, response.json()
    return {"ids": ids, "lead": lead, "ann": ann, "bob": bob, "outsider": outsider, "session": response.json()}


def _answer(client, session_id, item, decision, **scores):
    return client.post(
        f"/api/v1/calibration/sessions/{session_id}/answers",
        {"item": item, "decision": decision, "scores": scores},
        format="json",
    )


def test_blind_scoring_then_results_side_by_side_with_disagreements_first(tenant, setup):
    session = setup["session"]
    sid = session["id"]
    assert (session["status"], session["items"], session["rubric_version"]) == ("open", 3, 1)
    work = setup["ann"].get(f"/api/v1/calibration/sessions/{sid}/work").json()
    items = [row["item"] for row in work["items"]]
    assert [c["key"] for c in work["criteria"]] == ["correct", "helpful", "tone", "notes"]

    assert _answer(setup["ann"], sid, items[0], "approve", correct=True, helpful=4).status_code == 201
    assert _answer(setup["ann"], sid, items[1], "approve", correct=True, helpful=5).status_code == 201
    assert _answer(setup["ann"], sid, items[2], "reject", correct=False, helpful=1).status_code == 201
    # Blind: bob's work shows his own answers only, and results wait for the close.
    bobs = setup["bob"].get(f"/api/v1/calibration/sessions/{sid}/work").json()
    assert all(row["answer"] is None for row in bobs["items"])
    assert setup["bob"].get(f"/api/v1/calibration/sessions/{sid}/results").status_code == 409
    assert setup["lead"].get(f"/api/v1/calibration/sessions/{sid}/results").json()["code"] == "session_open"
    assert _answer(setup["bob"], sid, items[0], "approve", correct=True, helpful=4).status_code == 201
    assert _answer(setup["bob"], sid, items[1], "reject", correct=False, helpful=2).status_code == 201
    assert _answer(setup["bob"], sid, items[2], "reject", correct=False, helpful=2).status_code == 201
    # Scores are checked against the rubric version; answering again replaces.
    bad = _answer(setup["bob"], sid, items[2], "reject", correct=False, helpful=9)
    assert bad.status_code == 422 and "scores.helpful" in bad.json()["message"]
    assert _answer(setup["bob"], sid, items[2], "reject", correct=False, helpful=1).status_code == 201
    assert CalibrationAnswer.objects.for_tenant(tenant).count() == 6
    # Not invited: the 404 of a session that does not exist.
    assert setup["outsider"].get(f"/api/v1/calibration/sessions/{sid}/work").status_code == 404
    assert _answer(setup["outsider"], sid, items[0], "approve", correct=True, helpful=4).status_code == 404
    assert setup["outsider"].get("/api/v1/calibration/sessions").json()["results"] == []
    assert [s["id"] for s in setup["ann"].get("/api/v1/calibration/sessions").json()["results"]] == [sid]

    closed = setup["lead"].post(f"/api/v1/calibration/sessions/{sid}/close")
    assert closed.status_code == 200 and closed.json()["status"] == "closed"
    assert _answer(setup["ann"], sid, items[0], "reject", correct=True, helpful=4).json()["code"] == "session_closed"

    results = setup["ann"].get(f"/api/v1/calibration/sessions/{sid}/results").json()
    assert results["participants"] == ["ann", "bob"]
    first = results["items"][0]
    assert first["item"] == items[1] and first["disagreements"] == ["decision", "correct", "helpful"]
    assert [a["decision"] for a in first["answers"]] == ["approve", "reject"]
    assert results["items"][-1]["disagreements"] == []
    assert results["items"][0]["gold"] is None  # no golden sets on this branch (quality.selectors.gold_answer)
    agreement = {row["key"]: row for row in results["agreement"]}
    assert agreement["helpful"]["level"] == "ordinal" and agreement["decision"]["level"] == "nominal"
    helpful = [[4, 5, 1], [4, 2, 1]]
    assert agreement["helpful"]["alpha"] == pytest.approx(
        krippendorff_alpha(helpful, level="ordinal", values=[1, 2, 3, 4, 5])
    )
    decisions = [[0, 0, 1], [0, 1, 1]]
    assert agreement["decision"]["alpha"] == pytest.approx(
        krippendorff_alpha(decisions, level="nominal", values=[0, 1, 2])
    )
    assert agreement["decision"]["fleiss_kappa"] is not None
    kinds = {event.kind for event in AuditEvent.objects.for_tenant(tenant).filter(object_type="calibration_session")}
    assert kinds == {"calibration.created", "calibration.answered", "calibration.closed"}
    assert setup["outsider"].get(f"/api/v1/calibration/sessions/{sid}/results").status_code == 404


def test_session_creation_checks_outputs_people_and_roles(tenant, other_tenant, setup):
    lead = setup["lead"]
    auditor = UserFactory()
    membership_create(tenant=tenant, user=auditor, role="auditor")
    body = {
        "name": "x",
        "rubric": "quality",
        "outputs": setup["ids"],
        "participants": [setup["ann"].person.pk, auditor.pk],
    }
    response = lead.post("/api/v1/calibration/sessions", body, format="json")
    assert response.status_code == 422 and "auditor" in response.json()["message"]
    foreign = [
        item.receipt["id"] for item in output_ingest_batch(tenant=other_tenant, submissions=[output_submission(7)])
    ]
    response = lead.post(
        "/api/v1/calibration/sessions",
        {**body, "outputs": foreign, "participants": [setup["ann"].person.pk, setup["bob"].person.pk]},
        format="json",
    )
    assert response.status_code == 404
    response = lead.post("/api/v1/calibration/sessions", {**body, "rubric": "nope"}, format="json")
    assert response.status_code == 404
