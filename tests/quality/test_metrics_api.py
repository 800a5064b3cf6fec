"""GET /api/v1/metrics: figures from the rollups, the period and grouping checked, one error shape,
nothing of another tenant."""

from datetime import timedelta

import pytest
from django.utils import timezone

from quality.rollups import day_of, metrics_rollup
from tests.conftest import make_client
from tests.reviews import conftest as review_fixtures
from tests.reviews.conftest import claim, review, reviewer, submit

pytestmark = pytest.mark.django_db
workflow = review_fixtures.workflow
GOOD = {"correct": True, "helpful": 4}


def _period(days_back=7):
    today = day_of(timezone.now())
    return {
        "from": (today - timedelta(days=days_back)).date().isoformat(),
        "to": (today + timedelta(days=1)).date().isoformat(),
    }


@pytest.fixture
def rolled(tenant, workflow):
    for number in range(1, 5):
        submit(workflow, number, ("medium-app", "high-app")[number % 2], model=("m-a", "m-b")[number % 2])
    rita = reviewer(tenant, 2, "rita")
    for decision, seconds in (("correct", 30), ("reject", 60), ("approve", 90)):
        task = claim(rita).json()
        body = {"decision": decision, "scores": GOOD, "time_spent_seconds": seconds}
        if decision == "correct":
            body["corrected_output"] = "Better."
        assert review(rita, task["id"], **body).status_code == 201
    metrics_rollup(tenant=tenant)
    return make_client(tenant, "quality_lead")


def test_totals_and_groups_come_from_the_rollups(rolled):
    body = rolled.get("/api/v1/metrics", {**_period(), "group_by": "tier"}).json()

    totals = body["totals"]
    assert totals["outputs"]["outputs"] == 4
    assert totals["outputs"]["decided"] == 3
    assert totals["reviews"]["reviews"] == 3
    assert totals["reviews"]["corrects"] == 1 and totals["reviews"]["rejects"] == 1
    assert totals["reviews"]["time_median_seconds"] == pytest.approx(60, rel=0.05)
    assert totals["reviews"]["modification_rate"] == pytest.approx(1 / 3, abs=1e-6)
    assert {group["key"]["tier"] for group in body["groups"]} == {"medium", "high"}
    assert all(group["reviews"] is None for group in body["groups"])
    assert sum(group["outputs"]["outputs"] for group in body["groups"]) == 4
    assert body["rollup_watermark"] is not None

    by_reviewer = rolled.get("/api/v1/metrics", {**_period(), "group_by": "reviewer,day"}).json()
    assert [group["key"] for group in by_reviewer["groups"]] == [
        {"reviewer": "rita", "day": day_of(timezone.now()).date().isoformat()}
    ]
    assert by_reviewer["groups"][0]["outputs"] is None
    assert by_reviewer["groups"][0]["reviews"]["throughput_per_day"] == 3


def test_a_period_with_no_rollups_is_zeros_and_nulls(rolled):
    body = rolled.get("/api/v1/metrics", {"from": "2020-01-01", "to": "2020-01-02T05:00:00Z"}).json()

    assert body["totals"]["outputs"]["outputs"] == 0
    assert body["totals"]["outputs"]["error_rate"] is None
    assert body["totals"]["reviews"]["time_median_seconds"] is None
    assert body["groups"] == []


@pytest.mark.parametrize(
    ("query", "status", "field"),
    [
        ({}, 400, "from"),
        ({"from": "2026-01-01"}, 400, "to"),
        ({"from": "yesterday", "to": "2026-01-02"}, 400, "from"),
        ({"from": "2026-01-01T10:30:00Z", "to": "2026-01-02"}, 422, "from"),
        ({"from": "2026-01-02", "to": "2026-01-01"}, 422, "to"),
        ({"from": "2026-01-01", "to": "2026-01-01"}, 422, "to"),
        ({"from": "2024-01-01", "to": "2026-01-01"}, 422, "to"),
        ({"from": "2026-02-30", "to": "2026-03-01"}, 422, "from"),
        ({"from": "2026-01-01", "to": "2026-01-02", "group_by": "colour"}, 400, "group_by"),
        ({"from": "2026-01-01", "to": "2026-01-02", "group_by": ""}, 400, "group_by"),
        ({"from": "2026-01-01", "to": "2026-01-02", "group_by": "tier,model,day"}, 422, "group_by"),
        ({"from": "2026-01-01", "to": "2026-01-02", "group_by": "day,day"}, 422, "group_by"),
    ],
)
def test_bad_periods_and_groupings_are_named_in_the_one_error_shape(tenant, query, status, field):
    response = make_client(tenant, "quality_lead").get("/api/v1/metrics", query)

    assert response.status_code == status, response.json()
    body = response.json()
    assert body["code"] == "validation_error"
    assert field in body["fields"]
    assert body["message"].startswith(f"{field}:")


