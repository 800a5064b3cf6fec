"""The quality lead's golden-set and certification pages, and the workbench's certifications:
roles, another tenant's 404, forms that validate, the flows a person clicks through."""

from datetime import timedelta

import orjson
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from reviews.models import Certification, CertificationStatus, GoldenSet, GoldItem, Queue
from tenants.services import PLATFORM_OPERATOR
from tests.pages import member, signed_in
from tests.reviews.conftest import GOOD_SCORES, claim, review, reviewer, submit

pytestmark = pytest.mark.django_db


def _line(n=0, **overrides):
    return orjson.dumps(
        {
            "application": "medium-app",
            "input": f"question-{n}-of-the-gold-set",
            "output": f"answer-{n}-of-the-gold-set",
            "rubric": "quality",
            "expected_decision": "approve",
            "expected_scores": GOOD_SCORES,
            **overrides,
        }
    )


@pytest.fixture
def golden(tenant, workflow):
    from quality.services import gold_items_import, golden_set_create

    golden_set = golden_set_create(tenant=tenant, name="tenant-a-gold", queue="default", actor=PLATFORM_OPERATOR)
    gold_items_import(
        tenant=tenant, golden_set_id=golden_set.pk, body=b"\n".join(_line(n) for n in range(3)), actor=PLATFORM_OPERATOR
    )
    return golden_set


PAGES = [
    "/quality/golden-sets/",
    "/quality/golden-sets/{golden}/",
    "/quality/golden-sets/{golden}/export.jsonl",
    "/quality/certifications/",
    "/quality/exams/",
]


@pytest.mark.parametrize("path", PAGES)
def test_quality_pages_by_role_and_tenant(tenant, other_tenant, golden, path):
    url = path.format(golden=golden.pk)
    lead = signed_in(member(tenant, "quality_lead"))
    assert lead.get(url).status_code == 200
    assert signed_in(member(tenant, "admin")).get(url).status_code == 200
    for role in ("reviewer", "auditor", "viewer"):
        assert signed_in(member(tenant, role)).get(url).status_code == 403, role
    outsider = signed_in(member(other_tenant, "quality_lead")).get(url)
    if "{golden}" in path:
        assert outsider.status_code == 404
    else:
        # Markers long enough that no token, nonce or id on the page can hold them by chance.
        assert outsider.status_code == 200
        assert b"tenant-a-gold" not in outsider.content
        assert b"-of-the-gold-set" not in outsider.content
    if path == "/quality/golden-sets/{golden}/":
        assert b"answer-0-of-the-gold-set" in lead.get(url).content


def test_create_a_set_import_with_errors_then_promote_from_the_output_page(tenant, other_tenant, workflow):
    lead = signed_in(member(tenant, "quality_lead", "quinn"))
    refused = lead.post("/quality/golden-sets/", {"name": "", "queue": "", "skill": ""})
    assert refused.status_code == 400
    created = lead.post("/quality/golden-sets/", {"name": "gold", "queue": "default", "skill": ""})
    golden_set = GoldenSet.objects.for_tenant(tenant).get()
    assert created.status_code == 302 and created["Location"] == f"/quality/golden-sets/{golden_set.pk}/"

    bad = SimpleUploadedFile("gold.jsonl", _line() + b"\n" + _line(expected_decision="maybe"))
    response = lead.post(f"/quality/golden-sets/{golden_set.pk}/", {"action": "import", "file": bad})
    assert response.status_code == 400
    assert "line 2: expected_decision" in response.content.decode()
    assert not GoldItem.objects.for_tenant(tenant).exists()

    alice = reviewer(tenant, 1, "alice")
    output = submit(workflow, 1, "medium-app")
    review(alice, claim(alice).json()["id"], decision="reject", scores={"correct": False, "helpful": 1})
    page = lead.get(f"/quality/outputs/{output['id']}/")
    assert page.status_code == 200 and b"Promote to gold" in page.content
    assert signed_in(member(other_tenant, "quality_lead")).get(f"/quality/outputs/{output['id']}/").status_code == 404
    promoted = lead.post(
        f"/quality/golden-sets/{golden_set.pk}/", {"action": "promote", "output_id": output["id"], "note": "a no"}
    )
    assert promoted.status_code == 302
    item = GoldItem.objects.for_tenant(tenant).get()
    assert (item.expected_decision, item.expected_scores, str(item.source_output_id)) == (
        "reject",
        {"correct": False, "helpful": 1},
        output["id"],
    )
    shown = lead.get(f"/quality/golden-sets/{golden_set.pk}/").content.decode()
    assert "a no" in shown and "reject" in shown


