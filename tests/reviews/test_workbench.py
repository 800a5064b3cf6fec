"""The reviewer's workbench through Django's test client: queues, claims, the task page, decisions."""

import re
from pathlib import Path

from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from reviews.models import Output, Review, ReviewTask
from tenants.services import membership_create
from tests.factories import UserFactory
from tests.reviews.conftest import reviewer, submit


def browser(person) -> Client:
    client = Client()
    client.force_login(person)
    return client


def task_id_of(response) -> str:
    assert response.status_code == 302, response
    found = re.match(r"^/review/tasks/([0-9a-f-]+)/$", response["Location"])
    assert found, response["Location"]
    return found.group(1)


def test_the_workbench_lists_the_reviewers_queues_with_what_waits(tenant, workflow):
    submit(workflow, 1, "medium-app")
    submit(workflow, 2, "high-app")  # level 2: not for a level-1 reviewer
    rita = reviewer(tenant, 1, "rita").person

    page = browser(rita).get("/review/").content.decode()

    row = page.split('<th scope="row">default</th>')[1].split("</tr>")[0]
    assert '<td class="num">1</td>' in row  # only the task at her level


def test_start_reviewing_claims_through_the_same_service_and_opens_the_task(tenant, workflow):
    output = submit(workflow, 1, "medium-app")
    rita = reviewer(tenant, 1, "rita").person
    client = browser(rita)

    task_id = task_id_of(client.post("/review/claim"))

    task = ReviewTask.objects.for_tenant(tenant).get(pk=task_id)
    assert task.claimed_by == rita and task.status == "claimed" and str(task.output_id) == output["id"]
    page = client.get(f"/review/tasks/{task_id}/").content.decode()
    assert "retrieval" in page and "doc-1" in page  # the trace, readable
    assert "Answer 1." in page and 'name="score-correct"' in page and 'name="score-helpful"' in page


def test_an_empty_queue_says_so(tenant, workflow):
    rita = reviewer(tenant, 1, "rita").person
    response = browser(rita).post("/review/claim", follow=True)
    assert b"No task is waiting for you" in response.content


def test_a_decision_is_recorded_with_scores_and_time_and_the_next_task_opens(tenant, workflow):
    first = submit(workflow, 1, "medium-app")
    submit(workflow, 2, "medium-app")
    rita = reviewer(tenant, 1, "rita").person
    client = browser(rita)
    task_id = task_id_of(client.post("/review/claim"))

    response = client.post(
        f"/review/tasks/{task_id}/",
        {"decision": "approve", "score-correct": "yes", "score-helpful": "4", "time_spent_seconds": "37"},
    )

    next_id = task_id_of(response)
    assert next_id != task_id
    review = Review.objects.for_tenant(tenant).get(task_id=task_id)
    assert review.scores == {"correct": True, "helpful": 4} and review.time_spent_seconds == 37
    assert Output.objects.for_tenant(tenant).get(pk=first["id"]).decision == "approved"


def test_a_refused_decision_names_what_is_missing_and_keeps_the_task(tenant, workflow):
    submit(workflow, 1, "medium-app")
    rita = reviewer(tenant, 1, "rita").person
    client = browser(rita)
    task_id = task_id_of(client.post("/review/claim"))

    response = client.post(f"/review/tasks/{task_id}/", {"decision": "approve", "score-correct": "yes"})

    assert response.status_code == 422  # well formed, but the rubric wants more: as the API answers
    assert "Required by the rubric (Helpful)" in response.content.decode()
    assert not Review.objects.for_tenant(tenant).exists()
    assert ReviewTask.objects.for_tenant(tenant).get(pk=task_id).status == "claimed"


