"""The compliance export: a seeded period, exported in both formats, matches the database row for row."""

import csv
import io
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from drf_spectacular.generators import SchemaGenerator

from policies.services import judge_create
from reviews.export import CSV_COLUMNS, _iso, csv_line, csv_record_line, csv_row, export_records
from reviews.models import Judgement, Output, Review, ReviewTask, WebhookAttempt, WebhookDelivery
from reviews.services.webhooks import webhook_endpoint_create
from tests.conftest import make_client
from tests.reviews.conftest import GOOD_SCORES, claim, review, reviewer, submit

FROM = "2000-01-01T00:00:00Z"
TO = "2100-01-01T00:00:00Z"


def _stream(response) -> bytes:
    assert response.status_code == 200, getattr(response, "content", b"")
    assert response.streaming
    return b"".join(response.streaming_content)


@pytest.fixture
def period(tenant, other_tenant, workflow):
    """A period with an approval, an escalation then a correction, a rejection, an unreviewed
    output, judge verdicts, a webhook delivered and one failing, and another tenant's output."""
    rita, junior, senior = reviewer(tenant, 1, "rita"), reviewer(tenant, 1, "junior"), reviewer(tenant, 2, "senior")
    approved = submit(workflow, 1, "medium-app")
    review(rita, claim(rita).json()["id"], decision="approve", scores=GOOD_SCORES, time_spent_seconds=42)
    escalated = submit(workflow, 2, "medium-app")
    task = claim(junior).json()
    review(junior, task["id"], decision="escalate", comment="=HYPERLINK(legal)")
    review(senior, claim(senior).json()["id"], decision="correct", scores=GOOD_SCORES, corrected_output="Fixed.")
    rejected = submit(workflow, 3, "low-app")
    review(rita, claim(rita).json()["id"], decision="reject", scores={"correct": False, "helpful": 1}, comment="no")
    quiet = submit(workflow, 4, "quiet-app", external_id="+quiet")
    judge = judge_create(tenant=tenant, data={"name": "banned", "kind": "banned", "params": {"phrases": ["x"]}})
    for output_id, result in ((approved["id"], "pass"), (quiet["id"], "fail")):
        Judgement.objects.for_tenant(tenant).create(
            output_id=output_id, judge=judge, judge_version=1, result=result, score=0.5, rationale="why"
        )
    endpoint = webhook_endpoint_create(tenant=tenant, url="http://127.0.0.1:9/hook", secret="s" * 20)
    delivered = WebhookDelivery.objects.for_tenant(tenant).create(
        endpoint=endpoint, output_id=approved["id"], payload={}, status="succeeded", attempts=2
    )
    WebhookAttempt.objects.for_tenant(tenant).create(delivery=delivered, status_code=500, error="boom")
    WebhookAttempt.objects.for_tenant(tenant).create(delivery=delivered, status_code=200)
    WebhookDelivery.objects.for_tenant(tenant).create(
        endpoint=endpoint, output_id=rejected["id"], payload={}, status="failed", attempts=8, last_error="refused"
    )
    make_client(other_tenant, "service").post(
        "/api/v1/outputs", {"external_id": "of-b", "application": "b", "input": "i", "output": "o"}, format="json"
    )
    return {"ids": [approved["id"], escalated["id"], rejected["id"], quiet["id"]]}


def _expected(tenant) -> list[dict]:
    """What the database says, read apart from the export's own queries."""
    rows = []
    for output in Output.objects.for_tenant(tenant).order_by("received_at", "id"):
        reviews = list(Review.objects.for_tenant(tenant).filter(output=output).order_by("created_at", "id"))
        tasks = list(ReviewTask.objects.for_tenant(tenant).filter(output=output).order_by("created_at", "id"))
        approval_due = min((task.due_at for task in tasks if task.purpose == "approval"), default=None)
        deliveries = list(WebhookDelivery.objects.for_tenant(tenant).filter(output=output).order_by("created_at"))
        rows.append(
            {
                "id": str(output.pk),
                "external_id": output.external_id,
                "application": output.application,
                "received_at": _iso(output.received_at),
                "tier": output.risk_tier,
                "policy_version": output.policy_version,
                "sampling_draw": output.sampling_draw,
                "sampling_reason": output.decision_reason,
                "final_decision": output.decision or None,
                "decided_by": output.decided_by.username if output.decided_by_id else None,
                "decided_at": _iso(output.decided_at),
                "digest": output.audit_digest,
                "content_hash": output.content_hash,
                "reviews": [
                    (r.reviewer.username, r.decision, r.scores, r.corrected_output or None, r.comment, r.shown)
                    for r in reviews
                ],
                "judges": [
                    (j.judge.name, j.result, j.score)
                    for j in Judgement.objects.for_tenant(tenant).filter(output=output).order_by("created_at")
                ],
                "tasks": [(str(t.pk), t.purpose, t.level_required, _iso(t.due_at)) for t in tasks],
                "deliveries": [(str(d.pk), d.status, d.attempts, d.last_error) for d in deliveries],
                "sla": "none"
                if approval_due is None
                else ("met" if output.decided_at and output.decided_at <= approval_due else "pending"),
            }
        )
    return rows


