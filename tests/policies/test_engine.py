"""Classification and sampling, without the database: rule matching, determinism, rates, overrides."""

import copy
import math

import pytest

from policies.defaults import DEFAULT_POLICY
from policies.engine import CompiledPolicy, sampling_draw


def compiled(rules=None, overrides=None, version=1, **tier_changes):
    document = copy.deepcopy(DEFAULT_POLICY)
    if rules is not None:
        document["rules"] = rules
    for tier in document["tiers"]:
        tier.update(tier_changes.get(tier["name"], {}))
    return CompiledPolicy(tenant_id=7, version=version, document=document, overrides=overrides or {})


def decide(policy, external_id="x-1", application="support-bot", model="gpt-4o", metadata=None, confidence=None):
    return policy.decide(
        external_id=external_id, application=application, model=model, metadata=metadata or {}, confidence=confidence
    )


RULES = [
    {"name": "legal", "tier": "critical", "match": {"application": "legal-opinions"}},
    {"name": "medical", "tier": "high", "match": {"metadata": [{"key": "category", "in": ["medical", "health"]}]}},
    {
        "name": "vip on big model",
        "tier": "high",
        "match": {"model": ["gpt-4o", "o3"], "metadata": [{"key": "vip", "equals": True}]},
    },
    {"name": "unsure", "tier": "high", "match": {"confidence_below": 0.6}},
    {"name": "internal", "tier": "low", "match": {"application": ["intranet", "wiki"]}},
]


@pytest.mark.parametrize(
    ("kwargs", "tier", "why"),
    [
        ({"application": "legal-opinions", "confidence": 0.1}, "critical", "rule 1: application legal-opinions"),
        ({"metadata": {"category": "health"}}, "high", "rule 2: metadata category in ['medical', 'health']"),
        ({"metadata": {"category": "billing"}}, "medium", "no rule matched: default tier"),
        ({"metadata": {"vip": True}, "model": "o3"}, "high", "rule 3"),
        ({"metadata": {"vip": True}, "model": "small"}, "medium", "default tier"),
        ({"metadata": {"vip": 1}, "model": "o3"}, "medium", "default tier"),  # JSON 1 is not true
        ({"metadata": {"vip": "true"}, "model": "o3"}, "medium", "default tier"),
        ({"confidence": 0.59}, "high", "rule 4: confidence below 0.6"),
        ({"confidence": 0.6}, "medium", "default tier"),  # "below" is strict
        ({"confidence": None}, "medium", "default tier"),  # no confidence never matches
        ({"application": "wiki", "confidence": 0.3}, "high", "rule 4"),  # first match wins
        ({"application": "wiki"}, "low", "rule 5: application in [intranet, wiki]"),
        ({"metadata": {"category": ["medical"]}}, "medium", "default tier"),  # a list is not in a list of scalars
        ({"metadata": {}}, "medium", "default tier"),  # a missing key never matches
    ],
)
def test_rule_matching(kwargs, tier, why):
    decision = decide(compiled(RULES), **kwargs)
    assert decision.risk_tier == tier
    assert why in decision.reason


def test_metadata_in_list_does_not_confuse_true_with_one():
    policy = compiled([{"tier": "high", "match": {"metadata": [{"key": "flag", "in": [1, "x"]}]}}])
    assert decide(policy, metadata={"flag": 1}).risk_tier == "high"
    assert decide(policy, metadata={"flag": True}).risk_tier == "medium"


def test_draw_is_deterministic_and_depends_on_tenant_output_and_version():
    base = sampling_draw(tenant_id=1, external_id="abc", policy_version=3)
    assert base == sampling_draw(tenant_id=1, external_id="abc", policy_version=3)
    assert 0 <= base < 1
    others = {
        sampling_draw(tenant_id=2, external_id="abc", policy_version=3),
        sampling_draw(tenant_id=1, external_id="abd", policy_version=3),
        sampling_draw(tenant_id=1, external_id="abc", policy_version=4),
    }
    assert base not in others and len(others) == 3


def test_an_auditor_can_recompute_the_draw_from_the_documented_formula():
    import hashlib

    expected = int.from_bytes(hashlib.sha256(b"7:order-9:2").digest()[:8], "big") / 2**64
    decision = decide(compiled(version=2), external_id="order-9")
    assert decision.draw == expected
    assert f"drawn {expected:.4f}" in decision.reason
    assert decision.review_required == (expected < 0.25)


def test_sampled_share_at_rate_point_one_is_within_binomial_bounds():
    policy = compiled([], medium={"review_rate": 0.1})
    n, p = 10_000, 0.1
    sampled = sum(decide(policy, external_id=f"out-{i}").review_required for i in range(n))
    # 4.4 standard deviations either side: a false alarm less than once in 100,000 policies.
    margin = 4.4 * math.sqrt(n * p * (1 - p))
    assert n * p - margin <= sampled <= n * p + margin


@pytest.mark.parametrize(("rate", "expected"), [(0.0, False), (1.0, True)])
def test_rates_zero_and_one_are_absolute(rate, expected):
    policy = compiled([], medium={"review_rate": rate})
    assert {decide(policy, external_id=str(i)).review_required for i in range(500)} == {expected}


@pytest.mark.parametrize(
    ("mode", "delivery"), [("sequential", "hold"), ("parallel", "deliver"), ("adaptive", "deliver")]
)
def test_sampled_delivery_follows_the_tier_mode(mode, delivery):
    decision = decide(compiled([], medium={"review_rate": 1.0, "mode": mode}))
    assert (decision.review_required, decision.delivery, decision.status) == (True, delivery, "pending_review")


def test_unsampled_outputs_are_delivered_and_auto_approved_even_in_sequential_tiers():
    decision = decide(compiled([], medium={"review_rate": 0.0, "mode": "sequential"}))
    assert (decision.review_required, decision.delivery, decision.status) == (False, "deliver", "auto_approved")


def test_overrides_decide_before_sampling():
    policy = compiled([], overrides={"support-bot": "block", "faq": "review_all"}, medium={"review_rate": 0.0})

    blocked = decide(policy, application="support-bot")
    held = decide(policy, application="faq")
    untouched = decide(policy, application="other")

    assert (blocked.delivery, blocked.status, blocked.review_required) == ("block", "blocked", False)
    assert "blocked" in blocked.reason
    assert (held.delivery, held.status, held.review_required) == ("hold", "pending_review", True)
    assert "review all" in held.reason
    assert (untouched.delivery, untouched.status) == ("deliver", "auto_approved")


def test_the_overlap_draw_is_the_sampling_draw_named_for_its_purpose():
    import hashlib

    from policies.engine import sampling_draw

    def formula(key: str) -> float:
        return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") / 2**64

    assert sampling_draw(tenant_id=7, external_id="chat-1", policy_version=3) == formula("7:chat-1:3")
    overlap = sampling_draw(tenant_id=7, external_id="chat-1", policy_version=3, purpose="overlap")
    assert overlap == formula("7:chat-1:3:overlap")
    assert overlap != sampling_draw(tenant_id=7, external_id="chat-1", policy_version=3)
