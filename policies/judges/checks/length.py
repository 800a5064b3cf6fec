"""Output length in characters, words or lines, within bounds."""

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

from policies.judges.checks.common import Check, join_words

Count = Annotated[int, Field(ge=0, le=100_000_000)]


class LengthParams(BaseModel):
    """Fails an output that is too short or too long, in characters and/or words."""

    model_config = ConfigDict(extra="forbid", strict=True)

    min_chars: Count | None = Field(default=None, description="Fewest characters (Unicode code points) allowed.")
    max_chars: Count | None = Field(default=None, description="Most characters (Unicode code points) allowed.")
    min_words: Count | None = Field(default=None, description="Fewest words (runs of non-whitespace) allowed.")
    max_words: Count | None = Field(default=None, description="Most words (runs of non-whitespace) allowed.")

    @model_validator(mode="after")
    def _bounds(self):
        if self.min_chars is None and self.max_chars is None and self.min_words is None and self.max_words is None:
            raise ValueError("give at least one of min_chars, max_chars, min_words or max_words")
        for unit in ("chars", "words"):
            low, high = getattr(self, f"min_{unit}"), getattr(self, f"max_{unit}")
            if low is not None and high is not None and low > high:
                raise ValueError(f"min_{unit} ({low}) must not exceed max_{unit} ({high})")
        return self


def _limits(low: int | None, high: int | None, unit: str) -> str:
    if low is not None and high is not None:
        return f"{low}-{high} {unit}"
    if low is not None:
        return f"at least {low} {unit}"
    return f"at most {high} {unit}"


class LengthCheck(Check):
    kind = "length"

    def __init__(self, params: LengthParams):
        self.bounds = []
        if params.min_chars is not None or params.max_chars is not None:
            self.bounds.append(("chars", "characters", params.min_chars, params.max_chars))
        if params.min_words is not None or params.max_words is not None:
            self.bounds.append(("words", "words", params.min_words, params.max_words))

    def _run(self, text: str) -> tuple[bool, str]:
        problems, measured = [], []
        for unit, label, low, high in self.bounds:
            count = len(text) if unit == "chars" else len(text.split())
            measured.append(f"{count} {label}")
            if low is not None and count < low:
                problems.append(f"too short: {count} {label}, at least {low} required")
            elif high is not None and count > high:
                problems.append(f"too long: {count} {label}, at most {high} allowed")
        if problems:
            return False, "; ".join(problems)
        limits = join_words([_limits(low, high, label) for _, label, low, high in self.bounds])
        return True, f"{join_words(measured)}, within {limits}"
