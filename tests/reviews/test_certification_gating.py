"""Certifications gate the claim (API and workbench): exams, expiry, suspension by live gold,
and gold tasks that look like any other (docs/quality.md)."""

from datetime import timedelta

import orjson
import pytest
from django.utils import timezone

from reviews.models import (
    Certification,
    CertificationStatus,
    Exam,
    ExamStatus,
    GoldTask,
    GoldTaskKind,
    Output,
    OutputStatus,
    Queue,
    Review,
    ReviewTask,
    TaskStatus,
    WebhookDelivery,
)
from reviews.services.gold import (
    certification_reinstate,
    exam_start,
    queue_certification_rules_set,
    queue_recertification_require,
)
from reviews.services.webhooks import webhook_endpoint_create
from tenants.audit import SYSTEM
from tenants.models import AuditEvent
from tenants.services import PLATFORM_OPERATOR
from tests.reviews.conftest import GOOD_SCORES, claim, review, reviewer, submit

pytestmark = pytest.mark.django_db


def _queue(tenant):
    return Queue.objects.for_tenant(tenant).get(name="default")


def _gate(tenant, **rules):
    return queue_certification_rules_set(
        tenant=tenant,
        queue_id=_queue(tenant).pk,
        rules={"requires_certification": True, "exam_items": 3, "exam_pass_mark": 0.6, **rules},
        actor=PLATFORM_OPERATOR,
    )


def gold_set(tenant, count=4, decision="approve"):
    """A golden set of the default queue with ``count`` items expecting ``decision`` and good scores."""
    from quality.services import gold_items_import, golden_set_create

    golden = golden_set_create(tenant=tenant, name="gold-default", queue="default", actor=PLATFORM_OPERATOR)
    lines = [
        orjson.dumps(
            {
                "application": "medium-app",
                "input": f"Gold question {n}?",
                "output": f"Gold answer {n}.",
                "trace": [{"type": "retrieval", "documents": ["doc-1"]}, {"type": "llm", "tokens": 42}],
                "metadata": {"category": "billing", "locale": "en"},
                "model": "gpt-4o-mini",
                "confidence": 0.9,
                "rubric": "quality",
                "expected_decision": decision,
                "expected_scores": GOOD_SCORES,
            }
        )
        for n in range(count)
    ]
    gold_items_import(tenant=tenant, golden_set_id=golden.pk, body=b"\n".join(lines), actor=PLATFORM_OPERATOR)
    return golden


def _certify(tenant, person, *, days=30, status=CertificationStatus.ACTIVE):
    now = timezone.now()
    return Certification.objects.for_tenant(tenant).create(
        user=person,
        queue=_queue(tenant),
        status=status,
        valid_from=now - timedelta(days=1),
        valid_until=now + timedelta(days=days),
    )


def test_an_ungated_queue_works_as_before(tenant, workflow):
    alice = reviewer(tenant, 1, "alice")
    submit(workflow, 1, "medium-app")

    assert claim(alice).status_code == 200


def test_a_gated_queue_needs_a_valid_certification_and_the_permission(tenant, workflow):
    alice = reviewer(tenant, 1, "alice")
    _gate(tenant)
    submit(workflow, 1, "medium-app")

    assert claim(alice).status_code == 204  # permitted, not certified
    certification = _certify(tenant, alice.person)
    assert claim(alice).status_code == 200

    # Certified but without the guardian permission: nothing either.
    bob = reviewer(tenant, 1, "bob")
    from reviews.services.queues import queue_revoke

    queue_revoke(queue=_queue(tenant), user=bob.person, actor=PLATFORM_OPERATOR)
    _certify(tenant, bob.person)
    submit(workflow, 2, "medium-app")
    assert claim(bob).status_code == 403 or claim(bob).status_code == 204
    assert certification.status == "active"


@pytest.mark.parametrize(
    "state",
    ["expired_by_date", CertificationStatus.EXPIRED, CertificationStatus.SUSPENDED, CertificationStatus.REVOKED],
)
def test_an_invalid_certification_claims_nothing(tenant, workflow, state):
    alice = reviewer(tenant, 1, "alice")
    _gate(tenant)
    submit(workflow, 1, "medium-app")
    if state == "expired_by_date":
        certification = _certify(tenant, alice.person)
        Certification.objects.for_tenant(tenant).filter(pk=certification.pk).update(
            valid_until=timezone.now() - timedelta(seconds=1)
        )
    else:
        _certify(tenant, alice.person, status=state)

    assert claim(alice).status_code == 204


