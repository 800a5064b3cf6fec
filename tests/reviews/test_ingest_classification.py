"""An output whose tier or reason changed after ingest (the judges' completion) still proves itself.

The output's audit digest covers its classification at ingest. The judges' completion sets a new
tier and reason, so the ingest's are kept (``Output.received_risk_tier`` and
``received_decision_reason``), and the story page, the export and the offline verifier recompute
the digest from them. Before they were kept, every judged output of a tenant with judges showed
"NOT committed" on its story and failed the bundle's verification.
"""

import csv
import io
import zipfile
from datetime import datetime

import pytest

from policies.services import judge_create, policy_publish
from reviews.audit_selectors import audit_output_story, audit_output_trail
from reviews.bundle import compliance_export_build
from reviews.export import export_records
from reviews.models import Output
from reviews.services.ingest import output_audit_digest_of
from tenants import auditchain
from tests.conftest import make_client
from tests.factories import output_payload
from tests.reviews.test_export import FROM, TO

POLICY = {
    "default_tier": "low",
    "tiers": [
        {"name": "low", "review_rate": 0.0, "mode": "parallel", "sla_minutes": 600},
        {"name": "critical", "review_rate": 1.0, "mode": "sequential", "sla_minutes": 30},
    ],
}
CARD = "Your card 4242 4242 4242 4242 is on file."


@pytest.fixture
def judged(tenant, django_capture_on_commit_callbacks):
    """Two outputs judged by a PII check that raises the tier on a failure: one fails (tier and
    reason change), one passes (the reason changes); and one submitted before any judge existed."""
    policy_publish(tenant=tenant, document=POLICY)
    service = make_client(tenant, "service")
    plain = service.post("/api/v1/outputs", output_payload(0, output="No judge yet."), format="json").json()
    judge_create(tenant=tenant, data={"name": "pii", "kind": "pii", "on_fail": "raise_tier", "raise_to": "critical"})
    ids = [plain["id"]]
    for number, text in ((1, CARD), (2, "All good.")):
        with django_capture_on_commit_callbacks(execute=True):  # the judges run on commit, in-process
            response = service.post("/api/v1/outputs", output_payload(number, output=text), format="json")
        assert response.status_code == 201, response.content
        ids.append(response.json()["id"])
    return {pk: Output.unscoped.get(pk=pk) for pk in ids}, ids


def test_the_judges_change_the_tier_and_reason_and_the_ingest_classification_is_kept(judged):
    outputs, (plain_id, failed_id, passed_id) = judged
    failed, passed, plain = outputs[failed_id], outputs[passed_id], outputs[plain_id]
    assert failed.risk_tier == "critical" and "tier raised from low to critical" in failed.decision_reason
    assert failed.received_risk_tier == "low" and "waiting for judges" in failed.received_decision_reason
    assert passed.risk_tier == "low" and passed.received_risk_tier == "low"
    assert "waiting for judges" in passed.received_decision_reason and passed.judged_at is not None
    assert (plain.received_risk_tier, plain.received_decision_reason) == (None, None)  # unchanged: nothing kept
    for output in outputs.values():
        assert output.audit_digest == output_audit_digest_of(output)


def test_keeping_the_ingest_classification_keeps_the_first_one():
    output = Output(risk_tier="low", decision_reason="sampled: no")
    assert output.ingest_classification == ("low", "sampled: no")
    output.keep_ingest_classification()
    output.risk_tier, output.decision_reason = "critical", "judges: raised"
    output.keep_ingest_classification()  # a later change keeps the ingest's, not the judges'
    output.decision_reason += "; adjudicated: approved"
    assert output.ingest_classification == ("low", "sampled: no")


def test_each_judged_output_s_story_says_it_is_committed_to_the_chain(tenant, judged):
    outputs, ids = judged
    for pk in ids:
        trail = audit_output_trail(tenant=tenant, output=outputs[pk])
        assert trail["commitment"]["committed"], (pk, trail["commitment"])
    story = audit_output_story(tenant=tenant, output_id=ids[1])
    kinds = [(event.kind, event.data.get("tier_name")) for event in story["events"]]
    assert ("classified", "low") in kinds and ("reclassified", "critical") in kinds


def test_the_export_carries_the_ingest_classification_and_each_record_recomputes_its_digest(tenant, judged):
    outputs, ids = judged
    records = {record["id"]: record for record in export_records(tenant=tenant, start=_at(FROM), end=_at(TO))}
    failed = records[ids[1]]
    assert (failed["tier"], failed["received_tier"]) == ("critical", "low")
    assert "waiting for judges" in failed["received_reason"]
    assert (records[ids[0]]["received_tier"], records[ids[0]]["received_reason"]) == (None, None)
    for pk in ids:
        assert auditchain.output_record_digest(records[pk], tenant.slug) == outputs[pk].audit_digest


