"""The workbench in Chromium: sign in, switch tenant, work three tasks by keyboard only
(approve with every rubric kind, correct with the diff shown, escalate), and see the
decisions arrive through the API; an auditor and another tenant's reviewer are kept out."""

import copy

import pytest

from policies.defaults import DEFAULT_POLICY
from policies.services import policy_publish, rubric_publish
from reviews.models import Queue, ReviewTask
from reviews.services.queues import queue_grant
from tenants.services import PLATFORM_OPERATOR, membership_create
from tests.conftest import make_client
from tests.factories import UserFactory, output_payload

pytestmark = pytest.mark.django_db(transaction=True)
PASSWORD = "a-long-password-1"
RUBRIC = {
    "name": "quality",
    "criteria": [
        {"key": "correct", "label": "Correct", "kind": "binary"},
        {"key": "helpful", "label": "Helpful", "kind": "graded", "min": 1, "max": 5, "anchors": {"1": "useless"}},
        {"key": "tone", "label": "Tone", "kind": "categorical", "options": ["ok", "rude"]},
        {"key": "notes", "label": "Notes", "kind": "text", "required": False},
    ],
}


def member(tenant, username, role, level=1):
    user = UserFactory(username=username)
    user.set_password(PASSWORD)
    user.save()
    membership_create(tenant=tenant, user=user, role=role, reviewer_level=level)
    if role in ("reviewer", "admin"):
        queue_grant(queue=Queue.objects.for_tenant(tenant).get(name="default"), user=user, actor=PLATFORM_OPERATOR)
    return user


def sign_in(page, username):
    page.goto("/login/")
    # The login form autofocuses its first field; typing before the browser has applied it loses keys.
    page.wait_for_function("document.activeElement && document.activeElement.id === 'id_username'")
    page.keyboard.type(username)
    page.keyboard.press("Tab")
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_url("**/review/**" if username != "alex" else "**/audit/**")


@pytest.fixture
def seeded(tenant, other_tenant):
    rubric_publish(tenant=tenant, document=RUBRIC)
    tiers = copy.deepcopy(DEFAULT_POLICY["tiers"])
    for tier in tiers:
        tier.update(review_rate=1.0, rubric="quality", overlap_rate=0.0, escalation=True, min_reviewer_level=1)
    policy_publish(tenant=tenant, document={"default_tier": "medium", "tiers": tiers, "rules": []})
    service = make_client(tenant, "service")
    trace = [
        {"type": "retrieval", "query": "reset", "documents": [{"source": "help/reset", "content": "Open Settings."}]},
        {"type": "tool", "name": "lookup_user", "arguments": {"id": 7}, "result": {"found": True}},
        {"type": "llm", "messages": [{"role": "user", "content": "How?"}], "prompt_tokens": 120, "cost": 0.0004},
    ]
    ids = [
        service.post("/api/v1/outputs", output_payload(n, trace=trace), format="json").json()["id"] for n in (1, 2, 3)
    ]
    rita = member(tenant, "rita", "reviewer")
    membership_create(tenant=other_tenant, user=rita, role="auditor")  # she works in two tenants
    member(tenant, "alex", "auditor")
    member(other_tenant, "olga", "reviewer")
    return {"service": service, "ids": ids}


def test_a_reviewer_works_three_tasks_by_keyboard(page_for, seeded, tenant, other_tenant, screenshot_path):
    page = page_for()
    sign_in(page, "rita")
    assert "Workbench" in page.title()
    page.screenshot(path=screenshot_path("workbench.png"), full_page=True)

    # The switcher: another tenant where she is an auditor, then back.
    page.focus("#tenant-switch")
    page.select_option("#tenant-switch", str(other_tenant.pk))
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    page.wait_for_url("**/audit/")
    page.focus("#tenant-switch")
    page.select_option("#tenant-switch", str(tenant.pk))
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    page.wait_for_url("**/review/")

    page.focus("#start-any")
    page.keyboard.press("Enter")
    page.wait_for_url("**/review/tasks/**")
    assert page.locator(".step.retrieval").count() == 1 and page.locator(".step.tool").count() == 1
    page.screenshot(path=screenshot_path("task.png"), full_page=True)

    # 1. Approve: a digit per criterion (binary yes, graded 4, categorical "ok"), then a, Ctrl+Enter.
    first = page.url
    for key in ("1", "4", "1", "a"):
        page.keyboard.press(key)
    page.keyboard.press("Control+Enter")
    page.wait_for_url(lambda url: url != first and "/review/tasks/" in url)

    # 2. Correct: c opens the editor; typing shows the diff before submitting.
    second = page.url
    for key in ("2", "2", "1", "c"):
        page.keyboard.press(key)
    assert page.evaluate("document.activeElement.id") == "corrected-output"
    page.keyboard.press("Control+End")
    page.keyboard.type(" Please check Settings.")
    assert page.locator("#diff ins").count() >= 1
    page.keyboard.press("?")  # a letter while typing only types it
    assert page.locator("#shortcuts").is_hidden()
    page.keyboard.press("Control+Enter")
    page.wait_for_url(lambda url: url != second and "/review/tasks/" in url)

    # 3. Escalate: e jumps to the comment, which is required.
    page.keyboard.press("Escape")
    page.locator("body").focus()
    page.keyboard.press("?")
    assert page.locator("#shortcuts").is_visible()
    page.keyboard.press("Escape")
    page.keyboard.press("e")
    page.keyboard.type("Needs a specialist: cites a policy I cannot check.")
    page.keyboard.press("Control+Enter")
    page.wait_for_url("**/review/")
    assert "No task is waiting" in page.content() or "Escalated" in page.content()
    assert not [problem for problem in page.problems if "Content Security Policy" in problem], page.problems

    decided = [seeded["service"].get(f"/api/v1/outputs/{output_id}").json() for output_id in seeded["ids"]]
    by_decision = sorted((output["decision"] or "") for output in decided)
    assert by_decision == ["", "approved", "corrected"], decided
    corrected = next(output for output in decided if output["decision"] == "corrected")
    assert corrected["final_output"].endswith(" Please check Settings.?")  # the ? was typed, not a shortcut
    escalated = ReviewTask.objects.for_tenant(tenant).get(escalation_reason__startswith="Needs a specialist")
    assert escalated.level_required == 2 and escalated.status == "pending"


def test_an_auditor_and_another_tenants_reviewer_are_kept_out(page_for, seeded, tenant):
    rita = page_for()
    sign_in(rita, "rita")
    rita.focus("#start-any")
    rita.keyboard.press("Enter")
    rita.wait_for_url("**/review/tasks/**")
    task_url = rita.url

    alex = page_for()
    sign_in(alex, "alex")
    assert alex.goto("/review/").status == 403

    olga = page_for()
    sign_in(olga, "olga")
    assert olga.goto(task_url).status == 404
