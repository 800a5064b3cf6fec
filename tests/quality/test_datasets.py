"""Fine-tuning datasets from reviewed outputs: formats line by line, filters, streaming, redaction, audit, isolation."""

from datetime import timedelta

import orjson
import pytest
from django.utils import timezone

from hitl.tenancy import no_tenant
from quality.datasets import LINES_PER_CHUNK, DatasetFilter, dataset_lines
from reviews.models import Output
from reviews.services.retention import retention_apply
from tenants.models import AuditEvent
from tests.conftest import make_client
from tests.pages import member, signed_in
from tests.reviews.conftest import GOOD_SCORES, claim, review, reviewer, submit
from tests.reviews.conftest import workflow as workflow  # the fixture, shared with the review tests

URL = "/api/v1/datasets/fine-tuning"
CONVERSATION = [
    {"role": "system", "content": "You are a support agent."},
    {"role": "developer", "content": "Be brief."},
    {"role": "user", "content": "Where is my parcel?"},
    {"role": "tool", "content": "tracking: in transit"},
]


def lines_of(response) -> list[dict]:
    assert response.status_code == 200, response.content
    assert response.streaming and response["Content-Type"] == "application/x-ndjson"
    body = b"".join(response.streaming_content)
    assert body == b"" or body.endswith(b"\n")
    return [orjson.loads(line) for line in body.splitlines()]


def decide_by_review(tenant, workflow, number, application, decision, **overrides):
    """Submit one output and have a level-3 reviewer decide it through the API."""
    output = submit(workflow, number, application, **overrides)
    person = reviewer(tenant, 3, f"rev-{number}")
    task = claim(person).json()
    assert task["output"]["id"] == output["id"]
    body = {"decision": decision, "scores": GOOD_SCORES}
    if decision == "correct":
        body["corrected_output"] = f"Corrected answer {number}."
    assert review(person, task["id"], **body).status_code == 201
    return output["id"]


@pytest.fixture
def reviewed(tenant, workflow):
    """Outputs of tenant A decided by people: corrected (three inputs' shapes), approved, rejected."""
    ids = {
        "corrected": decide_by_review(tenant, workflow, 1, "medium-app", "correct"),
        "conversation": decide_by_review(tenant, workflow, 2, "medium-app", "correct", input=CONVERSATION),
        "object": decide_by_review(tenant, workflow, 3, "high-app", "correct", input={"ticket": 7, "text": "Hi"}),
        "approved": decide_by_review(tenant, workflow, 4, "medium-app", "approve"),
        "rejected": decide_by_review(tenant, workflow, 5, "medium-app", "reject"),
        "pending": submit(workflow, 6, "medium-app")["id"],
    }
    return ids


@pytest.fixture
def lead(tenant):
    return make_client(tenant, "quality_lead")


def test_chat_lines_end_with_the_correction_as_the_assistant_turn(tenant, reviewed, lead):
    lines = lines_of(lead.get(URL, {"format": "chat"}))

    assert lines == [
        {
            "messages": [
                {"role": "user", "content": "Question 1?"},
                {"role": "assistant", "content": "Corrected answer 1."},
            ]
        },
        {
            "messages": [
                {"role": "system", "content": "You are a support agent."},
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Where is my parcel?"},
                {"role": "assistant", "content": "Corrected answer 2."},
            ]
        },
        {
            "messages": [
                {"role": "user", "content": '{"text":"Hi","ticket":7}'},  # keys sorted, whatever the database keeps
                {"role": "assistant", "content": "Corrected answer 3."},
            ]
        },
    ]


def test_approved_outputs_join_the_chat_dataset_when_asked_and_rejected_ones_never(tenant, reviewed, lead):
    lines = lines_of(lead.get(URL, {"format": "chat", "decision": ["approved", "corrected"]}))
    assert [line["messages"][-1]["content"] for line in lines] == [
        "Corrected answer 1.",
        "Corrected answer 2.",
        "Corrected answer 3.",
        "Answer 4.",  # approved as it was: the output itself
    ]
    refused = lead.get(URL, {"format": "chat", "decision": "rejected"})
    assert refused.status_code == 400 and "decision.0" in refused.json()["fields"]


def test_preference_pairs_put_the_correction_over_the_original(tenant, reviewed, lead):
    lines = lines_of(lead.get(URL, {"format": "preference"}))

    assert lines[0] == {
        "input": {"messages": [{"role": "user", "content": "Question 1?"}]},
        "preferred_output": [{"role": "assistant", "content": "Corrected answer 1."}],
        "non_preferred_output": [{"role": "assistant", "content": "Answer 1."}],
    }
    assert [set(line) for line in lines] == [{"input", "preferred_output", "non_preferred_output"}] * 3
    refused = lead.get(URL, {"format": "preference", "decision": "approved"})
    assert refused.status_code == 422 and "corrected outputs only" in refused.json()["message"]


def test_filters_by_application_tier_and_period(tenant, reviewed, lead):
    def contents(**params):
        return [line["messages"][-1]["content"] for line in lines_of(lead.get(URL, params))]

    assert contents(application="high-app") == ["Corrected answer 3."]
    assert contents(tier="medium") == ["Corrected answer 1.", "Corrected answer 2."]
    assert contents(tier="medium,high") == ["Corrected answer 1.", "Corrected answer 2.", "Corrected answer 3."]
    assert contents(application=["medium-app", "nothing"], tier="high") == []
    now = timezone.now()
    assert contents(**{"from": (now + timedelta(minutes=1)).isoformat()}) == []
    assert len(contents(**{"from": (now - timedelta(hours=1)).isoformat(), "to": now.isoformat()})) == 3
    for bad, field, status in (
        ({"format": "sft"}, "format", 400),
        ({"from": "yesterday"}, "from", 400),
        ({"tier": "Not A Tier"}, "tier.0", 400),
        ({"colour": "red"}, "colour", 400),
        ({"from": "2026-01-01T00:00:00"}, "from", 400),  # no offset
        ({"to": "0.5"}, "to", 400),  # a number is not a time
        ({"from": "2026-01-02T00:00:00Z", "to": "2026-01-01T00:00:00Z"}, None, 422),
    ):
        response = lead.get(URL, bad)
        assert response.status_code == status, (bad, response.content)
        if field:
            assert field in response.json()["fields"], response.json()