def test_a_lease_taken_while_certified_cannot_be_reviewed_once_suspended(tenant, workflow):
    alice = reviewer(tenant, 1, "alice")
    _gate(tenant)
    certification = _certify(tenant, alice.person)
    submit(workflow, 1, "medium-app")
    task = claim(alice).json()
    Certification.objects.for_tenant(tenant).filter(pk=certification.pk).update(status=CertificationStatus.SUSPENDED)

    response = review(alice, task["id"], decision="approve", scores=GOOD_SCORES)

    assert response.status_code == 403


def _answer_exam(client, count, *, right):
    for _ in range(count):
        task = claim(client).json()
        decision = "approve" if right else "reject"
        assert review(client, task["id"], decision=decision, scores=GOOD_SCORES).status_code == 201


def test_an_exam_passed_certifies_and_opens_the_queue(tenant, workflow):
    alice = reviewer(tenant, 1, "alice")
    _gate(tenant)
    gold_set(tenant)
    submit(workflow, 1, "medium-app")
    assert claim(alice).status_code == 204

    exam = exam_start(tenant=tenant, user=alice.person, queue_id=_queue(tenant).pk)
    _answer_exam(alice, 2, right=True)
    _answer_exam(alice, 1, right=False)  # 2 of 3 >= 60 %

    exam.refresh_from_db()
    assert (exam.status, exam.items_correct, exam.items_answered) == (ExamStatus.PASSED, 2, 3)
    certification = Certification.objects.for_tenant(tenant).get(user=alice.person)
    assert certification.status == CertificationStatus.ACTIVE
    assert certification.valid_until > timezone.now() + timedelta(days=179)
    real = claim(alice).json()
    assert real["output"]["external_id"] == "ext-1"
    kinds = set(AuditEvent.objects.for_tenant(tenant).values_list("kind", flat=True))
    assert {"exam.started", "gold.answered", "exam.passed", "certification.granted"} <= kinds


def test_an_exam_failed_certifies_nothing(tenant, workflow):
    alice = reviewer(tenant, 1, "alice")
    _gate(tenant)
    gold_set(tenant)
    submit(workflow, 1, "medium-app")
    exam_start(tenant=tenant, user=alice.person, queue_id=_queue(tenant).pk)

    _answer_exam(alice, 3, right=False)

    assert Exam.objects.for_tenant(tenant).get().status == ExamStatus.FAILED
    assert not Certification.objects.for_tenant(tenant).exists()
    assert claim(alice).status_code == 204


def test_an_exam_needs_the_permission_and_enough_items(tenant, workflow):
    from hitl.errors import ForbiddenError, RuleViolationError

    alice = reviewer(tenant, 1, "alice")
    _gate(tenant, exam_items=10)
    gold_set(tenant, count=4)
    with pytest.raises(RuleViolationError, match="needs 10"):
        exam_start(tenant=tenant, user=alice.person, queue_id=_queue(tenant).pk)
    from tests.factories import UserFactory

    stranger = UserFactory()
    with pytest.raises(ForbiddenError):
        exam_start(tenant=tenant, user=stranger, queue_id=_queue(tenant).pk)


def test_gold_never_decides_sends_or_counts(tenant, workflow):
    webhook_endpoint_create(tenant=tenant, url="http://127.0.0.1:9/hook", secret="x" * 20)
    alice = reviewer(tenant, 1, "alice")
    _gate(tenant)
    gold_set(tenant)
    exam_start(tenant=tenant, user=alice.person, queue_id=_queue(tenant).pk)

    _answer_exam(alice, 3, right=True)

    copies = Output.objects.for_tenant(tenant).filter(status=OutputStatus.GOLD)
    assert copies.count() == 3
    assert not copies.exclude(decision="").exists()
    assert not Review.objects.for_tenant(tenant).exists()
    assert not WebhookDelivery.objects.for_tenant(tenant).exists()
    service_list = workflow["service"].get("/api/v1/outputs").json()["results"]
    assert service_list == []


