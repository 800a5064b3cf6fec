"""The tenant admin's console in Chromium: sign in, land on the console, change a tier's rate,
preview what it does per tier, publish it with a reason by keyboard, and find the new version
in the API; a reviewer is kept out."""

import re

import pytest

from policies.models import Policy
from tenants.services import membership_create
from tests.conftest import make_client
from tests.factories import UserFactory, output_payload

pytestmark = pytest.mark.django_db(transaction=True)
PASSWORD = "a-long-password-1"


def person(tenant, username, role):
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
    page.wait_for_url(re.compile(r".*/(console|review)/$"))


@pytest.fixture
def seeded(tenant):
    service = make_client(tenant, "service")
    outputs = [
        output_payload(number, application="support-bot" if number % 3 else "billing-bot",
                       confidence=0.3 if number % 7 == 0 else 0.9)
        for number in range(300)
    ]  # fmt: skip
    assert service.post("/api/v1/outputs/batch", {"items": outputs}, format="json").status_code in (200, 207)
    person(tenant, "ada", "admin")
    person(tenant, "rita", "reviewer")
    return {"admin": make_client(tenant, "admin")}


def test_an_admin_previews_and_publishes_a_new_rate(page_for, seeded, tenant, screenshot_path):
    page = page_for()
    sign_in(page, "ada")
    assert page.url.endswith("/console/") and "Console" in page.title()

    page.get_by_role("navigation", name="Console sections").get_by_role("link", name="Policy").click()
    page.wait_for_url("**/console/policy/")
    page.fill("#id_tier-1-review_rate", "60")  # medium: 25 % -> 60 %
    page.get_by_role("button", name="Preview the change").first.click()
    page.wait_for_selector("#preview-table")

    medium = page.locator('#preview-table tr[data-tier="medium"] td[data-column="sampled-difference"]')
    assert re.fullmatch(r"\+\d+", medium.inner_text().strip()), medium.inner_text()
    low = page.locator('#preview-table tr[data-tier="low"] td[data-column="sampled-difference"]')
    assert low.inner_text().strip() == "no change"
    assert "tier medium: rate 25 % → 60 %" in page.locator("#preview").inner_text()
    page.screenshot(path=screenshot_path("console.png"))

    # Publish by keyboard: the reason, then Tab to the button and Enter.
    page.focus("#id_reason")
    page.keyboard.type("More eyes on customer-facing answers after the March incident.")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "publish-button"
    page.keyboard.press("Enter")
    page.wait_for_selector(".message.success")
    assert "Published version 2" in page.locator(".messages").inner_text()
    assert not page.problems, page.problems  # no CSP violation, no script error

    assert Policy.objects.for_tenant(tenant).get().version == 2
    body = seeded["admin"].get("/api/v1/policy").json()
    assert body["version"] == 2 and [t["review_rate"] for t in body["tiers"] if t["name"] == "medium"] == [0.6]
    history = seeded["admin"].get("/api/v1/policy/history").json()["results"][0]
    assert (history["changed_by"], history["reason"]) == (
        "ada",
        "More eyes on customer-facing answers after the March incident.",
    )


def test_a_reviewer_is_kept_out_of_the_console(page_for, seeded):
    page = page_for()
    sign_in(page, "rita")
    assert page.url.endswith("/review/")
    assert page.get_by_role("link", name="Console").count() == 0
    assert page.goto("/console/policy/").status == 403
