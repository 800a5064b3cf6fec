"""What every judge takes and gives: pure data, no database.

A judge is tenant configuration (``policies.models.Judge``); running one turns a
``JudgeInput`` into a ``Verdict``. Built-in checks live in ``checks.py``, the
LLM-as-a-judge client in ``llm.py``; the service that stores verdicts and finishes
the sampling decision is ``reviews.services.judging``.
"""

from dataclasses import dataclass, field
from typing import Any, Literal

Result = Literal["pass", "fail", "error"]


@dataclass(frozen=True, slots=True)
class JudgeInput:
    """The parts of an output a judge may look at."""

    output: str
    input: Any = None  # what the model was asked: a string, a message list or an object
    context: tuple[str, ...] = ()  # retrieved passages found in the trace
    application: str = ""
    metadata: dict = field(default_factory=dict)
    rubric: dict | None = None  # {"name", "version", "criteria"} when the output's tier has one


@dataclass(frozen=True, slots=True)
class Verdict:
    """One judge's answer about one output.

    ``score`` is in [0, 1], 1 meaning good; built-in checks give 1.0 or 0.0.
    ``error`` means the judge could not answer (down, timed out, rate-limited,
    garbage): it counts as unsure, so the output goes to a person.
    """

    result: Result
    score: float | None
    rationale: str
    latency_ms: float
    attempts: int = 1
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cost: float | None = None  # in the currency of the configured prices, or as the endpoint reports it
    model: str = ""