def _matches(record: dict, expected: dict) -> None:
    for key in (
        "id",
        "external_id",
        "application",
        "received_at",
        "tier",
        "policy_version",
        "sampling_draw",
        "sampling_reason",
        "final_decision",
        "decided_by",
        "decided_at",
        "content_hash",
        "digest",
        "sla",
    ):
        assert record[key] == expected[key], key
    assert [
        (r["reviewer"], r["decision"], r["scores"], r["correction"], r["comment"], r["shown"])
        for r in record["reviews"]
    ] == expected["reviews"]
    assert [(j["judge"], j["result"], j["score"]) for j in record["judges"]] == expected["judges"]
    assert [(t["id"], t["purpose"], t["level_required"], t["due_at"]) for t in record["tasks"]] == expected["tasks"]
    assert [(d["id"], d["status"], d["attempts"], d["last_error"]) for d in record["deliveries"]] == expected[
        "deliveries"
    ]


def test_jsonl_export_matches_the_database_row_for_row(tenant, period, client_for):
    auditor = client_for(tenant, "auditor")

    response = auditor.get("/api/v1/audit/export", {"from": FROM, "to": TO, "format": "jsonl"})

    assert response["Content-Type"] == "application/x-ndjson"
    records = [orjson.loads(line) for line in _stream(response).splitlines()]
    expected = _expected(tenant)
    assert [record["id"] for record in records] == period["ids"] == [row["id"] for row in expected]
    for record, row in zip(records, expected, strict=True):
        _matches(record, row)
    assert all(len(record["digest"]) == 64 for record in records)
    approved, escalated, rejected, quiet = records
    assert approved["approvals"][0]["reviewer"] == "rita" and approved["reviews"][0]["time_spent_seconds"] == 42
    assert approved["delivered_at"] == approved["deliveries"][0]["delivered_at"] is not None
    assert escalated["escalations"][0]["reviewer"] == "junior"
    assert escalated["escalations"][0]["reason"] == "=HYPERLINK(legal)"
    assert escalated["final_decision"] == "corrected" and escalated["reviews"][1]["correction"] == "Fixed."
    assert escalated["reviews"][0]["level"] == 2  # the task now asks for level 2
    assert rejected["deliveries"][0]["delivered_at"] is None and rejected["delivered_at"] is None
    assert quiet["sla"] == "none" and quiet["judges"][0]["result"] == "fail" and quiet["reviews"] == []


def test_the_stream_is_read_in_its_tenants_scope_whatever_surrounds_it(tenant, period, client_for):
    """A streamed body is iterated after the view returned, outside the request's scope: as the
    WSGI server iterates it, with no scope around (row-level security would show no row)."""
    from hitl.tenancy import no_tenant

    response = client_for(tenant, "auditor").get("/api/v1/audit/export", {"from": FROM, "to": TO, "format": "jsonl"})
    with no_tenant():
        records = [orjson.loads(line) for line in _stream(response).splitlines()]
    assert [record["id"] for record in records] == period["ids"]


def test_csv_export_opens_in_a_spreadsheet_and_matches_row_for_row(tenant, period, client_for):
    admin = client_for(tenant, "admin")

    response = admin.get("/api/v1/audit/export", {"from": FROM, "to": TO, "format": "csv"})

    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert "attachment" in response["Content-Disposition"]
    body = _stream(response)
    assert body.startswith(b"\xef\xbb\xbf")
    rows = list(csv.DictReader(io.StringIO(body.decode("utf-8-sig"))))
    expected = _expected(tenant)
    assert [row["id"] for row in rows] == [row["id"] for row in expected]
    for row, want in zip(rows, expected, strict=True):
        assert row["received_at"] == want["received_at"]
        assert row["final_decision"] == (want["final_decision"] or "")
        assert row["review_count"] == str(len(want["reviews"]))
        assert row["first_reviewer"] == (want["reviews"][0][0] if want["reviews"] else "")
        assert row["sla"] == want["sla"]
        assert [item["id"] for item in orjson.loads(row["tasks"])] == [task[0] for task in want["tasks"]]
        assert [r["scores"] for r in orjson.loads(row["reviews"])] == [r[2] for r in want["reviews"]]
    assert rows[3]["external_id"] == "'+quiet"  # formula injection guarded
    escalations = orjson.loads(rows[1]["escalations"])  # a JSON cell starts with [ and is kept as is
    assert escalations[0]["reason"] == "=HYPERLINK(legal)" and rows[1]["escalation_count"] == "1"


