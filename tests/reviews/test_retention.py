"""Retention: the job redacts exactly what is past the tenant's period, in bulk, keeps every
digest, respects legal holds, is idempotent, and never goes below six months."""

from datetime import timedelta

import pytest
from django.db import IntegrityError, connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from hitl.errors import RuleViolationError
from policies.models import RETENTION_DEFAULT_DAYS, RETENTION_MIN_DAYS, Retention
from policies.retention import (
    legal_hold_place,
    legal_hold_release,
    retention_cutoff,
    retention_days,
    retention_set,
)
from policies.services import judge_create
from reviews.models import Feedback, Judgement, Output, Review, WebhookDelivery, WebhookEndpoint
from reviews.services.retention import REDACTED_WEBHOOK_PAYLOAD, retention_apply, retention_apply_all
from tests.reviews.conftest import GOOD_SCORES, claim, review, reviewer, submit

pytestmark = pytest.mark.django_db
NOW = timezone.now()


def aged(output_id, days: float):
    Output.unscoped.filter(pk=output_id).update(received_at=NOW - timedelta(days=days))


def make_outputs(workflow, ages: dict[str, float], application="medium-app") -> dict[str, str]:
    ids = {}
    for number, (name, days) in enumerate(ages.items(), start=1):
        ids[name] = submit(workflow, f"{name}-{number}", application)["id"]
        aged(ids[name], days)
    return ids


def payload_of(output_id):
    return Output.unscoped.values("input", "output", "trace", "final_output", "redacted_at", "content_hash").get(
        pk=output_id
    )


def test_the_job_redacts_exactly_what_is_older_than_the_period_and_keeps_the_digests(tenant, workflow):
    retention_set(tenant=tenant, days=200)
    ids = make_outputs(workflow, {"old": 200.01, "older": 400, "young": 199.99, "new": 0})
    before = {name: payload_of(output_id) for name, output_id in ids.items()}

    run = retention_apply(tenant=tenant, now=NOW)

    assert run.redacted == 2 and run.cutoff == NOW - timedelta(days=200)
    for name in ("old", "older"):
        after = payload_of(ids[name])
        assert (after["input"], after["output"], after["trace"]) == ("", "", [])
        assert after["redacted_at"] == NOW
        assert after["content_hash"] == before[name]["content_hash"]  # the digest stays
    for name in ("young", "new"):
        assert payload_of(ids[name]) == before[name]


def test_reviews_feedback_and_deliveries_of_a_redacted_output_lose_their_text(tenant, workflow):
    person = reviewer(tenant, 2, "rita")
    output_id = submit(workflow, "corrected", "medium-app")["id"]
    task = claim(person).json()
    response = review(
        person, task["id"], decision="correct", scores=GOOD_SCORES, corrected_output="Better.", comment="PII inside"
    )
    assert response.status_code == 201, response.content
    endpoint = WebhookEndpoint.objects.for_tenant(tenant).create(url="https://hooks.example.com/x", secret="s" * 32)
    WebhookDelivery.objects.for_tenant(tenant).create(
        endpoint=endpoint, output_id=output_id, payload={"output": {"final_output": "Better."}}, status="succeeded"
    )
    workflow["service"].post(
        f"/api/v1/outputs/{output_id}/feedback", {"rating": "down", "comment": "bad"}, format="json"
    )
    judge = judge_create(tenant=tenant, data={"name": "pii", "kind": "pii", "on_fail": "record"})
    Judgement.objects.for_tenant(tenant).create(
        output_id=output_id, judge=judge, judge_version=1, result="fail", score=0.2, rationale="quotes 'PII inside'"
    )
    aged(output_id, 400)
    kept = submit(workflow, "kept", "medium-app")["id"]

    retention_apply(tenant=tenant, now=NOW)

    assert payload_of(output_id)["final_output"] == ""
    written = Review.unscoped.get(output_id=output_id)
    assert (written.corrected_output, written.comment, written.decision) == ("", "", "correct")
    assert written.scores  # scores and decisions are kept: the story is told without the content
    assert list(Feedback.unscoped.filter(output_id=output_id).values_list("comment", "rating")) == [("", "down")]
    assert [d.payload for d in WebhookDelivery.unscoped.filter(output_id=output_id)] == [REDACTED_WEBHOOK_PAYLOAD]
    assert list(Judgement.unscoped.filter(output_id=output_id).values_list("rationale", "result", "score")) == [
        ("", "fail", 0.2)
    ]
    assert payload_of(kept)["redacted_at"] is None


def test_legal_holds_on_an_application_and_on_a_period_suspend_it_until_released(tenant, workflow):
    retention_set(tenant=tenant, days=RETENTION_MIN_DAYS)
    held_app = make_outputs(workflow, {"a1": 300, "a2": 500}, application="high-app")
    other = make_outputs(workflow, {"b1": 300, "b2": 500, "b3": 700}, application="medium-app")
    legal_hold_place(tenant=tenant, application="high-app", reason="litigation 42")
    period = legal_hold_place(
        tenant=tenant,
        received_from=NOW - timedelta(days=600),
        received_until=NOW - timedelta(days=400),
        reason="regulator's inquiry",
    )

    assert retention_apply(tenant=tenant, now=NOW).redacted == 2  # b1 and b3; b2 lies in the held period
    assert [payload_of(other[name])["redacted_at"] is not None for name in ("b1", "b2", "b3")] == [True, False, True]
    assert all(payload_of(output_id)["redacted_at"] is None for output_id in held_app.values())

    legal_hold_release(tenant=tenant, hold_id=period.pk, reason="inquiry closed")
    assert retention_apply(tenant=tenant, now=NOW).redacted == 1  # b2, behind the watermark of the first run
    assert payload_of(other["b2"])["redacted_at"] is not None
    assert all(payload_of(output_id)["redacted_at"] is None for output_id in held_app.values())


