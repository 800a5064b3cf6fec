"""A required disclaimer (one of several, or all of them) present in the output."""

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from policies.judges.checks.common import Check, normalize_space, not_blank, plural, quoted

DisclaimerText = Annotated[str, StringConstraints(min_length=1, max_length=2000), AfterValidator(not_blank)]


class DisclaimerParams(BaseModel):
    """Fails an output that lacks a required disclaimer."""

    model_config = ConfigDict(extra="forbid", strict=True)

    texts: Annotated[list[DisclaimerText], Field(min_length=1, max_length=50)] = Field(
        description="Required texts; runs of whitespace match any whitespace."
    )
    require: Literal["any", "all"] = Field(
        default="any", description="Whether any one text suffices, or all must appear."
    )
    case_sensitive: bool = Field(default=False, description="Match letter case exactly.")


class DisclaimerCheck(Check):
    kind = "disclaimer"

    def __init__(self, params: DisclaimerParams):
        self.case_sensitive = params.case_sensitive
        self.require_all = params.require == "all"
        self.texts = [(text, self._normalize(text)) for text in params.texts]

    def _normalize(self, text: str) -> str:
        text = normalize_space(text)
        return text if self.case_sensitive else text.casefold()

    def _run(self, text: str) -> tuple[bool, str]:
        haystack = self._normalize(text)
        present = [original for original, needle in self.texts if needle in haystack]
        missing = [original for original, needle in self.texts if needle not in haystack]
        if self.require_all:
            if not missing:
                return True, f"contains all {plural(len(self.texts), 'required disclaimer', 'required disclaimers')}"
            names = ", ".join(quoted(normalize_space(text)) for text in missing[:3])
            more = ", …" if len(missing) > 3 else ""
            return False, f"missing {len(missing)} of {len(self.texts)} required disclaimers: {names}{more}"
        if present:
            return True, f"contains required disclaimer {quoted(normalize_space(present[0]))}"
        if len(self.texts) == 1:
            return False, f"missing required disclaimer {quoted(normalize_space(self.texts[0][0]))}"
        return False, f"none of the {len(self.texts)} required disclaimers found"
