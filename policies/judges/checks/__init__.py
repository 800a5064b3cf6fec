"""Built-in deterministic judges: PII, banned phrases, length, JSON Schema, disclaimers.

Each kind has a params model (tenant configuration, validated when the judge is
saved and shown in the OpenAPI schema) and a check built once from it:
``builtin_check(kind, params)`` compiles the patterns and validators and returns a
callable that turns one ``JudgeInput`` into a ``Verdict``. These run on every
sampled output, thousands a second, so the per-output work is one scan where
possible and nothing is compiled per call.

Tenant-supplied regular expressions (banned patterns, and ``pattern`` and
``patternProperties`` in JSON Schemas) run on RE2: linear time, no backtracking, so
no pattern can hang a worker. The PII patterns are ours, fixed and reviewed: they
use the standard ``re`` module for its look-behind, with every repetition either
bounded or unambiguous, so their cost stays linear in the output's length.

Rationales never repeat detected personal data in full: emails keep their first
character and domain, card numbers and IBANs their last four characters, phone
numbers their last two digits.

One module per kind holds its params model and its check; the kinds are declared once,
in ``policies.judges.registry``.
"""
