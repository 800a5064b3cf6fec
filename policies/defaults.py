"""The policy a new tenant starts with (seed 001, Table 3: low / medium / high / critical)."""

DEFAULT_POLICY = {
    "default_tier": "medium",
    "tiers": [
        {
            "name": "low",
            "description": "Internal or low-impact outputs: spot checks.",
            "review_rate": 0.05,
            "mode": "parallel",
            "required_approvals": 1,
            "min_reviewer_level": 1,
            "sla_minutes": 24 * 60,
            "escalation": False,
            "overlap_rate": 0.1,
        },
        {
            "name": "medium",
            "description": "Customer-facing outputs: regular sampling.",
            "review_rate": 0.25,
            "mode": "parallel",
            "required_approvals": 1,
            "min_reviewer_level": 1,
            "sla_minutes": 8 * 60,
            "escalation": False,
            "overlap_rate": 0.1,
        },
        {
            "name": "high",
            "description": "Consequential outputs: most are held for review, with specialist escalation.",
            "review_rate": 0.75,
            "mode": "sequential",
            "required_approvals": 1,
            "min_reviewer_level": 2,
            "sla_minutes": 2 * 60,
            "escalation": True,
        },
        {
            "name": "critical",
            "description": "Regulated or irreversible outputs: every one is held for two approvals.",
            "review_rate": 1.0,
            "mode": "sequential",
            "required_approvals": 2,
            "min_reviewer_level": 2,
            "sla_minutes": 60,
            "escalation": True,
        },
    ],
    "rules": [
        {"name": "low model confidence", "tier": "high", "match": {"confidence_below": 0.5}},
    ],
}
