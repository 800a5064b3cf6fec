"""Outlier and novelty signals, pure: the sketch's accuracy, what an output measures, the rules and their reasons."""

import copy

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from policies.defaults import DEFAULT_POLICY
from policies.engine import CompiledPolicy
from policies.schemas import PolicyDocument
from policies.signals import (
    RELATIVE_ACCURACY,
    ApplicationSketches,
    QuantileSketch,
    StatisticsView,
    measures_of,
    sketches_decode,
    sketches_encode,
)

positive = st.floats(min_value=1e-6, max_value=1e9, allow_nan=False, allow_infinity=False)


@settings(max_examples=40, deadline=None)
@given(values=st.lists(positive | st.just(0.0), min_size=1, max_size=400), q=st.floats(min_value=0.0, max_value=1.0))
def test_a_quantile_of_the_sketch_is_within_its_relative_accuracy_of_the_exact_one(values, q):
    sketch = QuantileSketch()
    sketch.add_all(values)

    exact = float(np.quantile(np.array(values), q, method="lower"))
    estimate = sketch.quantile(q)

    assert abs(estimate - exact) <= RELATIVE_ACCURACY * exact + 1e-12
    assert sketch.count == len(values)


@settings(max_examples=30, deadline=None)
@given(
    first=st.lists(positive, min_size=1, max_size=200),
    second=st.lists(positive, min_size=1, max_size=200),
    q=st.sampled_from([0.5, 0.9, 0.95, 0.99, 0.999]),
)
def test_merged_and_stored_sketches_answer_as_one_sketch_of_all_the_values(first, second, q):
    left, right = QuantileSketch(), QuantileSketch()
    left.add_all(first)
    right.add_all(second)
    left.merge(right)
    stored = QuantileSketch.from_bytes(left.to_bytes())

    exact = float(np.quantile(np.array(first + second), q, method="lower"))
    assert abs(stored.quantile(q) - exact) <= RELATIVE_ACCURACY * exact + 1e-12
    assert stored.count == len(first) + len(second)


def test_the_sketch_stays_small_however_many_values_it_holds():
    sketch = QuantileSketch()
    rng = np.random.default_rng(7)
    sketch.add_all(rng.lognormal(0, 3, 200_000).tolist())
    assert len(sketch.to_bytes()) < 40_000
    assert sketch.quantile(0.99) == pytest.approx(np.exp(3 * 2.326), rel=0.15)


def test_an_empty_sketch_has_no_quantile():
    assert QuantileSketch().quantile(0.99) is None
    assert QuantileSketch.from_bytes(QuantileSketch().to_bytes()).count == 0


def test_what_an_output_measures_from_its_metadata_or_its_trace():
    trace = [
        {"type": "llm", "cost": 0.01, "latency_ms": 300, "usage": {"prompt_tokens": 5}},
        {"type": "tool", "name": "search", "error": "timeout", "latency_ms": 50},
        {"type": "function_call", "status": "failed", "usage": {"cost_usd": 0.02}},
        {"type": "tool", "name": "ok", "result": "fine"},
    ]
    measured = measures_of(output="hello", trace=trace, metadata={})
    assert measured == {"length": 5, "steps": 4, "cost": pytest.approx(0.03), "latency": 350, "tool_errors": 2}

    told = measures_of(
        output="", trace=trace, metadata={"cost": 0.5, "latency_ms": 1200, "tool_errors": 0, "cost_usd": True}
    )
    assert (told["cost"], told["latency"], told["tool_errors"]) == (0.5, 1200, 0)  # true is not a number

    bare = measures_of(output="x", trace=[], metadata={})
    assert bare == {"length": 1, "steps": 0, "tool_errors": 0}  # no cost, no latency: not measured


# Rules ---------------------------------------------------------------------------------------


def policy_with(signals, **changes) -> CompiledPolicy:
    document = copy.deepcopy(DEFAULT_POLICY)
    document["signals"] = signals
    document.update(changes)
    return CompiledPolicy(tenant_id=7, version=3, document=document, overrides={})


def statistics_of(values_by_measure: dict, *, application="support-bot", version=4) -> StatisticsView:
    sketches = {}
    for measure, values in values_by_measure.items():
        sketches[measure] = QuantileSketch()
        sketches[measure].add_all(values)
    observations = max(len(values) for values in values_by_measure.values())
    return StatisticsView.live({application: ApplicationSketches(application, version, observations, sketches)})


COSTS = [0.01] * 900 + [0.05] * 80 + [0.08] * 20  # p99 0.08 (1000 outputs)


def decide(policy, *, measures, statistics, metadata=None, application="support-bot", **others):
    return policy.decide(
        external_id="out-1",
        application=application,
        model="m",
        metadata=metadata or {},
        confidence=0.9,
        measures=measures,
        statistics=statistics,
        **others,
    )


def test_an_output_above_the_p99_of_its_application_is_forced_to_review_and_the_reason_gives_the_figures():
    policy = policy_with([{"name": "costly", "signal": "outlier", "measure": "cost", "action": "force_review"}])
    statistics = statistics_of({"cost": COSTS})

    decision = decide(policy, measures={"cost": 0.42, "length": 10}, statistics=statistics)

    assert decision.review_required
    p99 = statistics.quantile("support-bot", "cost", 0.99)
    assert 0.08 <= p99 <= 0.08 * (1 + RELATIVE_ACCURACY) ** 2  # the sketch's upper bound of the p99
    assert f"signal 1 (costly): cost 0.42 USD > p99 {p99:.6g} USD (statistics v4, 1000 outputs): review" in (
        decision.reason
    )
    assert decision.signal_snapshot == {
        "measures": {"cost": 0.42, "length": 10},
        "version": 4,
        "observations": 1000,
        "quantiles": {"cost@0.99": p99},
    }

    cheap = decide(policy, measures={"cost": 0.05}, statistics=statistics)
    assert "signal" not in cheap.reason
    assert cheap.review_required == (cheap.draw < 0.25)  # the tier's rate decides, as without signals


