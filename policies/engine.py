"""Classification and sampling: pure functions of a policy version and an output.

An auditor can recompute any decision from the output's external id, the
tenant's id and the policy version the output records::

    draw = int.from_bytes(sha256(f"{tenant_id}:{external_id}:{version}").digest()[:8], "big") / 2**64
    review_required = draw < tier.review_rate

(see docs/sampling.md). Overrides are applied before sampling: ``block`` and
``review_all`` decide on their own.
"""

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from policies.schemas import PolicyDocument, RuleSpec, SignalRule, TierSpec
from policies.signals import (
    EMPTY_STATISTICS,
    MEASURES,
    USER_FLAGS,
    StatisticsView,
    format_figure,
    quantile_key,
    quantile_label,
    snapshot_of,
)

_TWO_TO_64 = float(2**64)


def sampling_draw(*, tenant_id: int, external_id: str, policy_version: int, purpose: str = "") -> float:
    """A number in [0, 1), the same for the same tenant, output and policy version.

    ``purpose`` names another draw of the same output, independent of the sampling one
    (``overlap``: whether it gets a deliberate second review).
    """
    key = f"{tenant_id}:{external_id}:{policy_version}" + (f":{purpose}" if purpose else "")
    digest = hashlib.sha256(key.encode()).digest()
    return int.from_bytes(digest[:8], "big") / _TWO_TO_64


@dataclass(frozen=True, slots=True)
class Decision:
    """What the policy says about one output, and why."""

    risk_tier: str
    review_required: bool
    delivery: str  # deliver | hold | block
    status: str  # pending_review | auto_approved | blocked
    reason: str
    draw: float | None
    policy_version: int
    classification: str = ""  # why this tier: the matching rule, or the default
    mode: str = ""  # the review mode it got: the tier's, or for a hybrid tier its content category's
    signal_snapshot: dict | None = None  # the measures and statistics its signal rules read (policies/signals.py)


def _one_of(value: str | list[str] | None) -> frozenset[str] | None:
    if value is None:
        return None
    return frozenset([value] if isinstance(value, str) else value)


def _describe(rule: RuleSpec) -> str:
    parts = []
    match = rule.match
    if match.application is not None:
        parts.append(f"application {_listing(match.application)}")
    if match.model is not None:
        parts.append(f"model {_listing(match.model)}")
    for condition in match.metadata:
        if condition.in_ is not None:
            parts.append(f"metadata {condition.key} in {condition.in_}")
        else:
            parts.append(f"metadata {condition.key} = {condition.equals!r}")
    if match.confidence_below is not None:
        parts.append(f"confidence below {match.confidence_below}")
    return " and ".join(parts)


def _listing(value: str | list[str]) -> str:
    return value if isinstance(value, str) else "in [" + ", ".join(value) + "]"


@dataclass(frozen=True, slots=True)
class _CompiledRule:
    number: int  # 1-based, as people count rules
    tier: str
    applications: frozenset[str] | None
    models: frozenset[str] | None
    metadata: tuple[tuple[str, frozenset | None, Any], ...]  # key, allowed set (in) or None, equals value
    confidence_below: float | None
    description: str
    mode: str | None  # for a hybrid tier: the mode of the content category it matches

    def matches(self, application: str, model: str, metadata: dict, confidence: float | None) -> bool:
        if self.applications is not None and application not in self.applications:
            return False
        if self.models is not None and model not in self.models:
            return False
        if self.confidence_below is not None and (confidence is None or confidence >= self.confidence_below):
            return False
        for key, allowed, expected in self.metadata:
            if key not in metadata:
                return False
            value = metadata[key]
            if allowed is not None:
                if not _hashable(value) or value not in allowed:
                    return False
                if not any(_same(value, candidate) for candidate in allowed if candidate == value):
                    return False  # True matched 1 (or 1 matched True) by hash only
            elif not _same(value, expected):
                return False
        return True


