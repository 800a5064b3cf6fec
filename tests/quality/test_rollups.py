"""The metrics rollups against a direct computation over the same rows: first run, re-runs,
late reviews landing in an old bucket, two tenants."""

from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from django.utils import timezone

from quality import histograms
from quality.models import (
    Grain,
    JudgeRollup,
    OutputDaySummary,
    OutputRollup,
    ReviewDaySummary,
    ReviewRollup,
    RollupState,
)
from quality.rollups import LAG, day_of, hour_of, metrics_rollup, metrics_rollup_all
from reviews.models import Feedback, Output, Review, ReviewTask
from tests.conftest import make_client
from tests.reviews import conftest as review_fixtures
from tests.reviews.conftest import claim, review, reviewer, submit

pytestmark = pytest.mark.django_db
workflow = review_fixtures.workflow  # the review tests' fixture: every tier samples everything

GOOD = {"correct": True, "helpful": 4}


def _shift(tenant, external_ids, when):
    """Move outputs (and their tasks) back in time, as if received then."""
    Output.unscoped.filter(tenant=tenant, external_id__in=external_ids).update(received_at=when)


def _work(workflow, tenant, reviewers, decisions, *, time_spent=(12, 40, 95, 300, 7)):
    """Each reviewer claims and decides in turn; returns the reviews made."""
    made = []
    for index, decision in enumerate(decisions):
        client = reviewers[index % len(reviewers)]
        task = claim(client).json()
        body = {"decision": decision, "scores": GOOD, "time_spent_seconds": time_spent[index % len(time_spent)]}
        if decision == "correct":
            body["corrected_output"] = "Better."
        if decision == "escalate":
            body["comment"] = "needs a specialist"
        answer = review(client, task["id"], **body)
        if decision == "escalate" and answer.status_code != 201:  # not allowed on this task's tier
            answer = review(client, task["id"], **{**body, "decision": "approve"})
        assert answer.status_code == 201, (decision, answer.json())
        made.append(task["id"])
    return made


def _expected_outputs(tenant):
    """The output rollup's hour rows computed directly from the outputs, as (key) -> counts."""
    expected = defaultdict(Counter)
    for output in Output.objects.for_tenant(tenant):
        metadata = output.metadata or {}
        key = (
            hour_of(output.received_at),
            output.application,
            output.risk_tier,
            output.model,
            str(metadata.get("prompt_version", "")),
            str(metadata.get("category", "")),
        )
        row = expected[key]
        row["outputs"] += 1
        row["sampled"] += output.review_required
        row["auto_approved"] += output.status == "auto_approved"
        by_person = output.decided_by_id is not None and output.decision != ""
        row["decided"] += by_person
        for decision in ("approved", "rejected", "corrected"):
            row[decision] += by_person and output.decision == decision
        downs = Feedback.objects.for_tenant(tenant).filter(output=output, rating="down").exists()
        row["thumbs_down"] += downs
        caught = (
            by_person
            and output.decision in ("rejected", "corrected")
            and Review.objects.for_tenant(tenant)
            .filter(output=output, purpose="user_feedback", decision__in=("reject", "correct"))
            .exists()
        )
        row["caught_by_feedback"] += caught
        for task in ReviewTask.objects.for_tenant(tenant).filter(output=output):
            row["tasks"] += task.status == "done" or task.sla_breached_at is not None
            row["tasks_late"] += task.sla_breached_at is not None
    return {key: +counts for key, counts in expected.items()}


def _rolled_outputs(tenant, grain=Grain.HOUR):
    rolled = defaultdict(Counter)
    for row in OutputRollup.objects.for_tenant(tenant).filter(grain=grain):
        key = (row.bucket, row.application, row.tier, row.model, row.prompt_version, row.category)
        for name in ("outputs", "sampled", "auto_approved", "decided", "approved", "rejected", "corrected"):
            rolled[key][name] += getattr(row, name)
        for name in ("thumbs_down", "caught_by_feedback", "tasks", "tasks_late"):
            rolled[key][name] += getattr(row, name)
    return {key: +counts for key, counts in rolled.items()}


