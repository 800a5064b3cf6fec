"""Policy, overrides and rubrics through the REST API, and their effect on ingest."""

import copy

import pytest

from policies.defaults import DEFAULT_POLICY
from policies.models import Policy
from tests.factories import output_payload


@pytest.fixture
def admin_client(tenant, client_for):
    from tenants.services import membership_create
    from tests.factories import UserFactory

    person = UserFactory(username="boss")
    membership_create(tenant=tenant, user=person, role="admin")
    return client_for(tenant, "admin", user=person)


def new_policy(**changes) -> dict:
    document = copy.deepcopy(DEFAULT_POLICY)
    document.update(changes)
    return document


def test_get_policy_returns_the_default_version_1(admin_client):
    body = admin_client.get("/api/v1/policy").json()

    assert body["version"] == 1
    assert body["default_tier"] == "medium"
    assert [tier["name"] for tier in body["tiers"]] == ["low", "medium", "high", "critical"]
    assert {tier["name"]: (tier["review_rate"], tier["mode"]) for tier in body["tiers"]} == {
        "low": (0.05, "parallel"),
        "medium": (0.25, "parallel"),
        "high": (0.75, "sequential"),
        "critical": (1.0, "sequential"),
    }
    critical = body["tiers"][3]
    assert critical["required_approvals"] == 2
    assert body["tiers"][2]["escalation"] is True


def test_put_publishes_a_new_version_with_who_and_why(admin_client, tenant):
    rules = [{"name": "legal", "tier": "critical", "match": {"application": "legal-opinions"}}]

    response = admin_client.put(
        "/api/v1/policy", {**new_policy(rules=rules), "reason": "legal goes critical"}, format="json"
    )

    assert response.status_code == 200, response.content
    assert response.json()["version"] == 2
    assert response.json()["rules"] == [
        {
            "name": "legal",
            "tier": "critical",
            "match": {"application": "legal-opinions", "model": None, "metadata": [], "confidence_below": None},
            "mode": None,  # a hybrid tier's mode for this rule's category; this tier is not hybrid
        }
    ]
    history = admin_client.get("/api/v1/policy/history").json()["results"]
    assert [(entry["version"], entry["changed_by"], entry["reason"]) for entry in history] == [
        (2, "boss", "legal goes critical"),
        (1, None, ""),
    ]
    assert history[1]["rules"] == [
        {
            "name": "low model confidence",
            "tier": "high",
            "match": {"application": None, "model": None, "metadata": [], "confidence_below": 0.5},
            "mode": None,
        }
    ]


def test_new_version_classifies_new_outputs_while_old_ones_keep_theirs(admin_client, client_for, tenant):
    service = client_for(tenant, "service")
    before = service.post("/api/v1/outputs", output_payload(1, application="legal-opinions"), format="json").json()
    rules = [{"tier": "critical", "match": {"application": "legal-opinions"}}]
    admin_client.put("/api/v1/policy", new_policy(rules=rules), format="json")

    after = service.post("/api/v1/outputs", output_payload(2, application="legal-opinions"), format="json").json()

    assert (before["policy_version"], before["risk_tier"]) == (1, "medium")
    assert (after["policy_version"], after["risk_tier"], after["delivery"]) == (2, "critical", "hold")
    assert after["review_required"] is True
    assert service.get(f"/api/v1/outputs/{before['id']}").json()["policy_version"] == 1
    # A repeat of the old submission is the old record, under its old version.
    repeat = service.post("/api/v1/outputs", output_payload(1, application="legal-opinions"), format="json")
    assert repeat.status_code == 200
    assert repeat.json()["policy_version"] == 1


def test_batch_and_get_carry_the_decision(admin_client, client_for, tenant):
    admin_client.put(
        "/api/v1/policy",
        new_policy(rules=[{"tier": "critical", "match": {"metadata": [{"key": "category", "equals": "billing"}]}}]),
        format="json",
    )
    service = client_for(tenant, "service")

    result = service.post("/api/v1/outputs/batch", {"items": [output_payload(1)]}, format="json").json()["results"][0]
    detail = service.get(f"/api/v1/outputs/{result['output']['id']}").json()

    for body in (result["output"], detail):
        assert (body["risk_tier"], body["review_required"], body["delivery"], body["policy_version"]) == (
            "critical",
            True,
            "hold",
            2,
        )
    assert detail["decision_reason"].startswith("rule 1: metadata category = 'billing'; tier critical, rate 1")


RULES_BEYOND_THE_SCHEMA = {
    "default_tier",
    "rules.0.tier",
    "rules.0.match",
    "rules.0.match.metadata.0",
    "tiers.1.name",
    "tiers.0.rubric",
}