def test_an_outlier_rule_waits_for_enough_observations_and_never_fires_without_statistics():
    policy = policy_with(
        [
            {
                "signal": "outlier",
                "measure": "latency",
                "quantile": 0.9,
                "min_observations": 2000,
                "action": "force_review",
            }
        ]
    )
    few = statistics_of({"latency": [100.0] * 1000})
    assert "signal" not in decide(policy, measures={"latency": 90_000}, statistics=few).reason
    none = decide(policy, measures={"latency": 90_000}, statistics=StatisticsView.live({}))
    assert "signal" not in none.reason
    assert none.signal_snapshot == {"measures": {"latency": 90_000}}  # nothing read: no version


def test_raise_tier_signals_raise_like_judges_and_name_themselves():
    policy = policy_with(
        [
            {"name": "tools", "signal": "tool_failed", "action": "raise_tier", "raise_to": "critical"},
            {"name": "slow", "signal": "outlier", "measure": "latency", "action": "raise_tier"},
        ]
    )
    statistics = statistics_of({"latency": [float(n) for n in range(1, 1001)]})

    decision = decide(policy, measures={"latency": 5000, "tool_errors": 2}, statistics=statistics)

    assert decision.risk_tier == "critical"
    assert "signal 1 (tools): a tool step failed (2 tool errors)" in decision.reason
    assert "signal 2 (slow): latency 5000 ms > p99 " in decision.reason
    assert "tier raised from medium to critical" in decision.reason

    only_slow = decide(policy, measures={"latency": 5000, "tool_errors": 0}, statistics=statistics)
    assert only_slow.risk_tier == "high"  # the next tier after medium


def test_the_users_flags_force_a_review_in_the_applications_named():
    policy = policy_with(
        [
            {"signal": "user_asked_for_human", "action": "force_review", "application": ["support-bot"]},
            {"signal": "user_abandoned", "action": "force_review"},
        ]
    )
    asked = decide(policy, measures={}, statistics=StatisticsView.live({}), metadata={"user_asked_for_human": True})
    assert asked.review_required and "signal 1: the user asked for a human" in asked.reason
    elsewhere = decide(
        policy,
        measures={},
        statistics=StatisticsView.live({}),
        metadata={"user_asked_for_human": True},
        application="other-app",
    )
    assert "asked for a human" not in elsewhere.reason
    left = decide(policy, measures={}, statistics=StatisticsView.live({}), metadata={"user_abandoned": True})
    assert "signal 2: the user abandoned" in left.reason
    not_true = decide(policy, measures={}, statistics=StatisticsView.live({}), metadata={"user_abandoned": "yes"})
    assert "abandoned" not in not_true.reason  # the flag is JSON true, nothing else


def test_the_stored_snapshot_recomputes_the_decision_after_the_statistics_moved():
    policy = policy_with([{"name": "long", "signal": "outlier", "measure": "length", "action": "force_review"}])
    before = statistics_of({"length": [100.0] * 990 + [300.0] * 10})
    first = decide(policy, measures={"length": 500}, statistics=before)
    assert first.review_required and "length 500 chars > p99" in first.reason

    # Longer outputs become usual: the live statistics would no longer call it an outlier...
    after = statistics_of({"length": [100.0] * 500 + [900.0] * 500}, version=5)
    assert "signal" not in decide(policy, measures={"length": 500}, statistics=after).reason
    # ...but the decision recomputes from what it stored.
    snapshot = first.signal_snapshot
    again = decide(policy, measures=snapshot["measures"], statistics=StatisticsView.stored(snapshot))
    assert (again.reason, again.review_required, again.signal_snapshot) == (first.reason, True, snapshot)


def test_sketches_survive_their_stored_form():
    sketch = QuantileSketch()
    sketch.add_all([1.0, 2.0, 3.0])
    decoded = sketches_decode(sketches_encode({"cost": sketch, "unknown": sketch}))
    assert set(decoded) == {"cost"}
    assert decoded["cost"].quantile(1.0) == pytest.approx(3.0, rel=RELATIVE_ACCURACY)


# Validation ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "signal, message",
    [
        ({"signal": "outlier", "action": "force_review"}, "names its measure"),
        ({"signal": "outlier", "measure": "tokens", "action": "force_review"}, "measure"),
        ({"signal": "outlier", "measure": "cost", "quantile": 1.0, "action": "force_review"}, "quantile"),
        ({"signal": "outlier", "measure": "cost", "quantile": 0.2, "action": "force_review"}, "quantile"),
        ({"signal": "outlier", "measure": "cost", "min_observations": 1, "action": "force_review"}, "min_observations"),
        ({"signal": "tool_failed", "quantile": 0.99, "action": "force_review"}, "outlier signals only"),
        ({"signal": "user_abandoned", "measure": "cost", "action": "force_review"}, "outlier signals only"),
        ({"signal": "tool_failed", "action": "force_review", "raise_to": "high"}, "raise_to belongs"),
        ({"signal": "tool_failed", "action": "hold"}, "action"),
        ({"signal": "novelty", "action": "force_review"}, "signal"),
        ({"signal": "tool_failed", "action": "force_review", "extra": 1}, "extra"),
    ],
)
def test_malformed_signal_rules_are_refused(signal, message):
    document = {**copy.deepcopy(DEFAULT_POLICY), "signals": [signal]}
    with pytest.raises(ValidationError) as raised:
        PolicyDocument.model_validate(document)
    assert message in str(raised.value)