def test_a_bundle_of_judged_outputs_verifies_offline(tenant, judged, client_for, tmp_path):
    outputs, ids = judged
    auditor = client_for(tenant, "auditor")
    started = auditor.post("/api/v1/audit/exports", {"from": FROM, "to": TO}, format="json")
    assert started.status_code == 202, started.content
    compliance_export_build(export_id=started.json()["id"])  # (the task the commit enqueues, run here)
    status = auditor.get(f"/api/v1/audit/exports/{started.json()['id']}").json()
    assert status["status"] == "done", status
    path = tmp_path / "bundle.zip"
    path.write_bytes(b"".join(auditor.get(status["download"]).streaming_content))
    public = auditor.get("/api/v1/audit/public-key").json()["public_key"]

    report = auditchain.verify_bundle(str(path), public)
    assert report.problems == [], report.problems
    with zipfile.ZipFile(path) as bundle:
        rows = list(csv.DictReader(io.StringIO(bundle.read("outputs.csv").decode("utf-8-sig"))))
    by_id = {row["id"]: row for row in rows}
    assert by_id[ids[1]]["received_tier"] == "low" and by_id[ids[0]]["received_tier"] == ""
    for pk in ids:
        typed = auditchain.csv_record(by_id[pk])
        assert auditchain.output_record_digest(typed, tenant.slug) == outputs[pk].audit_digest


def test_a_changed_ingest_classification_in_an_export_is_caught(tenant, judged):
    outputs, ids = judged
    record = next(r for r in export_records(tenant=tenant, start=_at(FROM), end=_at(TO)) if r["id"] == ids[1])
    assert auditchain.output_record_digest(record, tenant.slug) == outputs[ids[1]].audit_digest
    forged = {**record, "received_tier": "critical"}  # someone claims the judges' tier was the ingest's
    assert auditchain.output_record_digest(forged, tenant.slug) != outputs[ids[1]].audit_digest
    dropped = {key: value for key, value in record.items() if key not in ("received_tier", "received_reason")}
    assert auditchain.output_record_digest(dropped, tenant.slug) != outputs[ids[1]].audit_digest


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_an_end_users_thumbs_down_keeps_the_ingest_classification(tenant):
    """A thumbs-down on an output nobody had to review opens a task and adds to its reason."""
    policy_publish(tenant=tenant, document=POLICY)  # rate 0 at its default tier: never sampled at ingest
    service = make_client(tenant, "service")
    body = service.post("/api/v1/outputs", output_payload(7, application="quiet-app"), format="json").json()
    down = service.post(f"/api/v1/outputs/{body['id']}/feedback", {"rating": "down"}, format="json")
    assert down.status_code in (200, 201) and down.json()["review_task_created"] is True
    output = Output.unscoped.get(pk=body["id"])
    assert "thumbs-down" in output.decision_reason and "thumbs-down" not in output.received_decision_reason
    assert audit_output_trail(tenant=tenant, output=output)["commitment"]["committed"]
    [record] = [r for r in export_records(tenant=tenant, start=_at(FROM), end=_at(TO)) if r["id"] == body["id"]]
    assert auditchain.output_record_digest(record, tenant.slug) == output.audit_digest


def test_outputs_changed_before_the_classification_was_kept_get_it_back_from_their_digest(tenant, other_tenant, judged):
    """As after an upgrade past reviews 0021: the kept values of judged outputs (this tenant) and of
    a thumbs-down's (another tenant, without judges) are gone (null)."""
    from django.core.management import call_command

    from tenants.audit import audit_verify
    from tenants.models import AuditEvent

    _, ids = judged
    policy_publish(tenant=other_tenant, document=POLICY)  # rate 0 at its default tier: never sampled at ingest
    service = make_client(other_tenant, "service")
    quiet = service.post("/api/v1/outputs", output_payload(8, application="quiet-app"), format="json").json()
    assert service.post(f"/api/v1/outputs/{quiet['id']}/feedback", {"rating": "down"}, format="json").json()[
        "review_task_created"
    ]
    changed = [ids[1], ids[2], quiet["id"]]
    rows = Output.unscoped.filter(pk__in=changed).values_list("pk", "received_risk_tier", "received_decision_reason")
    kept = {str(pk): (tier, reason) for pk, tier, reason in rows}
    assert all(reason for _, reason in kept.values())
    Output.unscoped.filter(pk__in=changed).update(received_risk_tier=None, received_decision_reason=None)
    for pk in changed:
        output = Output.unscoped.select_related("tenant").get(pk=pk)
        assert not audit_output_trail(tenant=output.tenant, output=output)["commitment"]["committed"]

    out = io.StringIO()
    call_command("backfill_ingest_classification", tenant.slug, other_tenant.slug, stdout=out)
    assert f"{tenant.slug}: " in out.getvalue() and "2 kept again, 0 whose" in out.getvalue()
    assert "1 kept again, 0 whose" in out.getvalue()
    for pk in changed:
        output = Output.unscoped.select_related("tenant").get(pk=pk)
        assert (output.received_risk_tier, output.received_decision_reason) == kept[pk]
        assert audit_output_trail(tenant=output.tenant, output=output)["commitment"]["committed"]
    assert Output.unscoped.get(pk=ids[1]).received_risk_tier == "low"  # before the judges raised it
    assert Output.unscoped.get(pk=ids[0]).received_risk_tier is None  # never changed: nothing kept
    [event] = AuditEvent.objects.for_tenant(tenant).filter(kind="output.classification_kept")
    assert event.data["count"] == 2 and sorted(event.data["ids"]) == sorted(str(pk) for pk in ids[1:])
    assert audit_verify(tenant).ok and audit_verify(other_tenant).ok
    again = io.StringIO()
    call_command("backfill_ingest_classification", stdout=again)  # every tenant; nothing left to do
    assert "kept again" in again.getvalue() and " 1 kept again" not in again.getvalue()
    assert " 2 kept again" not in again.getvalue()
