"""Judge against people: counts, agreement rate and Cohen's kappa, over the API and in the admin."""

import pytest
from django.utils import timezone

from policies.services import judge_create, judge_update
from reviews.models import Judgement, Output
from reviews.services import output_ingest_batch
from tests.conftest import make_client
from tests.factories import UserFactory, output_submission
from tests.reviews.conftest import GOOD_SCORES, claim, review, reviewer, submit


@pytest.fixture
def judge(tenant):
    return judge_create(tenant=tenant, data={"name": "pii", "kind": "pii", "on_fail": "record"})


def seed(tenant, judge, table: dict[tuple[str, str], int], version: int = 1, start: int = 0) -> int:
    """Outputs judged ``result`` and decided ``decision`` by a person, ``count`` of each pair."""
    person = UserFactory()
    number = start
    for (result, decision), count in table.items():
        submissions = [output_submission(number + index) for index in range(count)]
        number += count
        ids = [item.receipt["id"] for item in output_ingest_batch(tenant=tenant, submissions=submissions)]
        for output_id in ids:
            Judgement.objects.for_tenant(tenant).create(
                output_id=output_id, judge=judge, judge_version=version, result=result, score=None
            )
        if decision:
            Output.objects.for_tenant(tenant).filter(id__in=ids).update(
                decision=decision, status=decision, decided_by=person, decided_at=timezone.now()
            )
    return number


def test_counts_rate_and_kappa_match_the_textbook_example(tenant, judge):
    # Cohen's kappa worked example: 20 both yes, 5 / 10 split, 15 both no -> p_o 0.7, p_e 0.5, kappa 0.4.
    seed(
        tenant,
        judge,
        {
            ("pass", "approved"): 20,
            ("pass", "rejected"): 3,
            ("pass", "corrected"): 2,  # corrected counts as the people's fail
            ("fail", "approved"): 10,
            ("fail", "rejected"): 15,
            ("error", "approved"): 4,  # not compared
            ("pass", ""): 6,  # nobody decided yet: not compared
        },
    )
    body = make_client(tenant, "auditor").get(f"/api/v1/judges/{judge.pk}/agreement").json()

    assert body == {
        "judge": judge.pk,
        "version": None,
        "compared": 50,
        "both_pass": 20,
        "both_fail": 15,
        "judge_pass_human_fail": 5,
        "judge_fail_human_pass": 10,
        "judge_errors": 4,
        "agreement_rate": pytest.approx(0.7),
        "cohens_kappa": pytest.approx(0.4),
    }


def test_kappa_is_undefined_when_both_always_say_the_same_thing(tenant, judge):
    seed(tenant, judge, {("pass", "approved"): 3})
    body = make_client(tenant, "admin").get(f"/api/v1/judges/{judge.pk}/agreement").json()
    assert (body["compared"], body["agreement_rate"], body["cohens_kappa"]) == (3, 1.0, None)


def test_no_comparable_output_gives_empty_figures(tenant, judge):
    body = make_client(tenant, "admin").get(f"/api/v1/judges/{judge.pk}/agreement").json()
    assert (body["compared"], body["agreement_rate"], body["cohens_kappa"]) == (0, None, None)


def test_one_version_can_be_measured_alone(tenant, judge):
    judge_update(tenant=tenant, judge_id=judge.pk, data={"name": "pii", "kind": "pii", "on_fail": "record"})
    after = seed(tenant, judge, {("fail", "approved"): 4}, version=1)
    seed(tenant, judge, {("pass", "approved"): 6}, version=2, start=after)
    client = make_client(tenant, "admin")

    assert client.get(f"/api/v1/judges/{judge.pk}/agreement?version=2").json()["both_pass"] == 6
    assert client.get(f"/api/v1/judges/{judge.pk}/agreement?version=1").json()["judge_fail_human_pass"] == 4
    assert client.get(f"/api/v1/judges/{judge.pk}/agreement").json()["compared"] == 10
    bad = client.get(f"/api/v1/judges/{judge.pk}/agreement?version=two")
    assert bad.status_code == 400 and "version" in bad.json()["fields"]


def test_another_tenant_gets_404_and_its_verdicts_never_count(tenant, other_tenant, judge):
    seed(tenant, judge, {("pass", "approved"): 2})
    theirs = judge_create(tenant=other_tenant, data={"name": "pii", "kind": "pii"})
    assert make_client(other_tenant, "admin").get(f"/api/v1/judges/{judge.pk}/agreement").status_code == 404
    body = make_client(other_tenant, "admin").get(f"/api/v1/judges/{theirs.pk}/agreement").json()
    assert body["compared"] == 0


def test_a_real_review_is_compared_with_the_judges_verdict(tenant, workflow, django_capture_on_commit_callbacks):
    judge = judge_create(tenant=tenant, data={"name": "short", "kind": "length", "params": {"max_chars": 5}})
    with django_capture_on_commit_callbacks(execute=True):
        submit(workflow, 1, "medium-app")  # a long output: the judge fails it
    rita, sam = reviewer(tenant, 1, "rita"), reviewer(tenant, 2, "sam")
    with django_capture_on_commit_callbacks(execute=True):
        review(rita, claim(rita).json()["id"], decision="approve", scores=GOOD_SCORES)
        # People approving what a judge failed: a level up takes a second look, then it is decided.
        review(sam, claim(sam).json()["id"], decision="approve", scores=GOOD_SCORES)

    body = make_client(tenant, "admin").get(f"/api/v1/judges/{judge.pk}/agreement").json()
    assert (body["compared"], body["judge_fail_human_pass"]) == (1, 1)


def test_the_admin_shows_the_agreement(tenant, judge, admin_client):
    seed(tenant, judge, {("pass", "approved"): 3, ("fail", "approved"): 1})
    page = admin_client.get(f"/admin/policies/judge/{judge.pk}/change/")
    assert page.status_code == 200
    text = page.content.decode()
    assert "4 compared" in text and "agreement 75.0%" in text


def test_several_judges_agreement_in_one_query_is_each_judges_own(tenant, judge, django_assert_num_queries):
    from reviews.selectors import judge_agreement, judge_agreements

    other = judge_create(tenant=tenant, data={"name": "length", "kind": "length", "params": {"max_chars": 9}})
    idle = judge_create(tenant=tenant, data={"name": "idle", "kind": "pii", "on_fail": "record"})
    number = seed(tenant, judge, {("pass", "approved"): 3, ("fail", "approved"): 2, ("fail", "rejected"): 1})
    seed(tenant, other, {("pass", "rejected"): 2, ("error", "approved"): 1}, start=number)

    with django_assert_num_queries(1):
        many = judge_agreements(tenant=tenant, judge_ids=[judge.pk, other.pk, idle.pk])

    for one in (judge, other, idle):
        assert many[one.pk] == judge_agreement(tenant=tenant, judge_id=one.pk)
    assert many[idle.pk].compared == 0
