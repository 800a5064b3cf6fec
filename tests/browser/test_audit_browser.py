"""The auditor's pages in Chromium: search -> story, and the chain's "Verify now" (htmx), under the strict CSP."""

import copy

import pytest

from policies.defaults import DEFAULT_POLICY
from policies.services import policy_publish, rubric_publish
from reviews.models import Output
from tenants.audit import audit_checkpoint
from tenants.models import AuditVerification
from tenants.services import membership_create
from tenants.verification import audit_verification_run
from tests.conftest import make_client
from tests.factories import UserFactory, output_payload
from tests.reviews.conftest import RUBRIC, claim, review, reviewer

pytestmark = pytest.mark.django_db(transaction=True)
PASSWORD = "a-long-password-1"
TRACE = [
    {"type": "retrieval", "query": "refund policy", "documents": [{"source": "kb/refunds", "content": "30 days."}]},
    {"type": "tool", "name": "order_lookup", "arguments": {"order": 1234}, "result": {"paid": True}},
    {"type": "llm", "messages": [{"role": "user", "content": "Can I get a refund?"}], "prompt_tokens": 96},
]


def auditor(tenant, username="alex"):
    user = UserFactory(username=username)
    user.set_password(PASSWORD)
    user.save()
    membership_create(tenant=tenant, user=user, role="auditor")
    return user


def sign_in(page, username):
    page.goto("/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_url("**/audit/")


@pytest.fixture
def seeded(tenant, other_tenant):
    rubric_publish(tenant=tenant, document=RUBRIC)
    tiers = copy.deepcopy(DEFAULT_POLICY["tiers"])
    for tier in tiers:
        tier.update(review_rate=1.0, rubric="quality", overlap_rate=0.0)
    policy_publish(
        tenant=tenant, document={"default_tier": "medium", "tiers": tiers, "rules": []}, reason="review everything"
    )
    service = make_client(tenant, "service")
    for number, application in ((1, "support-bot"), (2, "support-bot"), (3, "billing-bot")):
        body = output_payload(number, application=application, trace=TRACE, output=f"Yes, within 30 days ({number}).")
        service.post("/api/v1/outputs", body, format="json")
    rita = reviewer(tenant, 2, "rita")
    task = claim(rita).json()
    review(
        rita,
        task["id"],
        decision="correct",
        scores={"correct": False, "helpful": 3},
        corrected_output=task["output"]["output"] + " Keep your receipt.",
        comment="missing the receipt condition",
        time_spent_seconds=37,
    )
    make_client(other_tenant, "service").post(
        "/api/v1/outputs", output_payload(9, external_id="not-yours"), format="json"
    )
    auditor(tenant)
    return {"corrected": Output.objects.for_tenant(tenant).get(decision="corrected")}


def test_an_auditor_searches_and_reads_an_outputs_story(page_for, seeded, screenshot_path):
    page = page_for()
    sign_in(page, "alex")
    assert page.locator("#results tbody tr").count() == 3
    assert "not-yours" not in page.content()
    page.screenshot(path=screenshot_path("audit-search.png"), full_page=True)

    page.select_option("#id_decision", "corrected")
    page.click("button:has-text('Search')")
    page.wait_for_url("**decision=corrected**")
    assert page.locator("#results tbody tr").count() == 1
    assert page.locator("#results .sla").first.inner_text() in ("met", "missed")
    page.locator("#results a.story-link").first.click()
    page.wait_for_url(f"**/audit/outputs/{seeded['corrected'].pk}/?back=*")  # the search to come back to

    kinds = [kind.lower() for kind in page.locator(".timeline .kind").all_inner_texts()]
    assert kinds[:2] == ["received", "classified"] and "review" in kinds and "decided" in kinds
    assert page.locator(".step.retrieval").count() == 1 and page.locator(".step.tool").count() == 1
    assert page.locator(".diff ins").first.inner_text().strip().startswith("Keep")
    assert "missing the receipt condition" in page.content() and "37 s spent" in page.content()
    assert page.locator("#commitment .badge").first.inner_text() == "committed"
    assert page.locator("button.copy-button").count() >= 3  # identifiers to copy
    assert "decision=corrected" in page.locator(".crumbs a").get_attribute("href")  # "← Outputs": this search
    page.locator("a:has-text('v2')").first.click()  # the policy version that classified it
    page.wait_for_url("**/audit/config/policy/2/")
    assert "review everything" in page.content() and page.locator("pre.json-diff .add").count() >= 1
    page.go_back()
    page.screenshot(path=screenshot_path("audit-story.png"), full_page=True)
    assert not [problem for problem in page.problems if "Content Security Policy" in problem], page.problems


def test_verify_now_shows_the_outcome_and_a_running_verification_updates_by_itself(
    page_for, seeded, tenant, screenshot_path
):
    page = page_for()
    sign_in(page, "alex")
    page.click("nav.audit-nav a:has-text('Chain')")
    page.wait_for_url("**/audit/chain/")
    assert "Never verified" in page.content()
    page.click("#verify-now")
    page.wait_for_selector("#verification-outcome")
    assert page.locator("#verification-outcome").inner_text() == "Intact"
    stored = AuditVerification.objects.for_tenant(tenant).get()
    assert stored.requested_by.username == "alex" and stored.status == "passed"

    # A verification still running (as on a worker): the page polls it until it finishes.
    running = AuditVerification.objects.for_tenant(tenant).create(
        started_at=stored.started_at, head_seq_at_start=stored.last_seq, source="page"
    )
    AuditVerification.objects.for_tenant(tenant).filter(pk=running.pk).update(started_at=stored.finished_at)
    audit_checkpoint(tenant)  # a signed head, as the beat makes every ten minutes
    page.reload()
    assert page.locator("#verification progress").count() == 1
    assert "valid with the published key" in page.content()
    audit_verification_run(verification_id=running.pk)
    page.wait_for_selector("#verification-outcome", timeout=10_000)
    assert page.locator("#verification-outcome").inner_text() == "Intact"
    from playwright.sync_api import expect  # (conftest skips browser tests where Playwright is missing)

    expect(page.locator("#verifications")).not_to_contain_text("Running")  # the table reloaded by itself
    page.screenshot(path=screenshot_path("audit-chain.png"), full_page=True)
    assert not [problem for problem in page.problems if "Content Security Policy" in problem], page.problems


def test_a_refused_page_leads_on_by_keyboard_under_the_strict_csp(tenant, page_for, screenshot_path):
    auditor(tenant, "ada")
    page = page_for()
    sign_in(page, "ada")

    response = page.goto("/review/")  # the workbench: not an auditor's page
    assert response.status == 403
    assert page.locator("h1").inner_text() == "This page is not open to you"
    page.screenshot(path=screenshot_path("refused-page.png"), full_page=True)
    nav = page.locator("nav[aria-label=Main]")
    assert nav.locator("a", has_text="Audit").count() == 1 and nav.locator("a", has_text="Workbench").count() == 0
    for _ in range(12):  # Tab through the header to the auditor's section, then Enter
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.textContent.trim()") == "Audit":
            break
    page.keyboard.press("Enter")
    page.wait_for_url("**/audit/")
    # (the browser reports the refused page's own 403; nothing else: no CSP violation, no missing asset)
    assert [problem for problem in page.problems if "status of 403" not in problem] == []
