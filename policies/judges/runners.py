"""From a judge's stored configuration to something that judges an output."""

from collections.abc import Callable

import orjson
from pydantic import ValidationError

from hitl.cache import ByteBoundedCache
from policies.judges.base import JudgeInput, Verdict
from policies.judges.registry import judge_compile, judge_params_validate


def judge_params_normalize(*, kind: str, params: dict) -> dict:
    """Validated params with every default explicit (raises pydantic.ValidationError or ValueError)."""
    return judge_params_validate(kind, params).model_dump(mode="json")


# Keyed (judge id, version, ...): a judge's new version drops its older runners.
_RUNNERS = ByteBoundedCache("judge runners", max_entries=1024)


def judge_runner(
    *, judge_id: int, version: int, kind: str, params: dict, api_key: str
) -> Callable[[JudgeInput], Verdict]:
    """Compiled once per judge version (and key) in each process: regexes, schemas, the prompt."""
    # The configuration itself is part of the key: a judge id and version name one
    # configuration in a database, not across databases (tests, restores).
    serialized = orjson.dumps(params, option=orjson.OPT_SORT_KEYS)
    key = (judge_id, version, serialized, api_key)
    return _RUNNERS.get_or_build(key, lambda: (_compile(kind, params, api_key), 2 * len(serialized) + len(api_key)))


def _compile(kind: str, params: dict, api_key: str) -> Callable[[JudgeInput], Verdict]:
    try:
        return judge_compile(kind, params, api_key)
    except ValidationError as error:
        # Saved under older rules (the URL rules tightened, say): an error verdict sends the
        # output to a person; raising here would leave it waiting for this judge for ever.
        fields = ", ".join(".".join(str(part) for part in item["loc"]) or "params" for item in error.errors())
        rationale = f"the judge's settings are no longer valid ({fields}): edit the judge"
        return lambda judge_input: Verdict("error", None, rationale, 0.0, attempts=0)