def _expected_reviews(tenant):
    expected = defaultdict(Counter)
    times = defaultdict(list)
    for item in Review.objects.for_tenant(tenant).select_related("task", "output"):
        key = (hour_of(item.created_at), item.reviewer_id, item.task.queue_id, item.output.metadata.get("category", ""))
        row = expected[key]
        row["reviews"] += 1
        row[
            {"approve": "approves", "reject": "rejects", "correct": "corrects", "escalate": "escalates"}[item.decision]
        ] += 1
        row["late"] += bool(item.task.sla_breached_at and item.task.sla_breached_at <= item.created_at)
        if item.time_spent_seconds is not None:
            row["timed"] += 1
            row["time_total"] += item.time_spent_seconds
            times[key].append(item.time_spent_seconds)
    return {key: +counts for key, counts in expected.items()}, times


def _rolled_reviews(tenant, grain=Grain.HOUR):
    rolled, hists = {}, {}
    for row in ReviewRollup.objects.for_tenant(tenant).filter(grain=grain):
        key = (row.bucket, row.reviewer_id, row.queue_id, row.category)
        rolled[key] = +Counter(
            {name: getattr(row, name) for name in ("reviews", "approves", "rejects", "corrects", "escalates", "late")}
            | {"timed": row.timed, "time_total": row.time_total}
        )
        hists[key] = row.time_histogram
    return rolled, hists


def _snapshot(tenant):
    fields = lambda model: [f.attname for f in model._meta.concrete_fields if f.attname != "id"]  # noqa: E731
    return [
        sorted(map(repr, model.objects.for_tenant(tenant).values_list(*fields(model))))
        for model in (OutputRollup, JudgeRollup, ReviewRollup, ReviewDaySummary, OutputDaySummary)
    ]


@pytest.fixture
def seeded(tenant, workflow):
    """Outputs over three applications and two models, reviewed by two people; one thumbs-down."""
    for number in range(1, 9):
        submit(
            workflow,
            number,
            ("medium-app", "high-app", "low-app")[number % 3],
            model=("gpt-4o", "claude")[number % 2],
            metadata={"category": ("billing", "refunds")[number % 2], "prompt_version": f"v{number % 2 + 1}"},
        )
    people = [reviewer(tenant, 2, "rita"), reviewer(tenant, 2, "sam")]
    _work(workflow, tenant, people, ["approve", "correct", "reject", "approve", "escalate"])
    workflow["service"].post(
        f"/api/v1/outputs/{Output.objects.for_tenant(tenant).filter(decision='approved').first().pk}/feedback",
        {"rating": "down"},
        format="json",
    )
    return {"people": people}


def test_a_first_run_rolls_up_what_a_direct_count_gives(tenant, seeded):
    run = metrics_rollup(tenant=tenant)

    assert run.output_hours >= 1 and run.review_hours >= 1
    assert _rolled_outputs(tenant) == _expected_outputs(tenant)
    expected_reviews, times = _expected_reviews(tenant)
    rolled_reviews, hists = _rolled_reviews(tenant)
    assert rolled_reviews == expected_reviews
    for key, values in times.items():
        assert hists[key] == histograms.histogram(values)
    # Day rows are the sums of the hour rows.
    by_day = defaultdict(Counter)
    for (hour, *rest), counts in _rolled_outputs(tenant).items():
        by_day[(day_of(hour), *rest)].update(counts)
    assert _rolled_outputs(tenant, Grain.DAY) == {key: +value for key, value in by_day.items()}
    assert sum(row.reviews for row in ReviewRollup.objects.for_tenant(tenant).filter(grain=Grain.DAY)) == 5