@dataclass(frozen=True, slots=True)
class _CompiledSignal:
    number: int  # 1-based
    label: str  # "signal 2 (costly)"
    kind: str
    applications: frozenset[str] | None
    measure: str | None
    quantile: float
    min_observations: int
    action: str
    raise_to: str | None
    key: str  # how the snapshot names the quantile it reads (cost@0.99)

    @classmethod
    def of(cls, index: int, rule: SignalRule) -> "_CompiledSignal":
        return cls(
            number=index + 1,
            label=f"signal {index + 1}" + (f" ({rule.name})" if rule.name else ""),
            kind=rule.signal,
            applications=_one_of(rule.application),
            measure=rule.measure,
            quantile=rule.quantile_or_default,
            min_observations=rule.min_observations_or_default,
            action=rule.action,
            raise_to=rule.raise_to,
            key=quantile_key(rule.measure, rule.quantile_or_default) if rule.measure else "",
        )

    def fires(self, application: str, measures: dict, metadata: dict, statistics: StatisticsView, basis, read: dict):
        """The figures that make it fire (``cost 0.42 USD > p99 0.08 USD``), or None. Quantiles it
        reads are noted in ``read`` for the decision's snapshot."""
        if self.kind == "outlier":
            value = measures.get(self.measure)
            threshold = statistics.quantile(application, self.measure, self.quantile, self.key)
            read[self.key] = threshold
            if value is None or basis is None or threshold is None or basis[1] < self.min_observations:
                return None
            if value <= threshold:
                return None
            return (
                f"{MEASURES[self.measure][0]} {format_figure(self.measure, value)} > "
                f"{quantile_label(self.quantile)} {format_figure(self.measure, threshold)} "
                f"(statistics v{basis[0]}, {basis[1]} outputs)"
            )
        if self.kind == "tool_failed":
            failed = measures.get("tool_errors") or 0
            return f"a tool step failed ({failed:g} tool errors)" if failed >= 1 else None
        flag = USER_FLAGS[self.kind]
        if metadata.get(flag) is True:
            return "the user asked for a human" if self.kind == "user_asked_for_human" else "the user abandoned"
        return None


def _hashable(value) -> bool:
    return isinstance(value, str | int | float | bool)


def _same(value, expected) -> bool:
    # JSON true is not 1: compare booleans only with booleans.
    if isinstance(value, bool) or isinstance(expected, bool):
        return type(value) is type(expected) and value == expected
    return value == expected


