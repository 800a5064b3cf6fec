"""Banned phrases (on word boundaries) and banned regular expressions (RE2)."""

from typing import Annotated, Any

import re2
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, model_validator

from policies.judges.checks.common import Check, join_words, normalize_space, not_blank, plural, quoted
from policies.judges.checks.re2_patterns import re2_error, re2_options, re2_pattern_valid

# Word characters for phrase boundaries: letters, combining marks, digits, underscore.
_PHRASE_EDGE_START = r"(?:^|[^\pL\pM\pN_])"
_PHRASE_EDGE_END = r"(?:[^\pL\pM\pN_]|$)"
_PHRASE_SPACE = r"[\s\p{Z}]+"


BannedPhrase = Annotated[str, StringConstraints(min_length=1, max_length=200), AfterValidator(not_blank)]
BannedPattern = Annotated[str, StringConstraints(min_length=1, max_length=1000), AfterValidator(re2_pattern_valid)]


def _phrase_regex(phrase: str) -> str:
    words = phrase.split()
    body = _PHRASE_SPACE.join(re2.escape(word) for word in words)
    start = _PHRASE_EDGE_START if (words[0][0].isalnum() or words[0][0] == "_") else ""
    end = _PHRASE_EDGE_END if (words[-1][-1].isalnum() or words[-1][-1] == "_") else ""
    return start + body + end


class BannedParams(BaseModel):
    """Fails an output that contains a banned phrase or matches a banned regular expression."""

    model_config = ConfigDict(extra="forbid", strict=True)

    phrases: Annotated[list[BannedPhrase], Field(max_length=1000)] = Field(
        default_factory=list,
        description="Phrases that must not appear. Runs of whitespace match any whitespace; a phrase that "
        "starts or ends with a letter or digit only matches at a word boundary ('ass' does not match 'class').",
    )
    patterns: Annotated[list[BannedPattern], Field(max_length=100)] = Field(
        default_factory=list,
        description="Regular expressions in RE2 syntax (https://github.com/google/re2/wiki/Syntax): linear-time "
        "matching, so no look-around or backreferences. Searched anywhere in the output.",
    )
    case_sensitive: bool = Field(
        default=False,
        description="Match letter case exactly. Applies to phrases and patterns; a pattern may still use (?i).",
    )

    @model_validator(mode="after")
    def _something_banned(self):
        if not self.phrases and not self.patterns:
            raise ValueError("give at least one phrase or pattern")
        try:
            _banned_compile(self)
        except re2.error as error:
            raise ValueError(f"the phrases and patterns together are too large for RE2: {re2_error(error)}") from None
        return self


def _banned_compile(params: BannedParams) -> tuple[Any, list[tuple[str, Any]]]:
    """One combined regex for the scan, and each item alone to name what matched."""
    options = re2_options(case_sensitive=params.case_sensitive)
    items = [(f"phrase {quoted(normalize_space(phrase))}", _phrase_regex(phrase)) for phrase in params.phrases]
    items += [(f"pattern {quoted(pattern)}", pattern) for pattern in params.patterns]
    combined = re2.compile("|".join(f"(?:{regex})" for _, regex in items), options)
    return combined, [(label, re2.compile(regex, options)) for label, regex in items]


class BannedCheck(Check):
    kind = "banned"
    examples = 3

    def __init__(self, params: BannedParams):
        self.combined, self.items = _banned_compile(params)
        checked = []
        if params.phrases:
            checked.append(plural(len(params.phrases), "phrase", "phrases"))
        if params.patterns:
            checked.append(plural(len(params.patterns), "pattern", "patterns"))
        self.pass_rationale = f"no banned phrase or pattern found ({join_words(checked)} checked)"

    def _run(self, text: str) -> tuple[bool, str]:
        if self.combined.search(text) is None:
            return True, self.pass_rationale
        # The failing path is the rare one: only now find out which items matched.
        matched = [label for label, regex in self.items if regex.search(text) is not None]
        shown = ", ".join(matched[: self.examples])
        more = f" and {len(matched) - self.examples} more" if len(matched) > self.examples else ""
        return False, f"contains banned {shown}{more}"
