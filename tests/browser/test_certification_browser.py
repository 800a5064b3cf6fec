"""Certification in Chromium: a reviewer takes a queue's exam on the workbench by keyboard and
is certified; suspended, she sees why, passes a new exam, and a quality lead reinstates her."""

import copy

import orjson
import pytest
from django.db import transaction

from hitl.tenancy import tenant_scope
from policies.defaults import DEFAULT_POLICY
from policies.services import policy_publish, rubric_publish
from quality.services import gold_items_import, golden_set_create
from reviews.models import Certification, CertificationStatus, Exam, Queue
from reviews.services.gold import certification_status_set, queue_certification_rules_set
from tenants.audit import SYSTEM
from tenants.services import PLATFORM_OPERATOR
from tests.browser.test_workbench_browser import PASSWORD, RUBRIC, member
from tests.conftest import make_client
from tests.factories import output_payload

pytestmark = pytest.mark.django_db(transaction=True)
ANSWER = {"correct": True, "helpful": 4, "tone": "ok"}  # keys 1, 4, 1 on the rubric form


def sign_in(page, username):
    page.goto("/login/")
    # The login form autofocuses its first field; typing before the browser has applied it loses keys.
    page.wait_for_function("document.activeElement && document.activeElement.id === 'id_username'")
    page.keyboard.type(username)
    page.keyboard.press("Tab")
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_url(lambda url: "/login/" not in url)


@pytest.fixture
def gated(tenant):
    rubric_publish(tenant=tenant, document=RUBRIC)
    tiers = copy.deepcopy(DEFAULT_POLICY["tiers"])
    for tier in tiers:
        tier.update(review_rate=1.0, rubric="quality", overlap_rate=0.0, min_reviewer_level=1)
    policy_publish(tenant=tenant, document={"default_tier": "medium", "tiers": tiers, "rules": []})
    queue = Queue.objects.for_tenant(tenant).get(name="default")
    queue_certification_rules_set(
        tenant=tenant,
        queue_id=queue.pk,
        rules={"requires_certification": True, "exam_items": 2, "exam_pass_mark": 1.0},
        actor=PLATFORM_OPERATOR,
    )
    golden = golden_set_create(tenant=tenant, name="gold", queue="default", actor=PLATFORM_OPERATOR)
    lines = [
        orjson.dumps(
            {
                "application": "support-bot",
                "input": f"Gold question {n}?",
                "output": f"Gold answer {n}.",
                "rubric": "quality",
                "expected_decision": "approve",
                "expected_scores": ANSWER,
            }
        )
        for n in range(3)
    ]
    gold_items_import(tenant=tenant, golden_set_id=golden.pk, body=b"\n".join(lines), actor=PLATFORM_OPERATOR)
    make_client(tenant, "service").post("/api/v1/outputs", output_payload(1), format="json")
    rita = member(tenant, "rita", "reviewer")
    member(tenant, "quinn", "quality_lead")
    return {"queue": queue, "rita": rita}


def _take_exam(page, queue):
    page.goto("/review/")
    page.focus(f"#start-exam-{queue.pk}")
    page.keyboard.press("Enter")
    for _ in range(2):
        page.wait_for_url("**/review/tasks/**")
        current = page.url
        for key in ("1", "4", "1", "a"):
            page.keyboard.press(key)
        page.keyboard.press("Control+Enter")
        page.wait_for_url(lambda url, current=current: url != current)


def test_an_exam_on_the_workbench_then_a_suspension_and_a_reinstatement(page_for, gated, tenant, screenshot_path):
    queue, rita = gated["queue"], gated["rita"]
    page = page_for()
    sign_in(page, "rita")
    page.goto("/review/")
    assert "certification needed" in page.content()

    _take_exam(page, queue)

    certification = Certification.objects.for_tenant(tenant).get(user=rita)
    assert certification.status == CertificationStatus.ACTIVE
    assert Exam.objects.for_tenant(tenant).get().status == "passed"
    page.goto("/review/")
    assert "certification needed" not in page.content()
    page.screenshot(path=screenshot_path("workbench-certifications.png"), full_page=True)

    with transaction.atomic(), tenant_scope(tenant):
        certification_status_set(
            tenant=tenant,
            certification=certification,
            status=CertificationStatus.SUSPENDED,
            reason="accuracy on the last 20 gold items was 55 %, below the queue's 70 %",
            actor=SYSTEM,
        )
    page.goto("/review/")
    assert page.locator(f"#suspended-{queue.pk}").is_visible()
    assert "55 %" in page.locator(f"#suspended-{queue.pk}").inner_text()
    _take_exam(page, queue)
    certification.refresh_from_db()
    assert certification.status == CertificationStatus.SUSPENDED  # a quality lead reinstates

    lead = page_for()
    sign_in(lead, "quinn")
    lead.goto("/quality/certifications/")
    assert lead.locator("#certifications tbody tr").first.inner_text().startswith("rita")  # suspended first
    lead.screenshot(path=screenshot_path("quality-certifications.png"), full_page=True)
    lead.get_by_role("button", name="Reinstate rita").focus()
    with lead.expect_navigation():
        lead.keyboard.press("Enter")
    lead.wait_for_load_state()
    assert "reinstated" in lead.locator("main").inner_text()

    certification.refresh_from_db()
    assert certification.status == CertificationStatus.ACTIVE
    for problems in (page.problems, lead.problems):
        assert not [problem for problem in problems if "Content Security Policy" in problem], problems
