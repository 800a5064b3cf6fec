"""What a policy change would do: the current and a candidate policy over the same outputs.

Pure, like the engine it calls: rows in (as ``reviews.selectors.outputs_for_preview``
reads them), a per-tier table out. Both policies decide every output with the same
draws (the candidate is compiled under the current version number), so the difference
between the two columns is the change alone, not the reshuffle of draws that publishing
a new version also brings. Stop buttons and judges' signals are left out of both: they
act the same before and after a change of the policy document. What was recorded at
ingest (with judges and stop buttons, under whichever version was in force) is counted
beside, for reference. Signal rules (outliers, tool failures, users' flags) act like judges'
signals, after classification, and are left out of both columns too.
"""

import json
from collections.abc import Iterable
from dataclasses import dataclass, field

from policies.engine import CompiledPolicy, sampling_draw

# external_id, application, model, metadata, confidence, risk_tier, review_required
PreviewRow = tuple[str, str, str, dict | None, float | None, str, bool]
NO_OVERRIDES: dict[str, str] = {}


@dataclass(slots=True)
class TierPreview:
    """One tier's outputs and sampled outputs, now and with the change."""

    tier: str
    outputs_now: int = 0
    outputs_after: int = 0
    sampled_now: int = 0
    sampled_after: int = 0
    recorded_outputs: int = 0
    recorded_sampled: int = 0
    in_current: bool = True
    in_candidate: bool = True

    @property
    def outputs_difference(self) -> int:
        return self.outputs_after - self.outputs_now

    @property
    def sampled_difference(self) -> int:
        return self.sampled_after - self.sampled_now


@dataclass(slots=True)
class PolicyPreview:
    """The per-tier table, its totals, and how many outputs change tier or sampling."""

    tiers: list[TierPreview]
    total: TierPreview
    outputs: int
    moved: int = 0  # outputs whose tier changes
    newly_sampled: int = 0  # sampled with the change, not now
    no_longer_sampled: int = 0  # sampled now, not with the change
    notes: list[str] = field(default_factory=list)


def policy_preview(*, current: CompiledPolicy, candidate_document: dict, rows: Iterable[PreviewRow]) -> PolicyPreview:
    """Decide every row under both policies and count, per tier, outputs and sampled outputs.

    ``candidate_document`` must be valid (``policies.services.policy_validate``).
    """
    candidate = CompiledPolicy(
        tenant_id=current.tenant_id, version=current.version, document=candidate_document, overrides=NO_OVERRIDES
    )
    table: dict[str, TierPreview] = {}
    for name in candidate.tiers:
        table[name] = TierPreview(name, in_current=name in current.tiers)
    for name in current.tiers:
        if name not in table:
            table[name] = TierPreview(name, in_candidate=False)

    def row_of(name: str) -> TierPreview:
        entry = table.get(name)
        if entry is None:  # recorded under a tier neither policy has any more
            entry = table[name] = TierPreview(name, in_current=False, in_candidate=False)
        return entry

    outputs = moved = newly = dropped = 0
    classify_now, classify_after = current.classify, candidate.classify
    tiers_now, tiers_after = current.tiers, candidate.tiers
    tenant_id, version = current.tenant_id, current.version
    for external_id, application, model, metadata, confidence, recorded_tier, recorded_review in rows:
        outputs += 1
        metadata = metadata if isinstance(metadata, dict) else {}
        # What CompiledPolicy.decide does without judges, signals or stop buttons (tests/policies/
        # test_preview.py holds the two together): the tier of the first matching rule, and
        # the draw, the same for both, against that tier's rate. Without building a Decision
        # and its reason twice per output, 10,000 outputs take a quarter of the time.
        draw = sampling_draw(tenant_id=tenant_id, external_id=external_id, policy_version=version)
        tier_now = classify_now(application=application, model=model, metadata=metadata, confidence=confidence)[0]
        tier_after = classify_after(application=application, model=model, metadata=metadata, confidence=confidence)[0]
        sampled_now = draw < tiers_now[tier_now].review_rate
        sampled_after = draw < tiers_after[tier_after].review_rate
        before_row, after_row = row_of(tier_now), row_of(tier_after)
        before_row.outputs_now += 1
        after_row.outputs_after += 1
        before_row.sampled_now += sampled_now
        after_row.sampled_after += sampled_after
        moved += tier_now != tier_after
        newly += sampled_after and not sampled_now
        dropped += sampled_now and not sampled_after
        if recorded_tier:
            recorded = row_of(recorded_tier)
            recorded.recorded_outputs += 1
            if recorded_review:
                recorded.recorded_sampled += 1
    total = TierPreview("all tiers")
    for entry in table.values():
        total.outputs_now += entry.outputs_now
        total.outputs_after += entry.outputs_after
        total.sampled_now += entry.sampled_now
        total.sampled_after += entry.sampled_after
        total.recorded_outputs += entry.recorded_outputs
        total.recorded_sampled += entry.recorded_sampled
    return PolicyPreview(
        tiers=list(table.values()),
        total=total,
        outputs=outputs,
        moved=moved,
        newly_sampled=newly,
        no_longer_sampled=dropped,
    )


