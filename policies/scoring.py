"""A reviewer's scores checked against the criteria of a rubric version.

Add a criterion kind here and in ``policies.schemas.Criterion``.
"""

from hitl.errors import DomainValidationError, RuleViolationError, fields_message
from policies.schemas import Criterion


def scores_validate(*, criteria: list[dict] | None, scores, decision: str) -> dict:
    """Scores against the rubric version the task was created with; errors name ``scores.<key>``."""
    if scores is None:
        scores = {}
    if not isinstance(scores, dict):
        raise DomainValidationError("scores: must be an object", fields={"scores": ["Must be an object."]})
    if criteria is None:
        if scores:
            raise RuleViolationError("scores: this task has no rubric", fields={"scores": ["No rubric: no scores."]})
        return {}
    fields: dict[str, list[str]] = {}
    known = {}
    for raw in criteria:
        criterion = Criterion.model_validate(raw)
        known[criterion.key] = criterion
        value = scores.get(criterion.key)
        path = f"scores.{criterion.key}"
        if value is None:
            if criterion.required and decision != "escalate":
                fields[path] = [f"Required by the rubric ({criterion.label})."]
            continue
        if criterion.kind == "binary" and not isinstance(value, bool):
            fields[path] = ["Must be true or false."]
        elif criterion.kind == "graded" and (
            isinstance(value, bool) or not isinstance(value, int) or not criterion.min <= value <= criterion.max
        ):
            fields[path] = [f"Must be a whole number from {criterion.min} to {criterion.max}."]
        elif criterion.kind == "categorical" and value not in criterion.options:
            fields[path] = [f"Must be one of: {', '.join(criterion.options)}."]
        elif criterion.kind == "text" and (not isinstance(value, str) or len(value) > 10_000):
            fields[path] = ["Must be text of at most 10,000 characters."]
    for key in scores:
        if key not in known:
            fields[f"scores.{key}"] = ["Not a criterion of this rubric."]
    if fields:  # scores follow the task's rubric, not the published schema: a 422
        raise RuleViolationError(fields_message(fields), fields=fields)
    return scores
