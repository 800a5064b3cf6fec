"""The quality pages over the test client: who may read them, what they show, another tenant's 404."""

import re

import pytest

from quality.rollups import metrics_rollup
from tests.pages import member, signed_in
from tests.reviews import conftest as review_fixtures
from tests.reviews.conftest import claim, review, reviewer, submit

pytestmark = pytest.mark.django_db
workflow = review_fixtures.workflow
PAGES = ("/quality/", "/quality/reviewers/")


@pytest.fixture
def seeded(tenant, workflow):
    for number in range(1, 4):
        submit(workflow, number, "medium-app", metadata={"category": "refunds", "prompt_version": "v7"})
    rita = reviewer(tenant, 2, "rita")
    for decision in ("correct", "approve"):
        task = claim(rita).json()
        body = {"decision": decision, "scores": {"correct": True, "helpful": 4}, "time_spent_seconds": 45}
        if decision == "correct":
            body["corrected_output"] = "Better."
        assert review(rita, task["id"], **body).status_code == 201
    metrics_rollup(tenant=tenant)
    return {"rita": rita.person}


def test_the_quality_lead_lands_on_the_metrics(tenant, seeded):
    lead = signed_in(member(tenant, "quality_lead", "quinn"))

    assert lead.get("/", follow=True).redirect_chain[-1][0] == "/quality/"
    page = lead.get("/quality/").content.decode()
    assert 'id="tile-error-rate">50.0 %' in page  # one correction of two decided
    median = re.search(r'id="tile-median">([0-9]+) s', page)
    assert median and abs(int(median.group(1)) - 45) <= 1  # within the histogram's half bin
    assert "refunds" in page and "v7" in page and "rita" in page
    assert "<script>" not in page and " style=" not in page  # the strict CSP: nothing inline


def test_reviewer_and_queue_pages(tenant, seeded):
    lead = signed_in(member(tenant, "quality_lead", "quinn"))
    page = lead.get("/quality/reviewers/").content.decode()
    assert "rita" in page and "no data yet" in page  # gold accuracy and agreement: not wired yet

    detail = lead.get(f"/quality/reviewers/{seeded['rita'].pk}/").content.decode()
    assert 'id="tile-reviews">2<' in detail
    from reviews.models import Queue

    queue = Queue.objects.for_tenant(tenant).get(name="default")
    assert lead.get(f"/quality/queues/{queue.pk}/").status_code == 200


def test_only_quality_leads_and_admins_and_never_another_tenant(tenant, other_tenant, seeded):
    from reviews.models import Queue

    queue = Queue.objects.for_tenant(tenant).get(name="default")
    details = (f"/quality/reviewers/{seeded['rita'].pk}/", f"/quality/queues/{queue.pk}/")
    for role in ("reviewer", "auditor", "viewer"):
        client = signed_in(member(tenant, role))
        for path in (*PAGES, *details):
            assert client.get(path).status_code == 403, (role, path)
    admin = signed_in(member(tenant, "admin"))
    for path in (*PAGES, *details):
        assert admin.get(path).status_code == 200, path
    outsider = signed_in(member(other_tenant, "quality_lead"))
    for path in details:
        assert outsider.get(path).status_code == 404, path
    for path in PAGES:
        page = outsider.get(path).content.decode()
        assert "rita" not in page and "refunds" not in page
    assert signed_in(member(tenant, "quality_lead")).get("/quality/reviewers/999999/").status_code == 404


def test_the_period_picker(tenant, seeded):
    lead = signed_in(member(tenant, "quality_lead"))

    empty = lead.get("/quality/", {"start": "2020-01-01", "end": "2020-01-31"}).content.decode()
    assert 'id="tile-error-rate">no data yet' in empty
    assert "2020-01-01 to 2020-01-31 (31 days, UTC)" in empty
    bad = lead.get("/quality/", {"start": "2020-02-01", "end": "2020-01-01"})
    assert bad.status_code == 200 and "Must not be before the start." in bad.content.decode()
    assert "(7 days, UTC)" in lead.get("/quality/", {"days": "7"}).content.decode()