def test_each_days_summaries_add_up_its_fine_review_rows_per_scope(tenant, seeded):
    metrics_rollup(tenant=tenant)
    fine = list(ReviewRollup.objects.for_tenant(tenant).filter(grain=Grain.DAY))
    summaries = list(ReviewDaySummary.objects.for_tenant(tenant))
    assert {row.scope for row in summaries} == {"all", "reviewer", "queue", "category"}
    sums = ("reviews", "approves", "rejects", "corrects", "escalates", "late", "timed", "time_total")
    for scope, key in (
        ("all", lambda row: ()),
        ("reviewer", lambda row: (row.reviewer_id,)),
        ("queue", lambda row: (row.queue_id,)),
        ("category", lambda row: (row.category,)),
    ):
        expected, expected_bins = defaultdict(Counter), defaultdict(Counter)
        for row in fine:
            expected[(row.bucket, *key(row))].update({name: getattr(row, name) for name in sums})
            expected_bins[(row.bucket, *key(row))].update({int(k): v for k, v in row.time_histogram.items()})
        got = {(row.bucket, *key(row)): row for row in summaries if row.scope == scope}
        assert set(got) == set(expected), scope
        for bucket_key, row in got.items():
            assert {name: getattr(row, name) for name in sums} == {n: expected[bucket_key][n] for n in sums}
            assert len(row.time_histogram) == histograms.BINS  # dense: every bin's count
            assert {k: v for k, v in enumerate(row.time_histogram) if v} == +expected_bins[bucket_key]
        if scope == "all":
            assert all(row.reviewer_id is None and row.queue_id is None and row.category == "" for row in got.values())
    assert sum(row.reviews for row in summaries if row.scope == "all") == 5


def test_each_days_output_summaries_add_up_its_output_rows_per_dimension(tenant, seeded):
    metrics_rollup(tenant=tenant)
    fine = list(OutputRollup.objects.for_tenant(tenant).filter(grain=Grain.DAY))
    summaries = list(OutputDaySummary.objects.for_tenant(tenant))
    assert {row.scope for row in summaries} == {"all", "tier", "application", "model", "prompt_version", "category"}
    sums = ("outputs", "sampled", "decided", "rejected", "corrected", "thumbs_down", "tasks", "tasks_late")
    for scope in ("all", "tier", "application", "model", "prompt_version", "category"):
        expected = defaultdict(Counter)
        for row in fine:
            key = (row.bucket, "" if scope == "all" else getattr(row, scope))
            expected[key].update({name: getattr(row, name) for name in sums})
            expected[key].update(
                {"held_rejected": row.rejected if row.held else 0, "held_corrected": row.corrected if row.held else 0}
            )
        got = {(row.bucket, row.key): row for row in summaries if row.scope == scope}
        assert set(got) == set(expected), scope
        for key, row in got.items():
            names = (*sums, "held_rejected", "held_corrected")
            assert {name: getattr(row, name) for name in names} == {name: expected[key][name] for name in names}
    assert {row.key for row in summaries if row.scope == "application"} == {"medium-app", "high-app", "low-app"}


def test_running_again_and_again_gives_the_same_rows(tenant, seeded):
    metrics_rollup(tenant=tenant)
    first = _snapshot(tenant)

    again = metrics_rollup(tenant=tenant)
    assert _snapshot(tenant) == first
    assert again.output_hours >= 1  # within the lag everything recent is rebuilt, to the same rows

    RollupState.objects.for_tenant(tenant).update(watermark=None)  # a lost state: the whole history again
    metrics_rollup(tenant=tenant)
    assert _snapshot(tenant) == first


def test_a_late_review_lands_in_its_outputs_old_bucket_and_only_that_hour_is_rebuilt(tenant, workflow):
    for number in (1, 2, 3):
        submit(workflow, number, "medium-app")
    old = timezone.now() - timedelta(days=3)
    _shift(tenant, ["ext-1", "ext-2", "ext-3"], old)
    rita = reviewer(tenant, 3, "rita")
    metrics_rollup(tenant=tenant, now=timezone.now() - LAG * 3)  # the watermark moves past the receipt
    assert _rolled_outputs(tenant) == _expected_outputs(tenant)
    bucket = hour_of(old)
    before = OutputRollup.objects.for_tenant(tenant).get(grain=Grain.DAY, bucket=day_of(old))
    assert (before.outputs, before.decided) == (3, 0)

    _work(workflow, tenant, [rita], ["correct"])  # today, on an output of three days ago
    run = metrics_rollup(tenant=tenant)

    assert run.output_hours == 1  # the old hour only
    assert _rolled_outputs(tenant) == _expected_outputs(tenant)
    hour_row = OutputRollup.objects.for_tenant(tenant).get(grain=Grain.HOUR, bucket=bucket)
    day_row = OutputRollup.objects.for_tenant(tenant).get(grain=Grain.DAY, bucket=day_of(old))
    assert (hour_row.decided, hour_row.corrected) == (1, 1)
    assert (day_row.outputs, day_row.decided, day_row.corrected) == (3, 1, 1)
    # The review itself counts when it was made: today.
    assert ReviewRollup.objects.for_tenant(tenant).get(grain=Grain.DAY).bucket == day_of(timezone.now())