def test_a_correction_decides_with_the_corrected_text(tenant, workflow):
    output = submit(workflow, 1, "medium-app")
    rita = reviewer(tenant, 1, "rita").person
    client = browser(rita)
    task_id = task_id_of(client.post("/review/claim"))

    client.post(
        f"/review/tasks/{task_id}/",
        {"decision": "correct", "corrected_output": "A better answer.", "score-correct": "no", "score-helpful": "2"},
    )

    stored = Output.objects.for_tenant(tenant).get(pk=output["id"])
    assert (stored.decision, stored.final_output) == ("corrected", "A better answer.")


def test_release_and_lease_renewal(tenant, workflow):
    submit(workflow, 1, "medium-app")
    rita = reviewer(tenant, 1, "rita").person
    client = browser(rita)
    task_id = task_id_of(client.post("/review/claim"))
    before = ReviewTask.objects.for_tenant(tenant).get(pk=task_id).lease_expires_at

    renewed = client.post(f"/review/tasks/{task_id}/renew")
    assert renewed.status_code == 200 and b"lease" in renewed.content
    assert ReviewTask.objects.for_tenant(tenant).get(pk=task_id).lease_expires_at >= before

    assert client.post(f"/review/tasks/{task_id}/release").status_code == 302
    assert ReviewTask.objects.for_tenant(tenant).get(pk=task_id).status == "pending"
    assert client.get(f"/review/tasks/{task_id}/").status_code == 404  # no longer hers


def test_another_tenants_reviewer_and_another_reviewer_get_404_for_the_task(tenant, other_tenant, workflow):
    submit(workflow, 1, "medium-app")
    rita = reviewer(tenant, 1, "rita").person
    task_id = task_id_of(browser(rita).post("/review/claim"))
    colleague = reviewer(tenant, 1, "colleague").person
    outsider = UserFactory()
    membership_create(tenant=other_tenant, user=outsider, role="reviewer")

    for person in (colleague, outsider):
        client = browser(person)
        assert client.get(f"/review/tasks/{task_id}/").status_code == 404
        assert client.post(f"/review/tasks/{task_id}/", {"decision": "reject"}).status_code == 404
        assert client.post(f"/review/tasks/{task_id}/release").status_code == 404
    assert not Review.objects.for_tenant(tenant).exists()


def test_the_task_page_makes_a_fixed_number_of_queries_whatever_the_trace_length(
    tenant, workflow, django_assert_max_num_queries
):
    long_trace = [{"type": "tool", "name": f"step{i}", "arguments": {"i": i}, "result": "ok"} for i in range(300)]
    submit(workflow, 1, "medium-app")
    submit(workflow, 2, "medium-app", trace=long_trace)
    rita = reviewer(tenant, 1, "rita").person
    client = browser(rita)
    counts = []
    for _ in range(2):
        task_id = task_id_of(client.post("/review/claim"))
        assert client.get(f"/review/tasks/{task_id}/").status_code == 200  # caches warm, as in a running server
        with CaptureQueriesContext(connection) as captured:
            assert client.get(f"/review/tasks/{task_id}/").status_code == 200
        counts.append(len(captured.captured_queries))
        client.post(f"/review/tasks/{task_id}/release")
        ReviewTask.objects.for_tenant(tenant).filter(pk=task_id).update(priority=-1, due_at="2100-01-01T00:00:00Z")
    assert counts[0] == counts[1], counts
    assert counts[0] <= 8, counts


def test_my_reviews_lists_only_mine(tenant, workflow):
    for number in (1, 2, 3):  # rita's decision opens her next task at once: sam gets the third
        submit(workflow, number, "medium-app")
    rita, sam = reviewer(tenant, 1, "rita").person, reviewer(tenant, 1, "sam").person
    for person in (rita, sam):
        client = browser(person)
        task_id = task_id_of(client.post("/review/claim"))
        client.post(f"/review/tasks/{task_id}/", {"decision": "reject", "score-correct": "no", "score-helpful": "1"})

    page = browser(rita).get("/review/mine/").content.decode()
    assert page.count("<tr>") == 2  # the header row and her one review