def test_export_reads_in_chunks_with_one_query_per_kind(tenant, period, monkeypatch):
    monkeypatch.setattr("reviews.export.EXPORT_CHUNK", 2)
    start, end = datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC)

    with CaptureQueriesContext(connection) as queries:
        records = list(export_records(tenant=tenant, start=start, end=end, using="default"))

    assert len(records) == 4
    sqls = [query["sql"] for query in queries.captured_queries]
    # Two chunks of two outputs: one query per kind and chunk, none per output.
    for table in ("reviews_judgement", "reviews_reviewtask", "reviews_review", "reviews_webhookdelivery"):
        assert len([sql for sql in sqls if f'FROM "{table}"' in sql]) == 2, table
    assert all(len(csv_row(record)) == len(CSV_COLUMNS) for record in records)
    # The fast line writer writes what the general one (and the standard library's) would.
    assert [csv_record_line(record) for record in records] == [csv_line(csv_row(record)) for record in records]
    written = io.StringIO()
    csv.writer(written).writerows(csv_row(record) for record in records)
    assert "".join(csv_record_line(record) for record in records) == written.getvalue()


def test_the_repeated_cells_are_guarded_and_quoted_as_any_other_also_when_seen_again(tenant, period):
    """The cells whose values repeat across rows (application, tiers, reasons, people) are written once
    per distinct value and looked up after: the same guard against formulas, the same quoting."""
    start, end = datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC)
    record = next(iter(export_records(tenant=tenant, start=start, end=end, using="default")))
    hostile = {  # value -> the cell a spreadsheet reads
        "application": ("=cmd|' /C calc'!A0", "'=cmd|' /C calc'!A0"),
        "tier": ('high, "urgent"', 'high, "urgent"'),
        "sampling_reason": ("rule\nmatched", "rule\nmatched"),
        "received_tier": ("+1", "'+1"),
        "received_reason": ("-2", "'-2"),
        "decided_by": ("@admin", "'@admin"),
    }
    for _ in range(2):  # the second time from what the first wrote
        for key, (value, cell) in hostile.items():
            changed = {**record, key: value}
            line = csv_record_line(changed)
            assert line == csv_line(csv_row(changed))
            assert next(csv.reader(io.StringIO(line)))[CSV_COLUMNS.index(key)] == cell


def test_the_period_is_half_open_and_by_time_of_receipt(tenant, period, client_for):
    Output.objects.for_tenant(tenant).filter(pk=period["ids"][0]).update(
        received_at=timezone.now() - timedelta(days=10)
    )
    start = (timezone.now() - timedelta(days=1)).isoformat()
    end = (timezone.now() + timedelta(days=1)).isoformat()

    response = client_for(tenant, "auditor").get("/api/v1/audit/export", {"from": start, "to": end, "format": "jsonl"})

    assert [orjson.loads(line)["id"] for line in _stream(response).splitlines()] == period["ids"][1:]


def test_another_tenants_auditor_exports_nothing_of_this_tenant(tenant, other_tenant, period, client_for):
    response = client_for(other_tenant, "auditor").get("/api/v1/audit/export", {"from": FROM, "to": TO})

    rows = list(csv.DictReader(io.StringIO(_stream(response).decode("utf-8-sig"))))
    assert [row["external_id"] for row in rows] == ["of-b"]
    assert not set(period["ids"]) & {row["id"] for row in rows}


@pytest.mark.parametrize(
    ("query", "status", "field"),
    [
        ({}, 400, "from"),
        ({"from": "yesterday", "to": TO}, 400, "from"),
        ({"from": "2026-01-01T00:00:00", "to": TO}, 400, "from"),  # no offset
        ({"from": FROM, "to": "2026-13-01T00:00:00Z"}, 422, "to"),
        ({"from": TO, "to": FROM}, 422, "to"),
        ({"from": FROM, "to": TO, "format": "xlsx"}, 400, "format"),
    ],
)
def test_bad_periods_are_named(tenant, client_for, query, status, field):
    response = client_for(tenant, "auditor").get("/api/v1/audit/export", query)

    assert response.status_code == status
    assert response["Content-Type"] == "application/json"
    assert field in response.json()["fields"]


def test_the_format_parameter_is_not_taken_for_a_renderer(tenant, client_for):
    response = client_for(tenant, "auditor").get(
        "/api/v1/audit/export", {"from": FROM, "to": TO, "format": "jsonl"}, HTTP_ACCEPT="text/csv"
    )

    assert _stream(response) == b""


def test_the_schema_documents_the_streamed_formats():
    paths = SchemaGenerator().get_schema(request=None, public=True)["paths"]

    export = paths["/api/v1/audit/export"]["get"]
    assert set(export["responses"]["200"]["content"]) == {"text/csv", "application/x-ndjson"}
    assert {parameter["name"] for parameter in export["parameters"] if parameter.get("required")} == {"from", "to"}
    assert set(export["responses"]) >= {"200", "400", "401", "403", "422"}
    download = paths["/api/v1/audit/exports/{export_id}/download"]["get"]
    assert set(download["responses"]["200"]["content"]) == {"application/zip"}