def test_two_tenants_roll_up_apart(tenant, other_tenant, seeded):
    theirs = make_client(other_tenant, "service")
    for number in range(1, 4):
        theirs.post("/api/v1/outputs", {**_payload(number), "application": "theirs"}, format="json")

    metrics_rollup_all()

    assert _rolled_outputs(tenant) == _expected_outputs(tenant)
    assert _rolled_outputs(other_tenant) == _expected_outputs(other_tenant)
    assert not OutputRollup.objects.for_tenant(tenant).filter(application="theirs").exists()
    assert set(OutputRollup.objects.for_tenant(other_tenant).values_list("application", flat=True)) == {"theirs"}
    assert not ReviewRollup.objects.for_tenant(other_tenant).exists()


def test_judges_rollup_against_people(tenant, workflow, django_capture_on_commit_callbacks):
    from policies.services import judge_create

    judge_create(tenant=tenant, data={"name": "no-refunds", "kind": "banned", "params": {"phrases": ["refund"]}})
    with django_capture_on_commit_callbacks(execute=True):  # the judges run when ingest commits
        submit(workflow, 1, "medium-app", output="A refund is due.")
        submit(workflow, 2, "medium-app", output="All good.")
    rita = reviewer(tenant, 3, "rita")
    # Whatever order the tasks come in: reject the refund one, approve the other.
    for _ in range(2):
        task = claim(rita).json()
        decision = "reject" if "refund" in task["output"]["output"] else "approve"
        assert review(rita, task["id"], decision=decision, scores=GOOD).status_code == 201

    metrics_rollup(tenant=tenant)

    row = JudgeRollup.objects.for_tenant(tenant).get(grain=Grain.DAY)
    assert (row.judged, row.failed, row.decided, row.errors) == (2, 1, 2, 1)
    assert (row.failed_decided, row.failed_errors, row.passed_decided, row.passed_errors) == (1, 1, 1, 0)


def _payload(number):
    from tests.factories import output_payload

    return output_payload(number)


def test_histogram_quantiles_follow_numpy_within_half_a_bin():
    rng = np.random.default_rng(7)
    values = np.concatenate([rng.integers(0, 16, 300), np.round(rng.lognormal(4, 1.2, 3000)).clip(0, 86_400)])
    merged = histograms.merge([histograms.histogram(values[:1000]), histograms.histogram(values[1000:])])
    for q in (0.1, 0.5, 0.9, 0.99):
        exact = float(np.quantile(values, q))
        got = histograms.quantile(merged, q)
        assert abs(got - exact) <= max(1.0, 0.05 * exact), (q, got, exact)
    assert histograms.quantile({}, 0.5) is None
    assert histograms.quantile(histograms.merge([histograms.histogram([7, 7, 7])]), 0.5) == 7
    dense = np.array(histograms.dense(merged))
    for q in (0.0, 0.1, 0.5, 0.9, 0.99, 1.0):
        assert histograms.quantile_of(dense, q) == pytest.approx(histograms.quantile(merged, q), rel=1e-12)
    assert histograms.quantile_of(np.zeros(histograms.BINS, dtype=int), 0.5) is None
    assert histograms.bin_of(86_400) == histograms.BINS - 1 or histograms.EDGES[histograms.bin_of(86_400) + 1] > 86_400
    assert datetime(2026, 1, 1, tzinfo=UTC) == day_of(datetime(2026, 1, 1, 23, 59, tzinfo=UTC))
