"""Golden sets over the API: promote a reviewed output, import JSONL (line-numbered errors, all
or nothing), versions, the streamed and audited export; certifications and exams by role."""

import orjson
import pytest

from reviews.models import GoldItem, Queue
from tenants.models import AuditEvent
from tests.conftest import make_client
from tests.reviews.conftest import GOOD_SCORES, claim, review, reviewer, submit

pytestmark = pytest.mark.django_db
JSONL = "application/x-ndjson"


def _line(**overrides):
    line = {
        "application": "medium-app",
        "input": "What is 2+2?",
        "output": "4",
        "rubric": "quality",
        "expected_decision": "approve",
        "expected_scores": GOOD_SCORES,
    }
    line.update(overrides)
    return orjson.dumps(line).decode()


@pytest.fixture
def lead(tenant, workflow):
    client = make_client(tenant, "quality_lead")
    golden = client.post("/api/v1/golden-sets", {"name": "gold", "queue": "default"}, format="json")
    assert golden.status_code == 201, golden.content
    client.golden_set = golden.json()["id"]
    return client


def _import(client, text):
    return client.generic("POST", f"/api/v1/golden-sets/{client.golden_set}/import", text.encode(), content_type=JSONL)


def test_an_import_is_one_version_and_the_export_gives_it_back(lead, tenant):
    response = _import(lead, "\n".join([_line(), "", _line(output="5", expected_decision="reject")]) + "\n")

    assert response.status_code == 201, response.content
    assert response.json() == {"golden_set": lead.golden_set, "version": 1, "imported": 2}
    export = lead.get(f"/api/v1/golden-sets/{lead.golden_set}/export")
    assert export.status_code == 200 and export["Content-Type"] == JSONL
    lines = [orjson.loads(line) for line in b"".join(export.streaming_content).splitlines()]
    assert [(line["output"], line["expected_decision"], line["added_in"]) for line in lines] == [
        ("4", "approve", 1),
        ("5", "reject", 1),
    ]
    assert AuditEvent.objects.for_tenant(tenant).filter(kind="golden_set.exported").exists()
    # What an export gives, an import reads again (less the export's own keys).
    again = "\n".join(
        orjson.dumps({k: v for k, v in line.items() if k not in {"id", "added_in", "source_output"}}).decode()
        for line in lines
    )
    assert _import(lead, again).json()["version"] == 2


def test_import_errors_name_each_line_and_nothing_is_stored(lead, tenant):
    text = "\n".join(
        [
            _line(),
            "{not json",
            _line(expected_decision="maybe"),
            _line(expected_scores={"correct": "yes", "helpful": 4}),
            _line(rubric="nope"),
            _line(expected_decision="correct"),
            "[1, 2]",
        ]
    )

    response = _import(lead, text)

    assert response.status_code == 400
    body = response.json()
    assert "Nothing was imported: 6 errors" in body["message"]
    fields = body["fields"]
    assert "line 2" in fields and "not JSON" in fields["line 2"][0]
    assert "line 3: expected_decision" in fields
    assert fields["line 4: expected_scores.correct"] == ["Must be true or false."]
    assert "line 5: rubric" in fields
    assert "line 6: expected_output" in fields
    assert fields["line 7"] == ["must be a JSON object"]
    assert not GoldItem.objects.for_tenant(tenant).exists()
    assert lead.get(f"/api/v1/golden-sets/{lead.golden_set}").json()["version"] == 0


def test_an_import_must_be_json_lines(lead):
    response = lead.post(f"/api/v1/golden-sets/{lead.golden_set}/import", {"a": 1}, format="json")

    assert response.status_code == 415


def test_promote_a_reviewed_output_then_remove_it_in_a_new_version(lead, tenant, workflow):
    alice = reviewer(tenant, 1, "alice")
    output = submit(workflow, 1, "medium-app")
    task = claim(alice).json()
    review(alice, task["id"], decision="correct", corrected_output="Better.", scores=GOOD_SCORES)
    path = f"/api/v1/golden-sets/{lead.golden_set}/items"

    unreviewed = submit(workflow, 2, "medium-app")
    refused = lead.post(path, {"output_id": unreviewed["id"]}, format="json")
    promoted = lead.post(path, {"output_id": output["id"], "note": "a classic"}, format="json")

    assert refused.status_code == 422 and "output_id" in refused.json()["fields"]
    assert promoted.status_code == 201, promoted.content
    item = promoted.json()
    assert (item["expected_decision"], item["expected_output"], item["expected_scores"]) == (
        "correct",
        "Better.",
        GOOD_SCORES,
    )
    assert (item["source_output"], item["rubric"], item["added_in"]) == (output["id"], "quality", 1)
    removed = lead.delete(f"{path}/{item['id']}")
    assert removed.json()["version"] == 2 and removed.json()["items"] == 0
    assert lead.get(path, {"version": 1}).json()["results"][0]["id"] == item["id"]
    assert lead.get(path).json() == {"version": 2, "results": []}


def test_a_reviewer_sees_only_their_own_certifications_and_exams(lead, tenant, workflow):
    alice = reviewer(tenant, 1, "alice")
    bob = reviewer(tenant, 1, "bob")
    lead.put("/api/v1/queues/default/certification", {"requires_certification": True, "exam_items": 2}, format="json")
    _import(lead, "\n".join([_line(), _line(output="5")]))

    started = alice.post("/api/v1/exams", {"queue": "default"}, format="json")
    again = alice.post("/api/v1/exams", {"queue": "default"}, format="json")

    assert started.status_code == 201, started.content
    assert started.json()["items_correct"] is None
    assert again.status_code == 409
    for _ in range(2):
        task = claim(alice).json()
        review(alice, task["id"], decision="approve", scores=GOOD_SCORES)
    mine = alice.get("/api/v1/exams").json()["results"]
    assert [(exam["status"], exam["items_correct"], exam["score"]) for exam in mine] == [("passed", 2, 1.0)]
    assert bob.get("/api/v1/exams").json()["results"] == []
    assert [c["person"] for c in alice.get("/api/v1/certifications").json()["results"]] == ["alice"]
    assert bob.get("/api/v1/certifications").json()["results"] == []
    everyone = lead.get("/api/v1/certifications").json()["results"]
    assert [(c["person"], c["queue"], c["status"]) for c in everyone] == [("alice", "default", "active")]
    rules = lead.get("/api/v1/queues/default/certification").json()
    assert rules["requires_certification"] is True and rules["exam_items"] == 2
    assert Queue.objects.for_tenant(tenant).get(name="default").requires_certification
