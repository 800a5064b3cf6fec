"""Every kind of judge, declared once: its name, label, params model and how it is compiled.

The model's choices and constraint (``policies.models.JudgeKind``), the API schemas
(``policies.schemas.JudgeKindName``), params validation and the runners all read this
table. To add a built-in check: write its module in ``policies/judges/checks/`` (a params
model and a ``Check`` subclass) and add one line here.
"""

from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings
from pydantic import BaseModel

from policies.judges.base import JudgeInput, Verdict
from policies.judges.checks.banned import BannedCheck, BannedParams
from policies.judges.checks.disclaimer import DisclaimerCheck, DisclaimerParams
from policies.judges.checks.json_schema import JsonSchemaCheck, JsonSchemaParams
from policies.judges.checks.length import LengthCheck, LengthParams
from policies.judges.checks.pii import PiiCheck, PiiParams
from policies.judges.llm import LlmParams, llm_judge

Runner = Callable[[JudgeInput], Verdict]


@dataclass(frozen=True)
class JudgeKindSpec:
    """One kind of judge."""

    name: str
    label: str
    params: type[BaseModel]
    compile: Callable[[BaseModel, str], Runner]  # (validated params, API key) -> runner
    builtin: bool = True  # deterministic, in-process; False for judges that call out


def _llm_runner(params: BaseModel, api_key: str) -> Runner:
    def run(judge_input: JudgeInput) -> Verdict:
        return llm_judge(params, api_key or None, judge_input, allow_private=settings.HITL_JUDGE_ALLOW_PRIVATE)

    return run


def _check(check: Callable[[BaseModel], Runner]) -> Callable[[BaseModel, str], Runner]:
    return lambda params, api_key: check(params)


JUDGE_KINDS: dict[str, JudgeKindSpec] = {
    spec.name: spec
    for spec in (
        JudgeKindSpec("llm", "LLM as a judge", LlmParams, _llm_runner, builtin=False),
        JudgeKindSpec("pii", "PII (emails, phones, card numbers, IBANs)", PiiParams, _check(PiiCheck)),
        JudgeKindSpec("banned", "Banned phrases and patterns", BannedParams, _check(BannedCheck)),
        JudgeKindSpec("length", "Output length", LengthParams, _check(LengthCheck)),
        JudgeKindSpec("json_schema", "Valid JSON against a schema", JsonSchemaParams, _check(JsonSchemaCheck)),
        JudgeKindSpec("disclaimer", "Required disclaimer", DisclaimerParams, _check(DisclaimerCheck)),
    )
}
BUILTIN_KINDS = tuple(name for name, spec in JUDGE_KINDS.items() if spec.builtin)


def judge_kind(kind: str) -> JudgeKindSpec:
    spec = JUDGE_KINDS.get(kind)
    if spec is None:
        raise ValueError(f"unknown judge kind {kind!r}; expected one of {', '.join(JUDGE_KINDS)}")
    return spec


def judge_params_validate(kind: str, params: dict | BaseModel) -> BaseModel:
    """The kind's params model (raises pydantic.ValidationError, or ValueError for an unknown kind)."""
    model = judge_kind(kind).params
    if isinstance(params, BaseModel):
        if not isinstance(params, model):
            raise TypeError(f"{kind} judges take {model.__name__}, not {type(params).__name__}")
        return params
    return model.model_validate(params)


def judge_compile(kind: str, params: dict | BaseModel, api_key: str = "") -> Runner:
    """Compile once (regexes, validators, the prompt); call the result once per output."""
    return judge_kind(kind).compile(judge_params_validate(kind, params), api_key)