def test_redacted_outputs_never_reach_a_dataset(tenant, reviewed, lead):
    assert len(lines_of(lead.get(URL))) == 3
    retention_apply(tenant=tenant, now=timezone.now() + timedelta(days=400))  # everything past its period

    assert lines_of(lead.get(URL)) == []
    assert lines_of(lead.get(URL, {"format": "preference"})) == []
    assert Output.objects.for_tenant(tenant).filter(redacted_at__isnull=True).count() == 0


def test_every_export_is_audited_with_its_filter_and_number_of_lines(tenant, reviewed, lead):
    lines_of(lead.get(URL, {"format": "chat", "tier": "medium"}))

    event = AuditEvent.objects.for_tenant(tenant).filter(kind="dataset.export").get()
    assert (event.object_type, event.object_id, event.actor_key_id, event.actor_role) == (
        "dataset",
        "chat",
        lead.api_key.pk,
        "quality_lead",
    )
    assert event.data["lines"] == 2
    assert (event.data["tiers"], event.data["decisions"], event.data["applications"]) == (
        ["medium"],
        ["corrected"],
        [],
    )


def test_a_large_dataset_is_streamed_a_chunk_at_a_time(tenant, workflow, lead):
    service = workflow["service"]
    for start in (0, 1000):
        items = [
            {"external_id": f"bulk-{n}", "application": "quiet-app", "input": f"Q{n}", "output": f"A{n}"}
            for n in range(start, start + 1000)
        ]
        assert service.post("/api/v1/outputs/batch", {"items": items}, format="json").status_code == 200
    Output.objects.for_tenant(tenant).filter(application="quiet-app").update(
        decision="corrected", status="corrected", final_output="Fixed.", decided_at=timezone.now()
    )
    dataset = DatasetFilter(format="chat", as_of=timezone.now() + timedelta(seconds=1))

    chunks = dataset_lines(tenant=tenant, dataset=dataset, chunk_size=300)
    first = next(chunks)  # the first lines are out before the rest is read
    assert first.count(b"\n") == LINES_PER_CHUNK
    rest = list(chunks)
    assert len(rest) == 3 and sum(chunk.count(b"\n") for chunk in rest) == 2000 - LINES_PER_CHUNK

    response = lead.get(URL)
    assert response.streaming
    assert len(list(response.streaming_content)) == 4


def test_another_tenants_quality_lead_sees_none_of_it(tenant, other_tenant, reviewed):
    outsider = make_client(other_tenant, "quality_lead")
    assert lines_of(outsider.get(URL)) == []
    assert lines_of(outsider.get(URL, {"format": "preference", "application": "medium-app"})) == []
    assert not AuditEvent.objects.for_tenant(tenant).filter(kind="dataset.export").exists()


# The page ---------------------------------------------------------------------------------------


def test_the_datasets_page_counts_the_lines_and_downloads_them_audited(tenant, reviewed):
    quinn = member(tenant, "quality_lead", "quinn")
    client = signed_in(quinn)

    page = client.get("/quality/datasets/")
    assert page.status_code == 200
    text = page.content.decode()
    assert 'id="dataset-form"' in text and 'aria-current="page">Datasets' in text and "download-button" not in text

    counted = client.get("/quality/datasets/", {"format": "preference", "tier": "medium"}).content.decode()
    assert "2 lines" in counted and 'id="download-button"' in counted
    download = client.get("/quality/datasets/download", {"format": "preference", "tier": "medium"})
    lines = lines_of(download)
    assert [line["preferred_output"][0]["content"] for line in lines] == ["Corrected answer 1.", "Corrected answer 2."]
    event = AuditEvent.objects.for_tenant(tenant).filter(kind="dataset.export").get()
    assert (event.actor_person_id, event.data["lines"], event.data["format"]) == (quinn.pk, 2, "preference")

    invalid = client.get("/quality/datasets/download", {"format": "preference", "decision": "approved"})
    assert invalid.status_code == 400 and "corrected outputs only" in invalid.content.decode()


def test_the_datasets_page_is_for_quality_leads_and_admins_of_the_tenant(tenant, other_tenant, reviewed):
    for role, status in (("quality_lead", 200), ("admin", 200), ("reviewer", 403), ("auditor", 403)):
        person = member(tenant, role)
        assert signed_in(person).get("/quality/datasets/").status_code == status, role
    outsider = signed_in(member(other_tenant, "quality_lead"))
    page = outsider.get("/quality/datasets/", {"format": "chat"}).content.decode()
    assert "0 lines" in page
    assert lines_of(outsider.get("/quality/datasets/download", {"format": "chat"})) == []


def test_the_stream_enters_its_tenants_scope_itself(tenant, reviewed):
    """A streamed body is iterated after the view returned and left the request's scope: on
    PostgreSQL, with row-level security, the generator must name its tenant itself."""
    dataset = DatasetFilter(format="chat", as_of=timezone.now())
    chunks = dataset_lines(tenant=tenant, dataset=dataset)
    with no_tenant():
        body = b"".join(chunks)
    assert body.count(b"\n") == 3
