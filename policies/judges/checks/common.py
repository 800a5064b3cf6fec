"""What every built-in check shares: the wrapper that times a check and never lets a bug escape,
and the wording helpers of rationales."""

import logging
import time

from policies.judges.base import JudgeInput, Verdict

logger = logging.getLogger(__name__)


def quoted(text: str, limit: int = 60) -> str:
    """A tenant-written phrase or pattern, quoted as written and cut short, for a message."""
    return f"'{text if len(text) <= limit else text[: limit - 1] + '…'}'"


def plural(count: int, singular: str, plural: str) -> str:
    return f"{count} {singular if count == 1 else plural}"


def join_words(items: list[str], conjunction: str = "and") -> str:
    if len(items) <= 1:
        return "".join(items)
    return f"{', '.join(items[:-1])} {conjunction} {items[-1]}"


def normalize_space(text: str) -> str:
    """Runs of (Unicode) whitespace become one space; the ends are trimmed."""
    return " ".join(text.split())


def not_blank(text: str) -> str:
    if not text.strip():
        raise ValueError("must contain something other than whitespace")
    return text


class Check:
    """Times the check, coerces an odd output to text, and never lets a bug escape.

    Subclasses implement ``_run(text) -> (passed, rationale)``.
    """

    kind = ""

    def __call__(self, judge_input: JudgeInput) -> Verdict:
        started = time.perf_counter()
        output = judge_input.output
        text = output if isinstance(output, str) else ("" if output is None else str(output))
        try:
            passed, rationale = self._run(text)
        except Exception:
            # A bug here must cost one output a human look, not the worker its batch.
            logger.exception("built-in %s check failed", self.kind)
            return Verdict(
                result="error",
                score=None,
                rationale=f"the {self.kind} check failed unexpectedly",
                latency_ms=(time.perf_counter() - started) * 1000,
            )
        return Verdict(
            result="pass" if passed else "fail",
            score=1.0 if passed else 0.0,
            rationale=rationale,
            latency_ms=(time.perf_counter() - started) * 1000,
        )

    def _run(self, text: str) -> tuple[bool, str]:  # pragma: no cover - abstract
        raise NotImplementedError
