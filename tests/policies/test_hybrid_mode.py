"""Hybrid mode (seed 001, Table 2: "different approaches by content category"): within one
tier, and so within one application, the rule that matched an output (its content category)
names the review mode; outputs no such rule reaches take the tier's default mode."""

import copy

import pytest
from pydantic import ValidationError

from hitl.errors import RuleViolationError
from policies.defaults import DEFAULT_POLICY
from policies.engine import CompiledPolicy, JudgeSignal
from policies.schemas import TierSpec
from policies.services import policy_validate
from tests.conftest import make_client
from tests.factories import output_payload


def hybrid_policy() -> dict:
    document = copy.deepcopy(DEFAULT_POLICY)
    medium = next(tier for tier in document["tiers"] if tier["name"] == "medium")
    medium.update({"mode": "hybrid", "default_mode": "parallel", "review_rate": 1.0})
    document["rules"] = [
        {
            "name": "legal advice",
            "tier": "medium",
            "mode": "sequential",
            "match": {"application": "assistant", "metadata": [{"key": "category", "equals": "legal"}]},
        },
        {
            "name": "small talk",
            "tier": "medium",
            "mode": "adaptive",
            "match": {"application": "assistant", "metadata": [{"key": "category", "equals": "chit-chat"}]},
        },
    ]
    return document


def decide(policy, category, judges=None, external_id="x-1"):
    return policy.decide(
        external_id=external_id,
        application="assistant",
        model="m",
        metadata={"category": category},
        confidence=None,
        judges=judges,
    )


def test_one_application_gets_a_mode_per_content_category():
    policy = CompiledPolicy(tenant_id=1, version=1, document=hybrid_policy(), overrides={})

    legal, chat, other = decide(policy, "legal"), decide(policy, "chit-chat"), decide(policy, "billing")

    assert (legal.risk_tier, legal.mode, legal.delivery) == ("medium", "sequential", "hold")
    assert (chat.risk_tier, chat.mode, chat.delivery) == ("medium", "adaptive", "deliver")
    assert (other.risk_tier, other.mode, other.delivery) == ("medium", "parallel", "deliver")
    assert "tier medium (hybrid: sequential by the rule)" in legal.reason
    assert "tier medium (hybrid: parallel by default)" in other.reason


def test_an_adaptive_category_follows_the_judges_and_the_others_do_not():
    document = hybrid_policy()
    document["tiers"][1]["review_rate"] = 0.5
    policy = CompiledPolicy(tenant_id=1, version=1, document=document, overrides={})
    confident = [JudgeSignal(name="j", result="pass", score=1.0, unsure=False)]
    ids = [f"o-{i}" for i in range(200)]

    chat_sampled = sum(decide(policy, "chit-chat", confident, i).review_required for i in ids)
    legal_sampled = sum(decide(policy, "legal", confident, i).review_required for i in ids)

    assert chat_sampled == 0  # fully confident judges bring an adaptive rate to its floor (0)
    assert 60 < legal_sampled < 140  # sequential keeps the tier's 50 %


def test_a_raised_tier_takes_its_own_mode_not_the_categorys():
    document = hybrid_policy()
    document["tiers"][2]["review_rate"] = 1.0  # high: sequential
    policy = CompiledPolicy(tenant_id=1, version=1, document=document, overrides={})
    raising = [JudgeSignal(name="pii", result="fail", score=None, unsure=False, on_fail="raise_tier", kind="regex")]

    decision = decide(policy, "chit-chat", raising)

    assert (decision.risk_tier, decision.mode, decision.delivery) == ("high", "sequential", "hold")


def test_a_hybrid_tier_needs_a_default_mode_and_only_a_hybrid_tier_takes_one():
    base = {"name": "t", "review_rate": 0.5, "sla_minutes": 60}
    with pytest.raises(ValidationError, match="needs default_mode"):
        TierSpec.model_validate({**base, "mode": "hybrid"})
    with pytest.raises(ValidationError, match="for hybrid tiers only"):
        TierSpec.model_validate({**base, "mode": "parallel", "default_mode": "sequential"})
    with pytest.raises(ValidationError):
        TierSpec.model_validate({**base, "mode": "hybrid", "default_mode": "hybrid"})


def test_a_rule_naming_a_mode_for_a_tier_that_is_not_hybrid_is_refused_beside_the_rule(tenant):
    document = hybrid_policy()
    document["rules"][0]["tier"] = "high"  # sequential, not hybrid

    with pytest.raises(RuleViolationError) as refused:
        policy_validate(tenant=tenant, document=document)

    assert refused.value.fields.keys() == {"rules.0.mode"}
    assert "only a hybrid tier takes its mode from the rule" in refused.value.fields["rules.0.mode"][0]


def test_hybrid_policy_is_published_over_the_api_and_ingest_holds_only_the_sequential_category(tenant, service_client):
    admin_client = make_client(tenant, "admin")
    put = admin_client.put("/api/v1/policy", {**hybrid_policy(), "reason": "legal held"}, format="json")
    assert put.status_code == 200, put.json()
    assert put.json()["tiers"][1]["default_mode"] == "parallel"
    assert put.json()["rules"][0]["mode"] == "sequential"

    def submit(number, category):
        body = {**output_payload(number), "application": "assistant", "metadata": {"category": category}}
        response = service_client.post("/api/v1/outputs", body, format="json")
        assert response.status_code == 201, response.json()
        return response.json()

    legal, billing = submit(1, "legal"), submit(2, "billing")
    assert (legal["risk_tier"], legal["review_required"], legal["delivery"]) == ("medium", True, "hold")
    assert (billing["risk_tier"], billing["review_required"], billing["delivery"]) == ("medium", True, "deliver")
