"""Calibration in Chromium (issue 13 point 3): a quality lead invites two reviewers, each scores
blind (keyboard: a/r/c and Ctrl+Enter), the lead closes the session, and a reviewer sees the
answers side by side, the disagreement first. No console error (the strict CSP holds)."""

import pytest

from policies.services import rubric_publish
from reviews.services import output_ingest_batch
from tenants.services import membership_create
from tests.factories import UserFactory, output_submission

pytestmark = pytest.mark.django_db(transaction=True)
PASSWORD = "a-long-password-1"
RUBRIC = {
    "name": "quality",
    "criteria": [
        {"key": "correct", "label": "Correct", "kind": "binary"},
        {"key": "helpful", "label": "Helpful", "kind": "graded", "min": 1, "max": 5},
    ],
}


def member(tenant, username, role):
    user = UserFactory(username=username)
    user.set_password(PASSWORD)
    user.save()
    membership_create(tenant=tenant, user=user, role=role)
    return user


def sign_in(page, username):
    page.goto("/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_url(lambda url: "/login/" not in url)


def score(page, session_id, answers):
    page.goto(f"/quality/calibration/{session_id}/score/")
    for position, (correct, helpful, key) in enumerate(answers, start=1):
        assert page.locator("#answered").inner_text().startswith(f"{position - 1} of")
        page.check(f'input[name="score-correct"][value="{correct}"]')
        page.check(f'input[name="score-helpful"][value="{helpful}"]')
        page.locator("body").focus()
        page.keyboard.press(key)  # a, r or c picks the decision
        assert page.evaluate("document.activeElement.name") == "decision"
        page.keyboard.press("Control+Enter")  # saved: the next item opens (the last one stays)
        page.wait_for_selector(f'#answered:has-text("{position} of")')


def test_invite_score_blind_close_and_compare(page_for, tenant, screenshot_path):
    rubric_publish(tenant=tenant, document=RUBRIC)
    receipts = output_ingest_batch(tenant=tenant, submissions=[output_submission(n) for n in (1, 2)])
    ids = [str(item.receipt["id"]) for item in receipts]
    member(tenant, "quinn", "quality_lead")
    ann, bob = member(tenant, "ann", "reviewer"), member(tenant, "bob", "reviewer")

    lead = page_for()
    sign_in(lead, "quinn")
    lead.goto("/quality/calibration/")
    lead.click("#new-session")
    lead.fill("#id_name", "Week 48")
    lead.select_option("#id_rubric", "quality")
    lead.fill("#id_extra_outputs", "\n".join(ids))
    lead.check(f'input[name="participants"][value="{ann.pk}"]')
    lead.check(f'input[name="participants"][value="{bob.pk}"]')
    lead.click("#start-session")
    lead.wait_for_url("**/quality/calibration/*/")
    session_id = int(lead.url.rstrip("/").split("/")[-1])
    assert lead.locator("#session-status").inner_text() == "open"

    first = page_for()
    sign_in(first, "ann")
    first.goto("/quality/calibration/mine/")
    assert "Week 48" in first.locator("#my-sessions").inner_text()
    score(first, session_id, [("yes", "4", "a"), ("yes", "5", "a")])

    second = page_for()
    sign_in(second, "bob")
    # Blind: nothing of ann's shows; the results wait for the close.
    second.goto(f"/quality/calibration/{session_id}/results/")
    second.wait_for_url(f"**/quality/calibration/{session_id}/score/")
    assert "ann" not in second.locator("main").inner_text()
    score(second, session_id, [("yes", "4", "a"), ("no", "2", "r")])
    second.screenshot(path=screenshot_path("calibration_score.png"), full_page=True)

    lead.reload()
    assert "ann: 2 answered" in lead.locator("#progress").inner_text()
    lead.click("#close-session")
    lead.wait_for_selector("#session-agreement")

    first.goto(f"/quality/calibration/{session_id}/results/")
    items = first.locator(".calibration-item")
    assert items.count() == 2
    top = items.nth(0).inner_text()
    assert "Item 2" in top and "differ on decision, correct, helpful" in top
    assert "approve" in top and "reject" in top  # side by side
    assert "all agree" in items.nth(1).inner_text()
    assert "Krippendorff" in first.locator("#session-agreement").inner_text()
    first.screenshot(path=screenshot_path("calibration_results.png"), full_page=True)
    for page in (lead, first, second):
        assert page.problems == []