def _rate(value) -> str:
    return f"{float(value) * 100:g} %"


_TIER_FIELDS = {
    "review_rate": ("rate", _rate),
    "mode": ("mode", str),
    "default_mode": ("hybrid default mode", lambda value: value or "none"),
    "required_approvals": ("approvals", str),
    "min_reviewer_level": ("reviewer level", str),
    "sla_minutes": ("SLA minutes", str),
    "escalation": ("escalation", lambda value: "on" if value else "off"),
    "overlap_rate": ("overlap", _rate),
    "min_review_rate": ("minimum adaptive rate", _rate),
    "rubric": ("rubric", lambda value: value or "none"),
    "description": ("description", lambda value: repr(value or "")),
}


def policy_changes(*, current: dict, candidate: dict) -> list[str]:
    """What a candidate document changes, in words: per tier and field, the default tier, the rules."""
    changes: list[str] = []
    old_tiers = {tier["name"]: tier for tier in current.get("tiers", [])}
    new_tiers = {tier["name"]: tier for tier in candidate.get("tiers", [])}
    for name, tier in new_tiers.items():
        before = old_tiers.get(name)
        if before is None:
            changes.append(f"new tier {name}")
            continue
        for key, (label, shown) in _TIER_FIELDS.items():
            if before.get(key) != tier.get(key) and not (before.get(key) in (None, "") and tier.get(key) in (None, "")):
                changes.append(f"tier {name}: {label} {shown(before.get(key))} → {shown(tier.get(key))}")
    changes += [f"tier {name} removed" for name in old_tiers if name not in new_tiers]
    if [name for name in new_tiers if name in old_tiers] != [name for name in old_tiers if name in new_tiers]:
        changes.append("tiers reordered (a raised tier ranks by this order)")
    if current.get("default_tier") != candidate.get("default_tier"):
        changes.append(f"default tier {current.get('default_tier')} → {candidate.get('default_tier')}")
    old_rules = [json.dumps(rule, sort_keys=True) for rule in current.get("rules", [])]
    new_rules = [json.dumps(rule, sort_keys=True) for rule in candidate.get("rules", [])]
    added = [rule for rule in new_rules if rule not in old_rules]
    removed = [rule for rule in old_rules if rule not in new_rules]
    if added or removed:
        said = [f"{len(added)} added" if added else "", f"{len(removed)} removed or changed" if removed else ""]
        changes.append(
            f"rules: {', '.join(part for part in said if part)} ({len(old_rules)} before, {len(new_rules)} after)"
        )
    elif old_rules != new_rules:
        changes.append("rules reordered (the first that matches wins)")
    old_signals = [json.dumps(rule, sort_keys=True) for rule in current.get("signals", [])]
    new_signals = [json.dumps(rule, sort_keys=True) for rule in candidate.get("signals", [])]
    if sorted(old_signals) != sorted(new_signals):
        changes.append(f"signals: {len(old_signals)} before, {len(new_signals)} after")
    return changes
