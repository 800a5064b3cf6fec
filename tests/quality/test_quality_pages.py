"""The quality pages (Django's test client): calibration from start to results, the agreement
page with flags; who may open what (wrong role 403, another tenant 404 and nothing of A)."""

import pytest

from policies.services import judge_create, judge_flag_raise
from quality.models import CalibrationSession
from quality.services import calibration_session_create
from reviews.services import output_ingest_batch
from tests.factories import output_submission
from tests.pages import form_data, member, signed_in
from tests.quality.conftest import overlap_reviews


@pytest.fixture
def lab(tenant, rubric):
    ids = [
        str(item.receipt["id"])
        for item in output_ingest_batch(tenant=tenant, submissions=[output_submission(n) for n in range(2)])
    ]
    return {
        "ids": ids,
        "lead": member(tenant, "quality_lead", "quinn"),
        "ann": member(tenant, "reviewer", "ann"),
        "bob": member(tenant, "reviewer", "bob"),
        "olga": member(tenant, "reviewer", "olga"),
        "alex": member(tenant, "auditor", "alex"),
    }


def test_a_session_from_the_form_to_the_results(tenant, lab):
    lead = signed_in(lab["lead"])
    page = lead.get("/quality/calibration/new/").content.decode()
    assert "ann (Reviewer)" in page and "alex" not in page  # auditors are not invited
    data = form_data(page)
    data.update(
        name="Week 48",
        rubric="quality",
        extra_outputs="\n".join(lab["ids"]),
        participants=[str(lab["ann"].pk), str(lab["bob"].pk)],
    )
    response = lead.post("/quality/calibration/new/", data)
    assert response.status_code == 302
    session = CalibrationSession.objects.for_tenant(tenant).get()

    for person, decisions in (("ann", ["approve", "approve"]), ("bob", ["approve", "reject"])):
        client = signed_in(lab[person])
        assert "Week 48" in client.get("/quality/calibration/mine/").content.decode()
        for position, decision in enumerate(decisions, start=1):
            page = client.get(f"/quality/calibration/{session.pk}/score/?item={position}").content.decode()
            assert "Blind" in page
            form = form_data(page, "calibration-form")
            form.update({"decision": decision, "score-correct": "yes", "score-helpful": "4"})
            assert client.post(f"/quality/calibration/{session.pk}/score/", form).status_code == 302
    # Blind until closed: bob's page shows his answer; the results page sends him back.
    assert signed_in(lab["bob"]).get(f"/quality/calibration/{session.pk}/results/").status_code == 302
    assert signed_in(lab["olga"]).get(f"/quality/calibration/{session.pk}/score/").status_code == 404

    overview = lead.get(f"/quality/calibration/{session.pk}/").content.decode()
    assert "ann: 2 answered" in overview and "bob: 2 answered" in overview
    assert lead.post(f"/quality/calibration/{session.pk}/").status_code == 302

    results = signed_in(lab["ann"]).get(f"/quality/calibration/{session.pk}/results/").content.decode()
    first = results.index("Item 2:")
    assert first < results.index("Item 1:")  # the disagreement first
    assert "differ on decision" in results and 'id="session-agreement"' in results


def test_the_agreement_page_flags_low_criteria_and_judges(tenant, lab, rubric):
    opposite = [
        [("approve", {"correct": bool(i % 2), "helpful": 3}), ("approve", {"correct": not i % 2, "helpful": 3})]
        for i in range(12)
    ]
    overlap_reviews(tenant, rubric, opposite, start=100)
    judge = judge_create(tenant=tenant, data={"name": "lenient", "kind": "banned", "params": {"phrases": ["z"]}})
    judge_flag_raise(
        tenant=tenant, judge=judge, kappa=0.1, agreement_rate=0.5, compared=30, threshold=0.4, sample_rate=0.5
    )
    lead = signed_in(lab["lead"])

    page = lead.get("/quality/agreement/").content.decode()

    assert 'class="low"' in page and "Correct" in page and "lenient" in page
    assert lead.post(f"/quality/judges/{judge.pk}/clear/", {"note": "checked"}).status_code == 302
    assert 'id="judge-flags"' not in lead.get("/quality/agreement/").content.decode()


@pytest.mark.parametrize(
    "path",
    ["/quality/calibration/", "/quality/calibration/new/", "/quality/agreement/", "/quality/calibration/{id}/"],
)
def test_reviewers_and_auditors_get_403_and_another_tenant_404(tenant, other_tenant, lab, path):
    session = calibration_session_create(
        tenant=tenant,
        user=lab["lead"],
        name="secret-session-of-a",
        rubric_name="quality",
        output_ids=lab["ids"],
        participant_ids=[lab["ann"].pk, lab["bob"].pk],
    )
    url = path.replace("{id}", str(session.pk))
    assert signed_in(lab["ann"]).get(url).status_code == 403
    assert signed_in(lab["alex"]).get(url).status_code == 403
    outsider = member(other_tenant, "quality_lead", "other-lead")
    response = signed_in(outsider).get(url)
    assert response.status_code in (200, 404)
    assert "secret-session-of-a" not in response.content.decode()
    if "{id}" in path:
        assert response.status_code == 404
    # Invited pages: another tenant's person gets 404 on A's session.
    for invited in (f"/quality/calibration/{session.pk}/score/", f"/quality/calibration/{session.pk}/results/"):
        assert signed_in(outsider).get(invited).status_code == 404


def test_the_consoles_judge_page_shows_the_flag(tenant, lab):
    judge = judge_create(tenant=tenant, data={"name": "lenient", "kind": "banned", "params": {"phrases": ["z"]}})
    admin = signed_in(member(tenant, "admin", "ada"))
    assert 'id="judge-flag"' not in admin.get(f"/console/judges/{judge.pk}/").content.decode()
    judge_flag_raise(
        tenant=tenant, judge=judge, kappa=0.1, agreement_rate=0.5, compared=30, threshold=0.4, sample_rate=0.5
    )
    page = admin.get(f"/console/judges/{judge.pk}/").content.decode()
    assert 'id="judge-flag"' in page and "50 % at least" in page
