"""From a judge's stored configuration to something that judges an output."""

from collections.abc import Callable

import orjson
from pydantic import ValidationError

from policies.judges.base import JudgeInput, Verdict
from policies.judges.registry import judge_compile, judge_params_validate


def judge_params_normalize(*, kind: str, params: dict) -> dict:
    """Validated params with every default explicit (raises pydantic.ValidationError or ValueError)."""
    return judge_params_validate(kind, params).model_dump(mode="json")


_RUNNERS: dict[tuple[int, int, bytes, str], Callable[[JudgeInput], Verdict]] = {}


def judge_runner(
    *, judge_id: int, version: int, kind: str, params: dict, api_key: str
) -> Callable[[JudgeInput], Verdict]:
    """Compiled once per judge version (and key) in each process: regexes, schemas, the prompt."""
    # The configuration itself is part of the key: a judge id and version name one
    # configuration in a database, not across databases (tests, restores).
    key = (judge_id, version, orjson.dumps(params, option=orjson.OPT_SORT_KEYS), api_key)
    runner = _RUNNERS.get(key)
    if runner is None:
        if len(_RUNNERS) >= 256:
            _RUNNERS.clear()
        runner = _RUNNERS[key] = _compile(kind, params, api_key)
    return runner


def _compile(kind: str, params: dict, api_key: str) -> Callable[[JudgeInput], Verdict]:
    try:
        return judge_compile(kind, params, api_key)
    except ValidationError as error:
        # Saved under older rules (the URL rules tightened, say): an error verdict sends the
        # output to a person; raising here would leave it waiting for this judge for ever.
        fields = ", ".join(".".join(str(part) for part in item["loc"]) or "params" for item in error.errors())
        rationale = f"the judge's settings are no longer valid ({fields}): edit the judge"
        return lambda judge_input: Verdict("error", None, rationale, 0.0, attempts=0)