def test_another_tenant_sees_none_of_it(rolled, other_tenant):
    theirs = make_client(other_tenant, "quality_lead")

    body = theirs.get("/api/v1/metrics", {**_period(), "group_by": "reviewer"}).json()

    assert body["totals"]["outputs"]["outputs"] == 0
    assert body["totals"]["reviews"]["reviews"] == 0
    assert body["groups"] == []
    assert body["rollup_watermark"] is None
    assert "rita" not in str(body)


def test_a_period_on_whole_hours_reads_day_rows_inside_and_hour_rows_at_its_edges(tenant, workflow):
    from datetime import UTC, datetime

    from reviews.models import Output

    for number in range(1, 5):
        submit(workflow, number, "medium-app")
    moments = {
        "ext-1": datetime(2026, 3, 1, 10, 30, tzinfo=UTC),
        "ext-2": datetime(2026, 3, 2, 12, 0, tzinfo=UTC),
        "ext-3": datetime(2026, 3, 3, 3, 15, tzinfo=UTC),
        "ext-4": datetime(2026, 3, 3, 9, 0, tzinfo=UTC),
    }
    for external_id, moment in moments.items():
        Output.unscoped.filter(tenant=tenant, external_id=external_id).update(received_at=moment)
    metrics_rollup(tenant=tenant)
    lead = make_client(tenant, "quality_lead")

    def outputs(start, end):
        return lead.get("/api/v1/metrics", {"from": start, "to": end}).json()["totals"]["outputs"]["outputs"]

    assert outputs("2026-03-01", "2026-03-04") == 4
    assert outputs("2026-03-01T10:00:00Z", "2026-03-03T04:00:00Z") == 3
    assert outputs("2026-03-01T11:00:00Z", "2026-03-03T03:00:00Z") == 1
    assert outputs("2026-03-02T12:00:00Z", "2026-03-02T13:00:00Z") == 1
    assert outputs("2026-03-01T12:00:00+02:00", "2026-03-03T10:00:00Z") == 4  # 10:00 UTC
    by_day = lead.get(
        "/api/v1/metrics", {"from": "2026-03-01T10:00:00Z", "to": "2026-03-03T04:00:00Z", "group_by": "day"}
    )
    assert [(g["key"]["day"], g["outputs"]["outputs"]) for g in by_day.json()["groups"]] == [
        ("2026-03-01", 1),
        ("2026-03-02", 1),
        ("2026-03-03", 1),
    ]


def _reviews_on_three_days(tenant, workflow):
    from datetime import UTC, datetime

    from reviews.models import Review

    for number in range(1, 6):
        submit(workflow, number, "medium-app")
    rita, sam = reviewer(tenant, 2, "rita"), reviewer(tenant, 2, "sam")
    made = []
    for person, decision, seconds in (
        (rita, "approve", 10),
        (sam, "reject", 40),
        (rita, "approve", 20),
        (sam, "approve", 70),
        (rita, "reject", 200),
    ):
        task = claim(person).json()
        assert review(person, task["id"], decision=decision, scores=GOOD, time_spent_seconds=seconds).status_code == 201
        made.append(task["id"])
    moments = [
        datetime(2026, 3, 1, 10, 30, tzinfo=UTC),
        datetime(2026, 3, 2, 12, 0, tzinfo=UTC),
        datetime(2026, 3, 2, 23, 59, tzinfo=UTC),
        datetime(2026, 3, 3, 3, 15, tzinfo=UTC),
        datetime(2026, 3, 3, 9, 0, tzinfo=UTC),
    ]
    for task_id, moment in zip(made, moments, strict=True):
        Review.unscoped.filter(tenant=tenant, task_id=task_id).update(created_at=moment)
    metrics_rollup(tenant=tenant)
    return rita, sam


