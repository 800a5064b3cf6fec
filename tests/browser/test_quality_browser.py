"""The quality lead's dashboard and a reviewer's page in Chromium: charts drawn by uPlot under the
strict CSP, and each chart's table view holding the very numbers the chart was given."""

import json

import pytest

from quality.rollups import metrics_rollup
from tenants.services import membership_create
from tests.factories import UserFactory
from tests.reviews import conftest as review_fixtures
from tests.reviews.conftest import claim, review, reviewer, submit

pytestmark = pytest.mark.django_db(transaction=True)
workflow = review_fixtures.workflow
PASSWORD = "a-long-password-1"


@pytest.fixture
def seeded(tenant, workflow):
    for number in range(1, 6):
        submit(
            workflow,
            number,
            ("medium-app", "high-app")[number % 2],
            model=("gpt-4o", "claude")[number % 2],
            metadata={"category": "refunds", "prompt_version": f"v{number % 2}"},
        )
    rita = reviewer(tenant, 2, "rita")
    for decision, seconds in (("correct", 30), ("approve", 75), ("reject", 200)):
        task = claim(rita).json()
        body = {"decision": decision, "scores": {"correct": True, "helpful": 4}, "time_spent_seconds": seconds}
        if decision == "correct":
            body["corrected_output"] = "Better."
        assert review(rita, task["id"], **body).status_code == 201
    metrics_rollup(tenant=tenant)
    quinn = UserFactory(username="quinn")
    quinn.set_password(PASSWORD)
    quinn.save()
    membership_create(tenant=tenant, user=quinn, role="quality_lead")
    return {"rita": rita.person}


def sign_in(page, username):
    page.goto("/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_url("**/quality/")


def _chart_matches_its_table(page, chart_id):
    figure = page.locator(f"#chart-{chart_id}")
    figure.locator(".chart-plot[data-drawn='true'] canvas").first.wait_for()
    spec = json.loads(page.locator(f"#{chart_id}-data").text_content())
    figure.locator(".chart-table summary").click()  # the table view
    assert figure.locator(".chart-table table").is_visible()
    cells = figure.locator(".chart-table tbody tr")
    assert cells.count() == len(spec["labels"])
    for row_index, label in enumerate(spec["labels"]):
        row = cells.nth(row_index)
        assert row.locator("th").inner_text() == label
        shown = row.locator("td").evaluate_all("cells => cells.map(cell => cell.dataset.value)")
        given = [series["values"][row_index] for series in spec["series"]]
        assert [None if value == "" else float(value) for value in shown] == given
    return spec


def test_the_dashboard_draws_its_charts_with_table_views_under_the_csp(page_for, seeded, screenshot_path):
    page = page_for()
    sign_in(page, "quinn")

    assert page.locator(".chart-plot[data-chart]").count() == 6
    page.wait_for_selector(".chart-plot[data-drawn='true']")
    spec = _chart_matches_its_table(page, "error-by-tier")
    assert spec["labels"] == ["high", "medium"]
    per_day = _chart_matches_its_table(page, "reviews-per-day")
    assert sum(value or 0 for value in per_day["series"][0]["values"]) == 3
    _chart_matches_its_table(page, "error-by-model")
    assert page.locator("#tile-error-rate").inner_text() == "66.7 %"  # a correction and a rejection of three
    page.screenshot(path=screenshot_path("quality-metrics.png"), full_page=True)
    assert not page.problems, page.problems  # CSP violations included


def test_a_reviewers_page_draws_their_figures_over_time(page_for, seeded, screenshot_path):
    page = page_for()
    sign_in(page, "quinn")
    page.click("nav.section-nav a:has-text('Reviewers')")
    page.wait_for_url("**/quality/reviewers/")
    assert "no data yet" in page.locator("#reviewers tbody tr").first.inner_text()
    page.click("#reviewers a:has-text('rita')")
    page.wait_for_url(f"**/quality/reviewers/{seeded['rita'].pk}/**")

    assert page.locator("#tile-reviews").inner_text() == "3"
    spec = _chart_matches_its_table(page, "detail-time")
    assert [series["label"] for series in spec["series"]] == ["Median", "90th percentile"]
    _chart_matches_its_table(page, "detail-rates")
    page.screenshot(path=screenshot_path("quality-reviewer.png"), full_page=True)
    assert not page.problems, page.problems
