"""The policy preview as a pure function: the current and a candidate policy over the same rows."""

import copy
import time

from policies.defaults import DEFAULT_POLICY
from policies.engine import CompiledPolicy, sampling_draw
from policies.preview import policy_changes, policy_preview

TENANT_ID = 7


def compiled(document=DEFAULT_POLICY, version=3) -> CompiledPolicy:
    return CompiledPolicy(tenant_id=TENANT_ID, version=version, document=document, overrides={"app-b": "block"})


def rows(count: int) -> list[tuple]:
    """Outputs of two applications, every tenth with a low confidence (the default rule: high)."""
    return [
        (f"ext-{n}", "app-a" if n % 2 else "app-b", "m1", {"plan": "pro" if n % 3 else "free"},
         0.3 if n % 10 == 0 else 0.9, "medium", False)
        for n in range(count)
    ]  # fmt: skip


def by_tier(preview) -> dict:
    return {entry.tier: entry for entry in preview.tiers}


def test_the_same_document_changes_nothing():
    preview = policy_preview(current=compiled(), candidate_document=DEFAULT_POLICY, rows=rows(500))

    assert preview.outputs == 500 and preview.moved == preview.newly_sampled == preview.no_longer_sampled == 0
    for entry in [*preview.tiers, preview.total]:
        assert (entry.outputs_now, entry.sampled_now) == (entry.outputs_after, entry.sampled_after)
    assert by_tier(preview)["high"].outputs_now == 50 and by_tier(preview)["medium"].outputs_now == 450


def test_a_higher_rate_samples_more_of_that_tier_only_and_the_counts_are_the_engines():
    candidate = copy.deepcopy(DEFAULT_POLICY)
    candidate["tiers"][1]["review_rate"] = 0.6  # medium 25 % -> 60 %

    preview = policy_preview(current=compiled(), candidate_document=candidate, rows=rows(2000))

    medium = by_tier(preview)["medium"]
    # Recomputed by hand: the same draw (current version), against each rate; stop buttons left out.
    draws = [
        sampling_draw(tenant_id=TENANT_ID, external_id=row[0], policy_version=3) for row in rows(2000) if row[4] > 0.5
    ]
    assert medium.sampled_now == sum(draw < 0.25 for draw in draws)
    assert medium.sampled_after == sum(draw < 0.6 for draw in draws)
    assert medium.sampled_difference == preview.newly_sampled > 0 and preview.no_longer_sampled == 0
    assert by_tier(preview)["high"].sampled_difference == 0 and medium.outputs_difference == 0


def test_a_new_rule_moves_outputs_between_tiers_and_a_new_tier_is_marked():
    candidate = copy.deepcopy(DEFAULT_POLICY)
    candidate["tiers"].append({"name": "vip", "review_rate": 1.0, "mode": "sequential", "sla_minutes": 30})
    candidate["rules"].insert(0, {"tier": "vip", "match": {"metadata": [{"key": "plan", "equals": "free"}]}})

    preview = policy_preview(current=compiled(), candidate_document=candidate, rows=rows(300))

    vip = by_tier(preview)["vip"]
    assert not vip.in_current and vip.in_candidate
    assert (vip.outputs_now, vip.outputs_after, vip.sampled_after) == (0, 100, 100)
    assert preview.moved == 100 and preview.total.outputs_now == preview.total.outputs_after == 300
    assert by_tier(preview)["medium"].outputs_difference + by_tier(preview)["high"].outputs_difference == -100