def test_a_reviewers_halves_in_one_pass_equal_a_report_per_period(tenant, workflow):
    from datetime import UTC, datetime

    from quality.metrics import metrics_report, reviewer_halves

    _reviews_on_three_days(tenant, workflow)
    start, middle, end = (datetime(2026, 3, day, tzinfo=UTC) for day in (1, 3, 4))
    read = reviewer_halves(tenant=tenant, start=start, middle=middle, end=end)
    assert read is not None
    for figures, (a, b) in zip(read, ((start, end), (start, middle), (middle, end)), strict=True):
        report = metrics_report(tenant=tenant, start=a, end=b, group_by=("reviewer",), totals=False)
        expected = {g.key["reviewer"]: g.reviews for g in report.groups}
        assert set(figures) == set(expected)
        for name, want in expected.items():
            got = figures[name]
            assert (got.reviews, got.rejects, got.timed, got.time_total) == (
                want.reviews,
                want.rejects,
                want.timed,
                want.time_total,
            )
            assert got.time_median == want.time_median and got.time_p90 == want.time_p90
            assert got.throughput_per_day == pytest.approx(want.throughput_per_day)
    assert read[0]["rita"].reviews == 3 and read[1]["sam"].reviews == 1 and read[2]["sam"].reviews == 1
    assert reviewer_halves(tenant=tenant, start=start.replace(hour=5), middle=middle, end=end) is None


def test_review_figures_read_from_day_summaries_and_edge_hours_match_the_reviews(tenant, workflow):
    """Whole days come from the day summaries (the tenant, a reviewer, a queue), two dimensions at
    once from the fine rows, the ragged edges from the hour rows: every way gives the reviews' own figures."""
    from datetime import UTC, datetime

    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from quality.models import ReviewDaySummary
    from reviews.models import Review

    rita, sam = _reviews_on_three_days(tenant, workflow)
    lead = make_client(tenant, "quality_lead")

    def expected(start, end, who=None):
        rows = Review.objects.for_tenant(tenant).filter(created_at__gte=start, created_at__lt=end)
        if who is not None:
            rows = rows.filter(reviewer=who)
        return rows.count(), rows.filter(decision="reject").count()

    periods = [
        (datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 3, 4, tzinfo=UTC)),  # whole days only
        (datetime(2026, 3, 1, 11, tzinfo=UTC), datetime(2026, 3, 3, 4, tzinfo=UTC)),  # a day and two edges
        (datetime(2026, 3, 2, tzinfo=UTC), datetime(2026, 3, 3, 9, tzinfo=UTC)),  # a day and one edge
    ]
    for start, end in periods:
        query = {"from": start.isoformat(), "to": end.isoformat()}
        with CaptureQueriesContext(connection) as captured:
            totals = lead.get("/api/v1/metrics", query).json()["totals"]["reviews"]
        assert (totals["reviews"], totals["rejects"]) == expected(start, end), (start, end)
        assert any(ReviewDaySummary._meta.db_table in q["sql"] for q in captured.captured_queries)
        by_reviewer = lead.get("/api/v1/metrics", {**query, "group_by": "reviewer"}).json()["groups"]
        got = {g["key"]["reviewer"]: (g["reviews"]["reviews"], g["reviews"]["rejects"]) for g in by_reviewer}
        people = (rita.person, sam.person)
        want = {p.username: expected(start, end, p) for p in people if expected(start, end, p)[0]}
        assert got == want, (start, end)
        fine = lead.get("/api/v1/metrics", {**query, "group_by": "reviewer,queue"}).json()["groups"]
        assert {g["key"]["reviewer"]: (g["reviews"]["reviews"], g["reviews"]["rejects"]) for g in fine} == want
    whole = lead.get("/api/v1/metrics", {"from": "2026-03-01", "to": "2026-03-04"}).json()["totals"]["reviews"]
    assert whole["time_median_seconds"] == pytest.approx(40, rel=0.05)  # 10, 20, 40, 70, 200
    only_rita = lead.get("/api/v1/metrics", {"from": "2026-03-01", "to": "2026-03-04", "group_by": "reviewer"}).json()[
        "groups"
    ]
    assert [g["reviews"]["time_median_seconds"] for g in only_rita if g["key"]["reviewer"] == "rita"] == [
        pytest.approx(20, rel=0.05)
    ]