@pytest.mark.parametrize(
    ("document", "field", "words"),
    [
        (new_policy(default_tier="nope"), "default_tier", "not one of the tiers"),
        (
            new_policy(rules=[{"name": "x", "tier": "hgh", "match": {"model": "m"}}]),
            "rules.0.tier",
            "rule 1 (x): tier 'hgh'",
        ),
        (
            new_policy(
                rules=[{"tier": "low", "match": {"model": "m"}}, {"tier": "low", "match": {"confidence_below": 2}}]
            ),
            "rules.1.match.confidence_below",
            "rule 2: confidence_below",
        ),
        (new_policy(rules=[{"tier": "low", "match": {}}]), "rules.0.match", "at least one condition"),
        (
            new_policy(rules=[{"tier": "low", "match": {"metadata": [{"key": "k", "equals": 1, "in": [1]}]}}]),
            "rules.0.match.metadata.0",
            "exactly one of 'equals' or 'in'",
        ),
        (
            new_policy(tiers=[{**DEFAULT_POLICY["tiers"][1], "review_rate": 1.5}]),
            "tiers.0.review_rate",
            "tier 1 (medium): review_rate",
        ),
        (
            new_policy(tiers=[{**DEFAULT_POLICY["tiers"][1], "mode": "sometimes"}]),
            "tiers.0.mode",
            "tier 1 (medium): mode",
        ),
        (
            new_policy(tiers=[DEFAULT_POLICY["tiers"][1], DEFAULT_POLICY["tiers"][1]], rules=[]),
            "tiers.1.name",
            "used twice",
        ),
        (
            new_policy(tiers=[{**DEFAULT_POLICY["tiers"][1], "rubric": "ghost"}], rules=[]),
            "tiers.0.rubric",
            "no rubric named 'ghost'",
        ),
        ({**new_policy(), "tiers": []}, "tiers", "at least 1"),
        ({**new_policy(), "colour": "red"}, "colour", "Extra inputs"),
    ],
)
def test_invalid_policy_names_the_rule_and_field_and_publishes_nothing(admin_client, tenant, document, field, words):
    response = admin_client.put("/api/v1/policy", document, format="json")

    # 400 when the document breaks the published schema, 422 when it breaks a rule the schema
    # cannot state (references between its parts, or to rubrics).
    assert response.status_code == (422 if field in RULES_BEYOND_THE_SCHEMA else 400), response.content
    body = response.json()
    assert field in body["fields"], body
    assert words in " ".join(body["fields"][field]), body
    assert Policy.objects.for_tenant(tenant).get().version == 1


def test_override_review_all_then_block_then_none_take_effect_on_the_next_request(admin_client, client_for, tenant):
    service = client_for(tenant, "service")
    service.post("/api/v1/outputs", output_payload(0), format="json")  # the policy is cached now

    held = admin_client.put("/api/v1/applications/support-bot/override", {"mode": "review_all"}, format="json")
    first = service.post("/api/v1/outputs", output_payload(1), format="json").json()
    admin_client.put(
        "/api/v1/applications/support-bot/override", {"mode": "block", "reason": "incident 42"}, format="json"
    )
    second = service.post("/api/v1/outputs", output_payload(2), format="json").json()
    other_app = service.post("/api/v1/outputs", output_payload(3, application="faq"), format="json").json()
    admin_client.put("/api/v1/applications/support-bot/override", {"mode": "none"}, format="json")
    third = service.post("/api/v1/outputs", output_payload(4, confidence=0.9), format="json").json()

    assert held.status_code == 200
    assert held.json()["override"] == "review_all"
    assert (first["review_required"], first["delivery"], first["status"]) == (True, "hold", "pending_review")
    assert (second["delivery"], second["status"]) == ("block", "blocked")
    assert other_app["delivery"] != "block"
    assert third["delivery"] in ("deliver",) and third["status"] in ("auto_approved", "pending_review")
    from policies.models import Application

    history = Application.objects.for_tenant(tenant).get(name="support-bot").history.order_by("history_date")
    assert [record.override for record in history] == ["review_all", "block", "none"]
    assert history[1].history_change_reason == "incident 42"


@pytest.mark.parametrize("body", [{"mode": "off"}, {}, {"mode": "block", "extra": 1}, ["block"]])
def test_bad_override_is_400(admin_client, body):
    response = admin_client.put("/api/v1/applications/support-bot/override", body, format="json")
    assert response.status_code == 400