def test_the_workbench_takes_an_exam_and_tells_a_suspension(tenant, golden):
    from reviews.services.gold import queue_certification_rules_set

    queue = Queue.objects.for_tenant(tenant).get(name="default")
    queue_certification_rules_set(
        tenant=tenant,
        queue_id=queue.pk,
        rules={"requires_certification": True, "exam_items": 2, "exam_pass_mark": 0.5},
        actor=PLATFORM_OPERATOR,
    )
    alice = reviewer(tenant, 1, "alice")
    page = signed_in(alice.person)
    workbench = page.get("/review/").content.decode()
    assert "certification needed" in workbench and f'id="start-exam-{queue.pk}"' in workbench

    opened = page.post("/review/exams", {"queue": queue.pk})
    assert opened.status_code == 302 and opened["Location"].startswith("/review/tasks/")
    for _ in range(2):
        task_url = opened["Location"]
        opened = page.post(task_url, {"decision": "approve", "score-correct": "yes", "score-helpful": "4"})
        assert opened.status_code == 302
    certification = Certification.objects.for_tenant(tenant).get(user=alice.person)
    assert certification.status == CertificationStatus.ACTIVE
    assert "certification needed" not in page.get("/review/").content.decode()

    Certification.objects.for_tenant(tenant).filter(pk=certification.pk).update(
        status=CertificationStatus.SUSPENDED, status_reason="accuracy 40 %", status_changed_at=timezone.now()
    )
    workbench = page.get("/review/").content.decode()
    assert f'id="suspended-{queue.pk}"' in workbench and "accuracy 40 %" in workbench


def test_a_lead_reinstates_after_a_new_exam_and_edits_the_rules(tenant, golden):
    from reviews.models import Exam, ExamStatus

    alice = reviewer(tenant, 1, "alice")
    queue = Queue.objects.for_tenant(tenant).get(name="default")
    now = timezone.now()
    certification = Certification.objects.for_tenant(tenant).create(
        user=alice.person,
        queue=queue,
        status=CertificationStatus.SUSPENDED,
        valid_from=now - timedelta(days=2),
        valid_until=now + timedelta(days=20),
        status_changed_at=now - timedelta(days=1),
    )
    lead = signed_in(member(tenant, "quality_lead"))
    listed = lead.get("/quality/certifications/").content.decode()
    assert f"Reinstate {alice.person.username}" in listed

    refused = lead.post(
        "/quality/certifications/", {"action": "reinstate", "certification": certification.pk}, follow=True
    )
    assert "passed no exam" in refused.content.decode()
    Exam.objects.for_tenant(tenant).create(
        user=alice.person,
        queue=queue,
        golden_set=golden,
        golden_set_version=1,
        status=ExamStatus.PASSED,
        items_total=2,
        items_answered=2,
        items_correct=2,
        pass_mark=0.8,
        finished_at=now,
    )
    lead.post("/quality/certifications/", {"action": "reinstate", "certification": certification.pk})
    certification.refresh_from_db()
    assert certification.status == CertificationStatus.ACTIVE

    prefix = f"q{queue.pk}"
    rules = {
        "action": "rules",
        "queue": queue.pk,
        f"{prefix}-requires_certification": "on",
        f"{prefix}-exam_items": "5",
        f"{prefix}-exam_pass_mark": "90",
        f"{prefix}-certification_days": "30",
        f"{prefix}-gold_rate": "5",
        f"{prefix}-gold_window": "10",
        f"{prefix}-gold_threshold": "150",
    }
    assert lead.post("/quality/certifications/", rules).status_code == 400
    rules[f"{prefix}-gold_threshold"] = "75"
    assert lead.post("/quality/certifications/", rules).status_code == 302
    queue.refresh_from_db()
    assert (queue.requires_certification, queue.exam_items, queue.exam_pass_mark, queue.gold_rate) == (
        True,
        5,
        0.9,
        0.05,
    )
    assert signed_in(member(tenant, "reviewer")).post("/quality/certifications/", rules).status_code == 403


def test_the_demo_has_a_queue_requiring_certification_with_a_certified_reviewer(db):
    from django.core.management import call_command

    from reviews.services.claims import certification_holds, reviewer_for
    from tenants.selectors import tenant_get_by_slug
    from tenants.services import user_get_or_create

    call_command("demo", "--outputs", "30", stdout=__import__("io").StringIO())
    tenant = tenant_get_by_slug(slug="demo")
    medical = Queue.objects.for_tenant(tenant).get(name="medical")
    assert medical.requires_certification
    assert GoldItem.objects.for_tenant(tenant).filter(golden_set__queue=medical).count() == 7
    sam = user_get_or_create(username="sam")
    assert Certification.objects.for_tenant(tenant).get(queue=medical).user == sam
    rights = reviewer_for(tenant=tenant, user=sam)
    assert medical.pk in rights.queue_ids and medical.pk in rights.gated_queue_ids
    now = timezone.now()
    assert certification_holds(tenant=tenant, user_id=sam.pk, queue_id=medical.pk, now=now)
    admin = user_get_or_create(username="admin")
    assert medical.pk in reviewer_for(tenant=tenant, user=admin).queue_ids
    assert not certification_holds(tenant=tenant, user_id=admin.pk, queue_id=medical.pk, now=now)
