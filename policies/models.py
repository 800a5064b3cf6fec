"""Risk policies (tiers, rules, rubrics) live here."""