RUBRIC = {
    "name": "support-quality",
    "description": "How good a support answer is.",
    "criteria": [
        {"key": "correct", "label": "Factually correct", "kind": "binary"},
        {
            "key": "helpfulness",
            "label": "Helpfulness",
            "kind": "graded",
            "min": 1,
            "max": 5,
            "anchors": {"1": "useless", "5": "solves the problem"},
        },
        {"key": "tone", "label": "Tone", "kind": "categorical", "options": ["friendly", "neutral", "rude"]},
        {"key": "notes", "label": "Notes", "kind": "text", "required": False},
    ],
}


def test_rubrics_are_created_then_versioned(admin_client, client_for, tenant):
    created = admin_client.post("/api/v1/rubrics", RUBRIC, format="json")
    changed = admin_client.post("/api/v1/rubrics", {**RUBRIC, "description": "v2"}, format="json")

    assert created.status_code == 201 and created.json()["version"] == 1
    assert changed.status_code == 200 and changed.json()["version"] == 2
    reviewer = client_for(tenant, "reviewer")
    listed = reviewer.get("/api/v1/rubrics").json()["results"]
    assert [(r["name"], r["version"], r["description"]) for r in listed] == [("support-quality", 2, "v2")]
    assert reviewer.get("/api/v1/rubrics/support-quality").json()["criteria"][1]["anchors"]["5"] == "solves the problem"


def test_a_tier_can_name_an_existing_rubric(admin_client):
    admin_client.post("/api/v1/rubrics", RUBRIC, format="json")
    tiers = [{**tier, "rubric": "support-quality"} for tier in DEFAULT_POLICY["tiers"]]

    response = admin_client.put("/api/v1/policy", new_policy(tiers=tiers), format="json")

    assert response.status_code == 200
    assert response.json()["tiers"][0]["rubric"] == "support-quality"


@pytest.mark.parametrize(
    ("criterion", "words", "status"),
    [
        ({"key": "g", "label": "G", "kind": "graded", "min": 5, "max": 1}, "min < max", 422),
        ({"key": "g", "label": "G", "kind": "graded", "min": 1, "max": 5, "anchors": {"9": "x"}}, "outside 1..5", 422),
        ({"key": "c", "label": "C", "kind": "categorical", "options": ["only"]}, "at least two", 422),
        ({"key": "b", "label": "B", "kind": "binary", "options": ["a", "b"]}, "categorical criteria only", 422),
        ({"key": "b", "label": "B", "kind": "stars"}, "kind", 400),
    ],
)
def test_invalid_rubric_names_the_criterion(admin_client, tenant, criterion, words, status):
    response = admin_client.post("/api/v1/rubrics", {"name": "r", "criteria": [criterion]}, format="json")

    assert response.status_code == status
    assert "criteria.0" in " ".join(response.json()["fields"])
    assert words in response.json()["message"]


def test_unknown_rubric_is_404(admin_client):
    assert admin_client.get("/api/v1/rubrics/nope").status_code == 404


def test_policy_is_read_once_per_version_not_per_request(client_for, tenant, assert_work_queries):
    service = client_for(tenant, "service")
    service.post("/api/v1/outputs", output_payload(0), format="json")

    from tests.conftest import AUDIT_APPEND_QUERIES

    # key lookup, outputs, tasks, the audit event: the policy and routing come from the cache
    with assert_work_queries(3 + AUDIT_APPEND_QUERIES):
        service.post("/api/v1/outputs/batch", {"items": [output_payload(n) for n in range(1, 50)]}, format="json")


def test_an_auditor_can_recompute_every_stored_decision_from_its_policy_version(admin_client, client_for, tenant):
    from policies.engine import CompiledPolicy
    from policies.selectors import policy_version_document
    from reviews.models import Output

    service = client_for(tenant, "service")
    for number in range(20):
        service.post("/api/v1/outputs", output_payload(number, application="legal-opinions"), format="json")
    rules = [{"tier": "high", "match": {"application": "legal-opinions"}}]
    admin_client.put("/api/v1/policy", new_policy(rules=rules), format="json")
    for number in range(20, 40):
        service.post("/api/v1/outputs", output_payload(number, application="legal-opinions"), format="json")

    for stored in Output.objects.for_tenant(tenant):
        document = policy_version_document(tenant=tenant, version=stored.policy_version)
        policy = CompiledPolicy(tenant_id=tenant.pk, version=stored.policy_version, document=document, overrides={})
        again = policy.decide(
            external_id=stored.external_id,
            application=stored.application,
            model=stored.model,
            metadata=stored.metadata,
            confidence=stored.confidence,
        )
        assert (again.risk_tier, again.review_required, again.draw, again.reason) == (
            stored.risk_tier,
            stored.review_required,
            stored.sampling_draw,
            stored.decision_reason,
        )
    assert set(Output.objects.for_tenant(tenant).values_list("policy_version", flat=True)) == {1, 2}