def test_the_counts_are_what_the_engines_decide_says_output_by_output():
    """The preview classifies and samples without building Decisions; it must agree with decide()."""
    candidate = copy.deepcopy(DEFAULT_POLICY)
    candidate["tiers"][0]["review_rate"] = 0.5
    candidate["tiers"][1]["mode"] = "adaptive"  # without judges, an adaptive tier samples at its rate
    candidate["rules"] = [
        {"tier": "critical", "match": {"metadata": [{"key": "plan", "equals": "free"}], "confidence_below": 0.6}},
        {"tier": "low", "match": {"application": ["app-a"], "model": "m1"}},
    ]
    sample = [
        (f"x-{n}", "app-a" if n % 3 else "app-b", "m1" if n % 4 else "m2", {"plan": "free" if n % 5 else True},
         None if n % 11 == 0 else (n % 100) / 100, "", False)
        for n in range(3000)
    ]  # fmt: skip
    current = compiled()
    preview = policy_preview(current=current, candidate_document=candidate, rows=sample)

    after_policy = CompiledPolicy(tenant_id=TENANT_ID, version=current.version, document=candidate, overrides={})
    for policy, outputs_of, sampled_of in (
        (current, "outputs_now", "sampled_now"),
        (after_policy, "outputs_after", "sampled_after"),
    ):
        expected: dict[str, list[int]] = {}
        for external_id, application, model, metadata, confidence, _, _ in sample:
            decision = policy.decide(
                external_id=external_id,
                application=application,
                model=model,
                metadata=metadata,
                confidence=confidence,
                overrides={},
            )
            counts = expected.setdefault(decision.risk_tier, [0, 0])
            counts[0] += 1
            counts[1] += decision.review_required
        got = {
            e.tier: [getattr(e, outputs_of), getattr(e, sampled_of)] for e in preview.tiers if getattr(e, outputs_of)
        }
        assert got == expected


def test_what_was_recorded_is_counted_beside_even_under_a_tier_no_policy_has():
    recorded = [(*row[:5], "legacy", True) for row in rows(10)]
    preview = policy_preview(current=compiled(), candidate_document=DEFAULT_POLICY, rows=recorded)

    legacy = by_tier(preview)["legacy"]
    assert (legacy.recorded_outputs, legacy.recorded_sampled, legacy.outputs_now) == (10, 10, 0)
    assert preview.total.recorded_outputs == 10


def test_ten_thousand_outputs_are_previewed_well_under_a_second():
    candidate = copy.deepcopy(DEFAULT_POLICY)
    candidate["rules"] += [
        {"tier": "critical", "match": {"application": f"app-{n}", "metadata": [{"key": "plan", "in": ["x", "y"]}]}}
        for n in range(50)
    ]
    many = rows(10_000)
    started = time.perf_counter()
    preview = policy_preview(current=compiled(), candidate_document=candidate, rows=many)
    elapsed = time.perf_counter() - started

    assert preview.outputs == 10_000
    assert elapsed < 1.0, f"{elapsed:.3f} s"  # about 0.1 s on one core of the CI machine


def test_changes_are_said_in_words():
    candidate = copy.deepcopy(DEFAULT_POLICY)
    candidate["tiers"][0]["review_rate"] = 0.1
    candidate["tiers"][2]["escalation"] = False
    candidate["tiers"].pop(3)
    candidate["default_tier"] = "low"
    candidate["rules"] = []

    assert policy_changes(current=DEFAULT_POLICY, candidate=candidate) == [
        "tier low: rate 5 % → 10 %",
        "tier high: escalation on → off",
        "tier critical removed",
        "default tier medium → low",
        "rules: 1 removed or changed (1 before, 0 after)",
    ]
    reordered = copy.deepcopy(DEFAULT_POLICY)
    reordered["rules"].insert(0, {"tier": "low", "match": {"application": "a"}})
    assert policy_changes(current=DEFAULT_POLICY, candidate=reordered) == ["rules: 1 added (1 before, 2 after)"]
    reordered["rules"].reverse()
    assert policy_changes(current={**DEFAULT_POLICY, "rules": reordered["rules"][::-1]}, candidate=reordered) == [
        "rules reordered (the first that matches wins)"
    ]
    assert policy_changes(current=DEFAULT_POLICY, candidate=DEFAULT_POLICY) == []