def _shape(value):
    """Keys and types all the way down (values differ between any two tasks)."""
    if isinstance(value, dict):
        return {key: _shape(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_shape(item) for item in value[:1]]
    return type(value).__name__


def test_a_gold_task_looks_like_a_real_one_key_by_key(tenant, workflow):
    alice = reviewer(tenant, 1, "alice")
    _gate(tenant, gold_rate=1.0)
    _certify(tenant, alice.person)
    gold_set(tenant)
    first = submit(workflow, 1, "medium-app", input="Gold question 0?", output="Answer.")
    submit(workflow, 2, "medium-app", input="Another question?", output="Answer.")
    real = claim(alice).json()
    assert real["output"]["id"] == first["id"]
    assert review(alice, real["id"], decision="approve", scores=GOOD_SCORES).status_code == 201

    gold = claim(alice).json()  # planted after that review (rate 1): a gold item comes first

    assert GoldTask.objects.for_tenant(tenant).filter(task_id=gold["id"]).exists()
    assert _shape(gold) == _shape(real)
    assert set(gold) == set(real) and set(gold["output"]) == set(real["output"])
    for key in ("purpose", "status", "queue", "level_required", "rubric", "escalation_reason"):
        assert gold[key] == real[key], key
    for key in ("application", "model", "risk_tier", "policy_version", "session_id"):
        assert gold["output"][key] == real["output"][key], key
    # Nothing old: received now, an id made now, due as a fresh output of its tier.
    assert abs((_time(gold["output"]["received_at"]) - timezone.now()).total_seconds()) < 60
    assert gold["output"]["id"] > real["output"]["id"]
    assert _time(gold["due_at"]) > _time(real["due_at"])
    assert "gold" not in orjson.dumps(gold).decode().lower().replace("gold question", "").replace("gold answer", "")
    answered = review(alice, gold["id"], decision="approve", scores=GOOD_SCORES).json()
    assert answered["output"]["status"] == "approved" and answered["decided_now"] is True


def _time(text):
    from datetime import datetime

    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_live_gold_below_the_threshold_suspends_and_a_lead_reinstates_after_an_exam(tenant, workflow):
    alice = reviewer(tenant, 1, "alice")
    _gate(tenant, gold_rate=1.0, gold_window=2, gold_threshold=0.6)
    certification = _certify(tenant, alice.person)
    gold_set(tenant, count=6)
    for number in range(1, 5):
        submit(workflow, number, "medium-app")

    for _ in range(2):  # a real review, then the gold item planted after it, answered wrong
        real = claim(alice).json()
        assert not GoldTask.objects.for_tenant(tenant).filter(task_id=real["id"]).exists()
        assert review(alice, real["id"], decision="approve", scores=GOOD_SCORES).status_code == 201
        gold = claim(alice).json()
        assert GoldTask.objects.for_tenant(tenant).filter(task_id=gold["id"]).exists()
        assert review(alice, gold["id"], decision="reject", scores=GOOD_SCORES).status_code == 201

    certification.refresh_from_db()
    assert certification.status == CertificationStatus.SUSPENDED
    assert "below" in certification.status_reason
    assert claim(alice).status_code == 204
    assert AuditEvent.objects.for_tenant(tenant).filter(kind="certification.suspended").exists()

    from hitl.errors import RuleViolationError

    with pytest.raises(RuleViolationError, match="no exam"):
        certification_reinstate(tenant=tenant, certification_id=certification.pk, actor=SYSTEM)
    exam_start(tenant=tenant, user=alice.person, queue_id=_queue(tenant).pk)
    _answer_exam(alice, 3, right=True)
    certification.refresh_from_db()
    assert certification.status == CertificationStatus.SUSPENDED  # passing alone does not reinstate

    certification_reinstate(tenant=tenant, certification_id=certification.pk, actor=SYSTEM)

    certification.refresh_from_db()
    assert certification.status == CertificationStatus.ACTIVE
    assert claim(alice).status_code == 200


def test_recertification_expires_every_active_certification(tenant, workflow):
    alice = reviewer(tenant, 1, "alice")
    _gate(tenant)
    _certify(tenant, alice.person)
    submit(workflow, 1, "medium-app")

    expired = queue_recertification_require(
        tenant=tenant, queue_id=_queue(tenant).pk, actor=PLATFORM_OPERATOR, reason="rubric quality v2"
    )

    assert expired == 1
    assert claim(alice).status_code == 204
    assert ReviewTask.objects.for_tenant(tenant).filter(status="pending").count() == 1


# Expiry by the clock: the periodic sweep ------------------------------------------------------


def _lapse(tenant, certification, *, ago=timedelta(minutes=1)):
    Certification.objects.for_tenant(tenant).filter(pk=certification.pk).update(
        valid_from=timezone.now() - timedelta(days=30), valid_until=timezone.now() - ago
    )


def _other_tenant_certification(other_tenant, *, lapsed: bool):
    from tenants.services import membership_create
    from tests.factories import UserFactory

    carol = UserFactory(username="carol")
    membership_create(tenant=other_tenant, user=carol, role="reviewer", reviewer_level=1, skills=[])
    now = timezone.now()
    return Certification.objects.for_tenant(other_tenant).create(
        user=carol,
        queue=Queue.objects.for_tenant(other_tenant).get(name="default"),
        valid_from=now - timedelta(days=30),
        valid_until=now - timedelta(hours=1) if lapsed else now + timedelta(days=30),
    )


def test_the_sweep_expires_certifications_past_their_period_once_each_tenant_in_its_own_scope(
    tenant, other_tenant, workflow
):
    from hitl.tenancy import no_tenant
    from reviews.services.gold import CERTIFICATION_PERIOD_ENDED
    from reviews.tasks import certifications_expire_task
    from tenants.audit import audit_verify
    from tenants.auditchain import digest, format_time, merkle_root
    from tests.reviews.test_workbench import browser

    alice, bob = reviewer(tenant, 1, "alice"), reviewer(tenant, 1, "bob")
    _gate(tenant, gold_rate=1.0)
    gold_set(tenant)
    lapsed, current = _certify(tenant, alice.person), _certify(tenant, bob.person)
    submit(workflow, 1, "medium-app")
    real = claim(alice).json()
    assert review(alice, real["id"], decision="approve", scores=GOOD_SCORES).status_code == 201
    waiting = GoldTask.objects.for_tenant(tenant).get(user=alice.person, answered_at__isnull=True).task_id
    _lapse(tenant, lapsed)
    theirs = _other_tenant_certification(other_tenant, lapsed=True)

    with no_tenant():  # the task declares its own scopes
        assert certifications_expire_task() == 2
        assert certifications_expire_task() == 0  # idempotent

    lapsed.refresh_from_db()
    current.refresh_from_db()
    theirs.refresh_from_db()
    assert (lapsed.status, lapsed.status_reason) == (CertificationStatus.EXPIRED, CERTIFICATION_PERIOD_ENDED)
    assert current.status == CertificationStatus.ACTIVE
    assert theirs.status == CertificationStatus.EXPIRED
    # The live gold waiting for alice in that queue is cancelled, as a suspension cancels it.
    assert ReviewTask.objects.for_tenant(tenant).get(pk=waiting).status == "cancelled"
    # One event per tenant and sweep, committing to each certification it expired.
    event = AuditEvent.objects.for_tenant(tenant).get(kind="certification.expired")
    assert (event.data["count"], event.data["ids"]) == (1, [str(lapsed.pk)])
    leaf = digest(
        {
            "id": lapsed.pk,
            "person": alice.person.pk,
            "queue": lapsed.queue_id,
            "valid_from": format_time(lapsed.valid_from),
            "valid_until": format_time(lapsed.valid_until),
            "expired_at": format_time(lapsed.status_changed_at),
        }
    )
    assert event.data["root"] == merkle_root([leaf])
    assert audit_verify(tenant).ok
    other = AuditEvent.objects.for_tenant(other_tenant).get(kind="certification.expired")
    assert other.data["ids"] == [str(theirs.pk)]
    # The person is told on the workbench, as a suspension tells them.
    page = browser(alice.person).get("/review/").content.decode()
    assert f'id="expired-{lapsed.queue_id}"' in page and CERTIFICATION_PERIOD_ENDED in page
    assert f'id="expired-{current.queue_id}"' not in browser(bob.person).get("/review/").content.decode()
    assert claim(alice).status_code == 204


def test_the_sweep_leaves_other_statuses_and_certifications_still_valid_alone(tenant, workflow):
    from hitl.tenancy import no_tenant
    from reviews.tasks import certifications_expire_task

    alice = reviewer(tenant, 1, "alice")
    suspended = _certify(tenant, alice.person, status=CertificationStatus.SUSPENDED)
    _lapse(tenant, suspended)

    with no_tenant():
        assert certifications_expire_task() == 0

    suspended.refresh_from_db()
    assert suspended.status == CertificationStatus.SUSPENDED
    assert not AuditEvent.objects.for_tenant(tenant).filter(kind="certification.expired").exists()


# A rubric's new version requiring recertification ------------------------------------------------

LEGAL_RUBRIC = {"name": "legal", "criteria": [{"key": "compliant", "label": "Compliant", "kind": "binary"}]}


def _queue_of_its_own_rubric(tenant):
    """A ``legal`` queue fed by ``legal-app``, whose reviews use the ``legal`` rubric (the application's)."""
    from policies.services import application_rubric_set, rubric_publish
    from reviews.services.queues import queue_create

    legal_rubric, _ = rubric_publish(tenant=tenant, document=LEGAL_RUBRIC)
    application_rubric_set(tenant=tenant, name="legal-app", rubric=legal_rubric)
    return queue_create(tenant=tenant, name="legal", applications=["legal-app"], actor=PLATFORM_OPERATOR)


def _rubric_v2(client, **extra):
    from tests.reviews.conftest import RUBRIC

    criteria = [*RUBRIC["criteria"], {"key": "safe", "label": "Safe", "kind": "binary", "required": False}]
    return client.post("/api/v1/rubrics", {**RUBRIC, "criteria": criteria, **extra}, format="json")


def test_a_rubric_published_requiring_recertification_expires_the_certifications_of_its_queues_only(
    tenant, other_tenant, workflow
):
    from policies.services import policy_publish, rubric_publish
    from tests.conftest import make_client
    from tests.reviews.conftest import RUBRIC
    from tests.reviews.test_workbench import browser

    alice, bob = reviewer(tenant, 1, "alice"), reviewer(tenant, 1, "bob")
    legal = _queue_of_its_own_rubric(tenant)
    on_quality = _certify(tenant, alice.person)  # default queue: its tiers' rubric is quality
    now = timezone.now()
    on_legal = Certification.objects.for_tenant(tenant).create(
        user=bob.person, queue=legal, valid_from=now - timedelta(days=1), valid_until=now + timedelta(days=30)
    )
    # Another tenant with a rubric of the same name on the same kind of queue.
    rubric_publish(tenant=other_tenant, document=RUBRIC)
    tiers = [{**tier, "rubric": "quality"} for tier in workflow_tiers()]
    policy_publish(tenant=other_tenant, document={"default_tier": "medium", "tiers": tiers, "rules": []})
    theirs = _other_tenant_certification(other_tenant, lapsed=False)
    admin = make_client(tenant, "admin")

    response = _rubric_v2(admin, require_recertification=True)

    assert response.status_code == 200, response.content
    assert response.json()["version"] == 2 and "require_recertification" not in response.json()
    for certification in (on_quality, on_legal, theirs):
        certification.refresh_from_db()
    assert on_quality.status == CertificationStatus.EXPIRED
    assert "rubric quality version 2" in on_quality.status_reason
    assert on_legal.status == CertificationStatus.ACTIVE  # its queue scores with the legal rubric
    assert theirs.status == CertificationStatus.ACTIVE  # another tenant's, whatever its rubric's name
    expired = AuditEvent.objects.for_tenant(tenant).get(kind="certification.expired")
    assert expired.object_id == str(on_quality.pk) and "rubric quality version 2" in expired.data["reason"]
    published = AuditEvent.objects.for_tenant(tenant).filter(kind="rubric.published").latest("seq")
    assert published.data["require_recertification"] is True and published.seq < expired.seq
    assert not AuditEvent.objects.for_tenant(other_tenant).filter(kind="certification.expired").exists()
    page = browser(alice.person).get("/review/").content.decode()
    assert f'id="expired-{on_quality.queue_id}"' in page and "rubric quality version 2" in page


def workflow_tiers():
    from policies.defaults import DEFAULT_POLICY

    return [dict(tier) for tier in DEFAULT_POLICY["tiers"]]


def test_a_rubric_published_without_the_flag_expires_nothing(tenant, workflow):
    from tests.conftest import make_client

    alice = reviewer(tenant, 1, "alice")
    certification = _certify(tenant, alice.person)
    admin = make_client(tenant, "admin")

    assert _rubric_v2(admin).status_code == 200
    assert _rubric_v2(admin, require_recertification=False).status_code == 200
    assert _rubric_v2(admin, require_recertification="yes").status_code == 400  # a JSON boolean only

    certification.refresh_from_db()
    assert certification.status == CertificationStatus.ACTIVE
    assert not AuditEvent.objects.for_tenant(tenant).filter(kind="certification.expired").exists()


def test_the_recertification_flag_is_in_the_published_schema():
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)
    body = schema["paths"]["/api/v1/rubrics"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    name = body["$ref"].rsplit("/", 1)[-1]
    field = schema["components"]["schemas"][name]["properties"]["require_recertification"]
    assert field["type"] == "boolean" and field["default"] is False
    assert "require_recertification" not in schema["components"]["schemas"][name].get("required", [])


def test_queues_using_a_rubric_follow_the_routing():
    """Pure: tiers naming it route to their queues; an application with its own rubric takes its outputs away."""
    from policies.engine import CompiledPolicy
    from reviews.routing import QueueRoute, RoutingTable, queue_ids_using_rubric

    def route(pk, name, tiers=(), applications=()):
        return QueueRoute(pk, name, frozenset(tiers), frozenset(applications), 0, 1)

    tiers = workflow_tiers()
    for tier in tiers:
        tier["rubric"] = "quality" if tier["name"] != "critical" else None
    policy = CompiledPolicy(
        tenant_id=1, version=1, document={"default_tier": "medium", "tiers": tiers, "rules": []}, overrides={}
    )
    routing = RoutingTable(
        queues=(
            route(2, "legal", applications=["legal-app"]),
            route(3, "critical", tiers=["critical"]),
            route(4, "vip", applications=["vip-app"]),
        ),
        fallback=route(1, "default"),
        rubrics={"quality": (10, 2), "legal": (11, 1)},
        application_rubrics={"legal-app": (11, 1)},
    )

    assert queue_ids_using_rubric(policy=policy, routing=routing, rubric_id=10) == {1, 4}
    assert queue_ids_using_rubric(policy=policy, routing=routing, rubric_id=11) == {2}


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_recertification_inside_a_callers_transaction_waits_for_a_claim_without_holding_the_chain(tenant, workflow):
    """Inside a caller's transaction (the admin's save), events are appended at once and hold the
    chain's counter row to the end. The publication's event came first, then the expiry cancelled
    the person's live gold task: a claim holding that task, waiting for the counter row to append
    its own event, and the publication waited for each other. Every row is written first now."""
    from django.db import transaction

    from policies.services import rubric_publish
    from tests.concurrency import other_transaction
    from tests.reviews.conftest import RUBRIC

    alice = reviewer(tenant, 1, "alice")
    _gate(tenant, gold_rate=1.0, gold_window=2, gold_threshold=0.6)
    certification = _certify(tenant, alice.person)
    gold_set(tenant, count=4)
    submit(workflow, 1, "medium-app")
    real = claim(alice).json()
    assert review(alice, real["id"], decision="approve", scores=GOOD_SCORES).status_code == 201
    live = GoldTask.objects.for_tenant(tenant).get(user=alice.person, kind=GoldTaskKind.LIVE)  # planted after it
    criteria = [*RUBRIC["criteria"], {"key": "safe", "label": "Safe", "kind": "binary", "required": False}]
    claimed = [("SELECT 1 FROM reviews_reviewtask WHERE id = %s FOR NO KEY UPDATE", [live.task_id])]
    # The claim's statement moves the counter row after locking the task.
    its_event = [("UPDATE tenants_audithead SET last_seq = last_seq WHERE tenant_id = %s", [tenant.pk])]
    with other_transaction(now=claimed, then=its_event), transaction.atomic():  # as the admin's save
        rubric_publish(tenant=tenant, document={**RUBRIC, "criteria": criteria}, require_recertification=True)
    certification.refresh_from_db()
    assert certification.status == CertificationStatus.EXPIRED
    assert ReviewTask.objects.for_tenant(tenant).get(pk=live.task_id).status == TaskStatus.CANCELLED
    kinds = list(AuditEvent.objects.for_tenant(tenant).order_by("-seq").values_list("kind", flat=True)[:2])
    assert kinds == ["certification.expired", "rubric.published"]