def test_the_job_is_idempotent_and_bulk(tenant, workflow):
    retention_set(tenant=tenant, days=RETENTION_MIN_DAYS)
    make_outputs(workflow, {f"o{n}": 300 + n for n in range(7)})

    with CaptureQueriesContext(connection) as captured:
        first = retention_apply(tenant=tenant, now=NOW, batch_size=3)
    three_batches = len(captured)  # counted now: a later request resets the connection's log
    assert (first.redacted, first.batches) == (7, 3)
    with CaptureQueriesContext(connection) as captured:
        second = retention_apply(tenant=tenant, now=NOW, batch_size=3)
    nothing_to_do = len(captured)
    assert (second.redacted, second.batches) == (0, 0)
    assert retention_apply_all(now=NOW + timedelta(hours=1)) == 0

    # A constant number of statements per batch, whatever its size: never one per output.
    make_outputs(workflow, {f"p{n}": 300 + n for n in range(7)})
    Retention.objects.for_tenant(tenant).update(redacted_through=None)
    with CaptureQueriesContext(connection) as captured:
        assert retention_apply(tenant=tenant, now=NOW, batch_size=100).redacted == 7
    one_batch = len(captured)
    per_batch = (three_batches - one_batch) / 2
    assert one_batch - nothing_to_do == per_batch  # a batch of 7 outputs costs what a batch of 3 does
    assert per_batch <= 16  # pick, lock, five UPDATEs, the audit append, savepoints


def test_never_below_six_months(tenant, workflow):
    with pytest.raises(RuleViolationError) as refused:
        retention_set(tenant=tenant, days=RETENTION_MIN_DAYS - 1)
    assert "days" in refused.value.fields
    assert retention_days(tenant=tenant) == RETENTION_DEFAULT_DAYS == 365
    retention_set(tenant=tenant, days=RETENTION_MIN_DAYS)
    with pytest.raises(IntegrityError), transaction.atomic():
        Retention.objects.for_tenant(tenant).update(days=30)  # the table refuses it too
    assert retention_cutoff(days=30, now=NOW) == NOW - timedelta(days=RETENTION_MIN_DAYS)
    ids = make_outputs(workflow, {"five-months": 150, "seven-months": 213})
    retention_apply(tenant=tenant, now=NOW)
    assert payload_of(ids["five-months"])["redacted_at"] is None
    assert payload_of(ids["seven-months"])["redacted_at"] is not None


def test_a_tenant_without_a_setting_keeps_the_default_and_others_are_untouched(tenant, other_tenant, workflow):
    ids = make_outputs(workflow, {"year-old": 366, "half-year": 200})
    retention_set(tenant=other_tenant, days=RETENTION_MIN_DAYS)

    assert retention_apply_all(now=NOW) == 1
    assert payload_of(ids["year-old"])["redacted_at"] is not None
    assert payload_of(ids["half-year"])["redacted_at"] is None  # 365 days for this tenant, not the other's 183
    # The default made explicit for the job's watermark is a configuration change like any other: audited once.
    from tenants.models import AuditEvent

    [made] = AuditEvent.objects.for_tenant(tenant).filter(kind="retention.set")
    assert made.actor_role == "system" and made.data["after"] == {"days": 365} and made.data["before"] == {"days": None}
    retention_apply_all(now=NOW)
    assert AuditEvent.objects.for_tenant(tenant).filter(kind="retention.set").count() == 1


def test_redaction_is_one_audit_event_per_batch_and_the_chain_still_verifies(tenant, workflow):
    from tenants.audit import audit_verify
    from tenants.auditchain import merkle_root
    from tenants.models import AuditEvent

    admin = reviewer(tenant, 1, "ada").person
    retention_set(tenant=tenant, days=RETENTION_MIN_DAYS, user=admin, reason="shortest the law allows")
    ids = make_outputs(workflow, {f"o{n}": 300 + n for n in range(5)})
    digests = dict(Output.unscoped.filter(pk__in=ids.values()).values_list("pk", "audit_digest"))
    hold = legal_hold_place(tenant=tenant, application="nothing-app", reason="to see it in the chain", user=admin)
    legal_hold_release(tenant=tenant, hold_id=hold.pk, reason="done", user=admin)

    run = retention_apply(tenant=tenant, now=NOW, batch_size=2)

    events = list(AuditEvent.objects.for_tenant(tenant).filter(kind="output.redacted").order_by("seq"))
    assert len(events) == run.batches == 3 and sum(event.data["count"] for event in events) == 5
    for event in events:  # each commits to the digests the outputs keep
        assert event.data["root"] == merkle_root(digests[uuid] for uuid in map(_uuid, event.data["ids"]))
        assert event.actor_role == "system" and event.data["retention_days"] == RETENTION_MIN_DAYS
    assert dict(Output.unscoped.filter(pk__in=ids.values()).values_list("pk", "audit_digest")) == digests
    kinds = list(AuditEvent.objects.for_tenant(tenant).values_list("kind", flat=True))
    assert {"retention.set", "legal_hold.placed", "legal_hold.released"} <= set(kinds)
    setting = AuditEvent.objects.for_tenant(tenant).get(kind="retention.set")
    assert setting.actor_person_id == admin.pk and setting.data["after"] == {"days": RETENTION_MIN_DAYS}
    assert audit_verify(tenant).ok


def _uuid(text):
    import uuid

    return uuid.UUID(text)