class CompiledPolicy:
    """One policy version, ready to classify outputs without touching the database."""

    def __init__(self, *, tenant_id: int, version: int, document: dict, overrides: dict[str, str]):
        parsed = PolicyDocument.model_validate(document)
        self.tenant_id = tenant_id
        self.version = version
        self.tiers: dict[str, TierSpec] = {tier.name: tier for tier in parsed.tiers}
        self.default_tier = parsed.default_tier
        self.overrides = overrides
        self.rules = tuple(
            _CompiledRule(
                number=index + 1,
                tier=rule.tier,
                applications=_one_of(rule.match.application),
                models=_one_of(rule.match.model),
                metadata=tuple(
                    (
                        condition.key,
                        frozenset(condition.in_) if condition.in_ is not None else None,
                        condition.equals,
                    )
                    for condition in rule.match.metadata
                ),
                confidence_below=rule.match.confidence_below,
                description=_describe(rule),
                mode=rule.mode,
            )
            for index, rule in enumerate(parsed.rules)
        )
        self.signals = tuple(_CompiledSignal.of(index, rule) for index, rule in enumerate(parsed.signals))

    def signals_apply(self, application: str) -> bool:
        """Whether some signal rule looks at outputs of ``application`` (their measures are then needed)."""
        return any(signal.applications is None or application in signal.applications for signal in self.signals)

    def classify(self, *, application: str, model: str, metadata: dict, confidence: float | None) -> tuple[str, str]:
        """The tier and why: the first matching rule, else the default tier."""
        tier, why, _ = self._match(application, model, metadata, confidence)
        return tier, why

    def _match(self, application, model, metadata, confidence) -> tuple[str, str, str | None]:
        for rule in self.rules:
            if rule.matches(application, model, metadata, confidence):
                return rule.tier, f"rule {rule.number}: {rule.description}", rule.mode
        return self.default_tier, "no rule matched: default tier", None

    def mode_of(self, tier_name: str, rule_mode: str | None) -> tuple[str, str]:
        """The review mode in a tier and how it came: a hybrid tier's from the rule (the
        content category), else its default; any other tier's is its own."""
        tier = self.tiers[tier_name]
        mode = tier.mode_for(rule_mode)
        if tier.mode != "hybrid":
            return mode, mode
        return mode, f"hybrid: {mode}" + (" by the rule" if rule_mode else " by default")

    def decide(
        self,
        *,
        external_id: str,
        application: str,
        model: str,
        metadata: dict,
        confidence: float | None,
        judges: Sequence["JudgeSignal"] | None = None,
        signals: Sequence[str] = (),
        overrides: dict[str, str] | None = None,
        measures: dict | None = None,
        statistics: StatisticsView = EMPTY_STATISTICS,
    ) -> Decision:
        """Classify and sample one output; with ``judges`` (their verdicts), finish the decision.

        Judges act in this order: a failing judge set to ``block`` blocks; failing
        judges set to ``raise_tier`` raise the tier; a failing ``force_review`` judge,
        an unsure judge (an error, or a score in its unsure band) and LLM judges
        that disagree (some pass, some fail) force a review; an ``adaptive`` tier's rate
        follows the judges' confidence. Other ``signals`` (an end user's thumbs-down
        while the judges ran) force a review too. ``overrides`` replace the compiled
        ones (finishing an output judged under an older version: the stop button as it
        is now). Deterministic, as the sampling draw is.

        The policy's signal rules read the output's ``measures`` (``policies.signals.measures_of``)
        and ``statistics`` (its application's quantiles); what they read is returned as the
        decision's ``signal_snapshot``, from which the same decision recomputes
        (``measures=snapshot["measures"], statistics=StatisticsView.stored(snapshot)``). Signals
        that fire raise the tier (with the judges' raises: the highest wins) or force a review.
        """
        tier_name, why, rule_mode = self._match(application, model, metadata, confidence)
        override = (self.overrides if overrides is None else overrides).get(application)
        if override == "block":
            return Decision(
                tier_name,
                False,
                "block",
                "blocked",
                f"application {application} is blocked; {why}",
                None,
                self.version,
                why,
                self.mode_of(tier_name, rule_mode)[0],
            )
        if override == "review_all":
            return Decision(
                tier_name,
                True,
                "hold",
                "pending_review",
                f"application {application} is set to review all; {why}",
                None,
                self.version,
                why,
                self.mode_of(tier_name, rule_mode)[0],
            )
        draw = sampling_draw(tenant_id=self.tenant_id, external_id=external_id, policy_version=self.version)
        forced: list[str] = list(signals)
        signal_raises: list[tuple[str, str]] = []  # (target tier, why)
        snapshot = None
        applying = [rule for rule in self.signals if rule.applications is None or application in rule.applications]
        if applying:
            measures = measures or {}
            read: dict = {}
            basis = statistics.basis(application)
            for rule in applying:
                figures = rule.fires(application, measures, metadata, statistics, basis, read)
                if figures is None:
                    continue
                if rule.action == "raise_tier":
                    signal_raises.append((self._target(tier_name, rule.raise_to), f"{rule.label}: {figures}"))
                else:
                    forced.append(f"{rule.label}: {figures}")
            snapshot = snapshot_of(basis=basis, quantiles=read, measures=measures)
        if judges:
            failing = [judge for judge in judges if judge.result == "fail"]
            blocking = [judge.name for judge in failing if judge.on_fail == "block"]
            if blocking:
                reason = f"{why}; judge {', '.join(blocking)} failed: blocked"
                mode = self.mode_of(tier_name, rule_mode)[0]
                return Decision(tier_name, False, "block", "blocked", reason, draw, self.version, why, mode, snapshot)
            raised = self._raised_tier(tier_name, [judge for judge in failing if judge.on_fail == "raise_tier"])
            if raised != tier_name:
                names = ", ".join(judge.name for judge in failing if judge.on_fail == "raise_tier")
                why = f"{why}; judge {names} failed: tier raised from {tier_name} to {raised}"
                tier_name = raised
                rule_mode = None  # the rule's content category spoke for its own tier, not the raised one
            forced += [f"judge {judge.name} failed" for judge in failing if judge.on_fail == "force_review"]
            forced += [f"judge {judge.name} unsure" for judge in judges if judge.unsure]
            # LLM judges give overall verdicts, so one passing what another fails is a
            # disagreement; built-in checks each test their own rule and act by on_fail.
            answered = {judge.result for judge in judges if judge.kind == "llm" and not judge.unsure}
            if {"pass", "fail"} <= answered:
                forced.append("judges disagree")
        if signal_raises:
            raised = self.tiers_ranked_max(tier_name, [target for target, _ in signal_raises])
            whys = "; ".join(why for _, why in signal_raises)
            if raised != tier_name:
                why = f"{why}; {whys}: tier raised from {tier_name} to {raised}"
                tier_name = raised
                rule_mode = None
            else:
                why = f"{why}; {whys}: tier {tier_name} already as high"
        tier = self.tiers[tier_name]
        mode, mode_note = self.mode_of(tier_name, rule_mode)
        tier_note = f"tier {tier_name}" + (f" ({mode_note})" if tier.mode == "hybrid" else "")
        rate, rate_note = tier.review_rate, f"rate {tier.review_rate:g}"
        if mode == "adaptive" and judges:
            confidence = min(judge.confidence for judge in judges)
            rate = min(1.0, max(tier.min_review_rate, tier.review_rate * 2 * (1 - confidence)))
            rate_note = f"adaptive rate {rate:.4g} (tier rate {tier.review_rate:g}, judge confidence {confidence:.3g})"
        boost = _flagged_boost(judges)
        if boost is not None and boost[0] > rate:
            rate = boost[0]
            rate_note = f"{rate_note}, judge {boost[1]} flagged: rate raised to {rate:g}"
        if forced:
            sampled = True
            reason = f"{why}; {tier_note}; {'; '.join(forced)}: review"
        else:
            sampled = draw < rate
            outcome = "review" if sampled else "no review"
            reason = f"{why}; {tier_note}, {rate_note}, drawn {draw:.4f}: {outcome}"
        if not sampled:
            return Decision(
                tier_name, False, "deliver", "auto_approved", reason, draw, self.version, why, mode, snapshot
            )
        delivery = "hold" if mode == "sequential" else "deliver"
        return Decision(tier_name, True, delivery, "pending_review", reason, draw, self.version, why, mode, snapshot)

    def _target(self, tier_name: str, raise_to: str | None) -> str:
        """The tier a raise asks for: ``raise_to``, else the next one (tiers rank as listed)."""
        if raise_to in self.tiers:
            return raise_to
        order = list(self.tiers)
        return order[min(order.index(tier_name) + 1, len(order) - 1)]

    def tiers_ranked_max(self, tier_name: str, targets: list[str]) -> str:
        """The highest of ``tier_name`` and ``targets``: a raise never lowers."""
        order = list(self.tiers)
        return order[max([order.index(tier_name), *(order.index(target) for target in targets)])]

    def _raised_tier(self, tier_name: str, raising: list["JudgeSignal"]) -> str:
        """The highest tier the raising judges ask for (tiers rank as the policy lists them)."""
        if not raising:
            return tier_name
        order = list(self.tiers)
        rank = order.index(tier_name)
        for judge in raising:
            target = order.index(judge.raise_to) if judge.raise_to in self.tiers else order.index(tier_name) + 1
            rank = max(rank, min(target, len(order) - 1))
        return order[rank]


def _flagged_boost(judges: Sequence["JudgeSignal"] | None) -> tuple[float, str] | None:
    """The highest rate asked by flagged judges that passed the output, and their names."""
    flagged = [judge for judge in judges or () if judge.flag_rate is not None and judge.result == "pass"]
    if not flagged:
        return None
    return max(judge.flag_rate for judge in flagged), ", ".join(sorted(judge.name for judge in flagged))


@dataclass(frozen=True, slots=True)
class JudgeSignal:
    """What the decision needs of one verdict, and of the judge configuration that gave it."""

    name: str
    result: str  # pass | fail | error
    score: float | None
    unsure: bool
    on_fail: str = "force_review"
    raise_to: str = ""
    kind: str = "llm"
    # The judge was flagged for low agreement with people when it judged (policies.JudgeFlag):
    # what it passes is reviewed at this rate at least. Kept on the verdict, so recomputable.
    flag_rate: float | None = None

    @property
    def confidence(self) -> float:
        """How sure the judge is the output is fine: its score when it passed, else 0."""
        if self.result != "pass" or self.unsure:
            return 0.0
        return 1.0 if self.score is None else self.score