def test_a_task_page_weighs_under_300_kb_with_its_assets(tenant, workflow):
    import re as regex

    from django.contrib.staticfiles import finders

    submit(workflow, 1, "medium-app")
    rita = reviewer(tenant, 1, "rita").person
    client = browser(rita)
    page = client.get(f"/review/tasks/{task_id_of(client.post('/review/claim'))}/")

    html = page.content.decode()
    assets = regex.findall(r'(?:src|href)="/static/([^"]+)"', html)
    assert any(asset.endswith(".js") for asset in assets) and any(asset.endswith(".css") for asset in assets)
    total = len(page.content) + sum(Path(finders.find(asset)).stat().st_size for asset in assets)
    assert total < 300 * 1024, f"{total / 1024:.0f} KB"
    assert not regex.search(r"https?://", "".join(regex.findall(r'(?:src|href)="([^"]+)"', html)))  # no CDN


def test_escalate_is_offered_only_where_the_tier_allows_it(tenant, workflow):
    submit(workflow, 1, "low-app")  # escalation: false
    submit(workflow, 2, "medium-app")  # escalation: true (the workflow fixture)
    rita = reviewer(tenant, 1, "rita").person
    client = browser(rita)
    offered = {}
    for _ in range(2):
        task_id = task_id_of(client.post("/review/claim"))
        task = ReviewTask.objects.for_tenant(tenant).select_related("output").get(pk=task_id)
        page = client.get(f"/review/tasks/{task_id}/").content.decode()
        offered[task.output.risk_tier] = (task_id, 'value="escalate"' in page)

    assert {tier: shown for tier, (_, shown) in offered.items()} == {"low": False, "medium": True}
    refused = client.post(f"/review/tasks/{offered['low'][0]}/", {"decision": "escalate", "comment": "Unsure."})
    assert refused.status_code == 400 and "Escalation is off for tier" in refused.content.decode()
    assert ReviewTask.objects.for_tenant(tenant).get(pk=offered["low"][0]).status == "claimed"


def test_answered_gold_is_in_my_reviews_like_any_review(tenant, workflow):
    """Gold mixed into work stays indistinguishable after the answer: the same row, the same cells."""
    from reviews.models import GoldTask
    from tests.reviews.test_certification_gating import _certify, _gate, gold_set

    rita = reviewer(tenant, 1, "rita").person
    _gate(tenant, gold_rate=1.0)
    _certify(tenant, rita)
    gold_set(tenant)
    submit(workflow, 1, "medium-app")
    client = browser(rita)
    answer = {"decision": "approve", "score-correct": "yes", "score-helpful": "4", "time_spent_seconds": "42"}
    real = task_id_of(client.post("/review/claim"))
    gold = task_id_of(client.post(f"/review/tasks/{real}/", answer))  # the next task: planted after it (rate 1)
    assert GoldTask.objects.for_tenant(tenant).filter(task_id=gold).exists()
    assert client.post(f"/review/tasks/{gold}/", {**answer, "time_spent_seconds": "17"}).status_code == 302

    page = client.get("/review/mine/").content.decode()

    rows = re.findall(r"<tr>\s*(.*?)\s*</tr>", page, flags=re.S)[1:]  # the header row aside
    assert len(rows) == 2
    newest, oldest = (
        [re.sub(r"<[^>]+>", "", cell).strip() for cell in re.findall(r"<td[^>]*>(.*?)</td>", row, flags=re.S)]
        for row in rows
    )
    # when, output, application, tier, my decision, scores, time spent, final decision
    assert newest[2:5] == oldest[2:5] == ["medium-app", "medium", "Approve"]
    assert newest[5] == oldest[5] and "helpful: 4" in newest[5]
    assert (newest[6:], oldest[6:]) == (["17 s", "approved"], ["42 s", "approved"])
    assert re.findall(r"<(\w+)", rows[0]) == re.findall(r"<(\w+)", rows[1])  # the same markup
    assert "gold" not in page.lower()
