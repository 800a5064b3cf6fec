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
"""

import functools
import json
import logging
import re
import time
from collections.abc import Callable
from typing import Annotated, Any, Literal

import re2
from jsonschema import Draft202012Validator, validators
from jsonschema.exceptions import SchemaError, ValidationError
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator
from referencing import Registry
from referencing.exceptions import Unresolvable
from referencing.jsonschema import DRAFT202012

from policies.judges.base import JudgeInput, Verdict

logger = logging.getLogger(__name__)

__all__ = ["BUILTIN_PARAMS", "builtin_check", "builtin_params_validate"]


# Shared helpers -----------------------------------------------------------------


def _quoted(text: str, limit: int = 60) -> str:
    """A tenant-written phrase or pattern, quoted as written and cut short, for a message."""
    return f"'{text if len(text) <= limit else text[: limit - 1] + '…'}'"


def _plural(count: int, singular: str, plural: str) -> str:
    return f"{count} {singular if count == 1 else plural}"


def _join(items: list[str], conjunction: str = "and") -> str:
    if len(items) <= 1:
        return "".join(items)
    return f"{', '.join(items[:-1])} {conjunction} {items[-1]}"


def _normalize_space(text: str) -> str:
    """Runs of (Unicode) whitespace become one space; the ends are trimmed."""
    return " ".join(text.split())


def _not_blank(text: str) -> str:
    if not text.strip():
        raise ValueError("must contain something other than whitespace")
    return text


class _Check:
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


# PII ----------------------------------------------------------------------------

PiiKind = Literal["email", "phone", "card", "iban"]
PII_KINDS: tuple[str, ...] = ("email", "phone", "card", "iban")
_PII_LABELS = {
    "email": ("email address", "email addresses"),
    "phone": ("phone number", "phone numbers"),
    "card": ("card number", "card numbers"),
    "iban": ("IBAN", "IBANs"),
}
_PII_EXAMPLES = 3  # masked examples named per kind in a rationale


class PiiParams(BaseModel):
    """Fails an output that contains personal data: email addresses, phone numbers, card numbers, IBANs."""

    model_config = ConfigDict(extra="forbid", strict=True)

    detect: Annotated[list[PiiKind], Field(min_length=1, max_length=4)] = Field(
        default_factory=lambda: list(PII_KINDS),
        description="What to look for. 'card': 13-19 digits, optionally separated by single spaces or dashes, "
        "passing the Luhn check. 'iban': passing the ISO 13616 mod-97 check. 'phone': international numbers "
        "(+CC or 00CC) and common national formats (North American 3-3-4, leading-0 trunk numbers) with at "
        "least 8 digits; bare digit runs without a leading +, 00 or 0 are not counted, so amounts, years and "
        "order numbers are not flagged. 'email': addresses with a dotted domain.",
    )

    @field_validator("detect")
    @classmethod
    def _unique(cls, detect: list[str]) -> list[str]:
        repeated = sorted({kind for kind in detect if detect.count(kind) > 1})
        if repeated:
            raise ValueError(f"list each kind once; repeated: {', '.join(repeated)}")
        return detect


# Emails are looked for only around each "@". Everything else starts with a digit,
# "+", "(" or a capital letter (IBANs): a cheap scan for those characters finds where
# the full pattern is tried, which is far faster than trying it at every position.
# Its named group says which kind; the code below confirms it (Luhn, mod-97, digit
# counts). Alternatives are tried in this order at each position, so a phone number
# or IBAN is consumed before the card pattern could see its digits. A candidate never
# starts right after a word character, so a scan does not restart inside a token.
_LOCAL_CHAR = r"[\w!#$%&'*+/=?^`{|}~-]"
_EMAIL_PATTERN = re.compile(
    r"""
    (?<![\w.!#$%&'*+/=?^`{|}~-])
    LOCAL+(?:\.LOCAL+)*
    @(?:[^\W_](?:[\w-]{0,61}[^\W_])?\.)+[^\W\d_]{2,63}
    (?![\w-]|\.[^\W_])
    """.replace("LOCAL", _LOCAL_CHAR),
    re.VERBOSE,
)
_EMAIL_LOCAL_MAX = 64  # RFC 5321
_EMAIL_DOMAIN_MAX = 255
# Starts worth trying: a digit run (the scan skips the rest of it: no candidate starts
# right after a digit), "+", "(", or two capitals and two digits (an IBAN). One leading
# character class lets the regex engine skip everything else at C speed.
_NUMBER_START = re.compile(r"[0-9+(A-Z](?:(?<=[0-9])[0-9]*|(?<=[+(])|(?<=[A-Z])(?=[A-Z][0-9][0-9]))")
_NUMBER_PATTERN = re.compile(
    r"""
    (?P<iban>
        (?<!\w)
        [A-Z]{2}[0-9]{2}
        (?:[A-Z0-9]{11,30}|(?:\ [A-Z0-9]{4}){2,7}(?:\ [A-Z0-9]{1,4})?)
        (?!\w)
    )
  | (?P<phone_intl>
        (?<![\w+])
        (?:\+|(?<![.,])00(?=[1-9][0-9]{0,2}[ .-]))     # 00CC must be followed by a separator
        [1-9][0-9]{0,2}
        (?:[ .-]?\([0-9]{1,4}\))?                       # +44 (0)20 ...
        (?:[ .-]?[0-9]){6,14}
        (?![\w]|[ .-]?[0-9])
    )
  | (?P<phone_nanp>
        (?<![\w+.-])(?<![0-9][ ])
        (?:1[ .-]?)?
        (?:\([2-9][0-9]{2}\)\ ?|[2-9][0-9]{2}[ .-])
        [2-9][0-9]{2}[ .-][0-9]{4}
        (?![\w]|[ .-]?[0-9])
    )
  | (?P<phone_national>
        (?<![\w+.,/:-])(?<![0-9][ ])
        (?:
            \(0[1-9][0-9]{0,4}\)\ ?[0-9]{2,8}(?:[ .-][0-9]{2,8}){0,3}
          | 0[1-9][0-9]{0,4}(?P<separator>[ .-])[0-9]{2,8}(?:(?P=separator)[0-9]{2,8}){0,4}
          | 0[1-9][0-9]{8,10}
        )
        (?![\w]|[ .-]?[0-9])
    )
  | (?P<card>
        (?<![\w+])(?<![0-9][.,-])
        [0-9](?:[ -]?[0-9]){12,18}
        (?![\w]|[ .,-]?[0-9])
    )
    """,
    re.VERBOSE,
)
_DIGITS = re.compile(r"[0-9]")
_CARD_GROUPS = re.compile(r"[ -]")


def _digits(text: str) -> str:
    return "".join(_DIGITS.findall(text))


def _luhn_valid(digits: str) -> bool:
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if position % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def _card_number(candidate: str) -> str | None:
    """The card number in a candidate, if any.

    A run of digit groups can carry extra digits on either side ("4242 4242 4242 4242 12/26"),
    so when the whole run fails, runs of whole groups cut from either end are tried.
    """
    groups = _CARD_GROUPS.split(candidate)
    windows = [groups]
    windows += [groups[:end] for end in range(len(groups) - 1, 0, -1)]
    windows += [groups[start:] for start in range(1, len(groups))]
    for window in windows:
        digits = "".join(window)
        if 13 <= len(digits) <= 19 and _luhn_valid(digits):
            return digits
    return None


def _iban_valid(compact: str) -> bool:
    if not 15 <= len(compact) <= 34:
        return False
    rearranged = compact[4:] + compact[:4]
    return int("".join(str(int(char, 36)) for char in rearranged)) % 97 == 1


def _iban(candidate: str) -> str | None:
    """The IBAN in a candidate, if any; a trailing word in capitals may have been swept in."""
    groups = candidate.split(" ")
    for end in range(len(groups), 0, -1):
        compact = "".join(groups[:end])
        if len(compact) < 15:
            break
        if _iban_valid(compact):
            return compact
    return None


def _mask_email(address: str) -> str:
    local, _, domain = address.rpartition("@")
    return f"{local[0] if len(local) > 1 else ''}***@{domain}"


def _emails(text: str):
    """Matches of the email pattern, looked for only around each "@".

    Each look covers a window of about 320 characters; when the "@"s are so dense
    that the windows would cover the text several times over, one scan is cheaper.
    """
    if text.count("@") * (_EMAIL_LOCAL_MAX + _EMAIL_DOMAIN_MAX) > len(text):
        yield from _EMAIL_PATTERN.finditer(text)
        return
    resume = 0
    at = text.find("@")
    while at != -1:
        if at >= resume:
            match = _EMAIL_PATTERN.search(text, max(resume, at - _EMAIL_LOCAL_MAX), at + _EMAIL_DOMAIN_MAX)
            if match is not None and match.start() < at < match.end():
                yield match
                resume = match.end()
        at = text.find("@", at + 1)


def _numbers(text: str):
    """Matches of the number pattern, tried only where one could start."""
    resume = 0
    match_at = _NUMBER_PATTERN.match
    for start in _NUMBER_START.finditer(text):
        position = start.start()
        if position < resume:
            continue
        match = match_at(text, position)
        if match is not None:
            yield match
            resume = match.end()


def _pii_found(text: str, *, emails: bool = True, numbers: bool = True) -> dict[str, dict[str, str]]:
    """Kind -> {normalised value: masked form}, in order of appearance, distinct values only.

    ``numbers`` covers phones, cards and IBANs together: each is scanned for even when
    only one is reported, so a phone number's digits are never taken for a card.
    """
    found: dict[str, dict[str, str]] = {}
    if emails and "@" in text:
        emails = found["email"] = {}
        for match in _emails(text):
            address = match.group()
            emails.setdefault(address.lower(), _mask_email(address))
    if not numbers or _DIGITS.search(text) is None:
        return found
    for match in _numbers(text):
        group = match.lastgroup
        candidate = match.group()
        if group == "iban":
            compact = _iban(candidate)
            if compact is None:
                continue
            kind, key, masked = "iban", compact, f"{compact[:2]}…{compact[-4:]}"
        elif group == "card":
            digits = _card_number(candidate)
            if digits is None:
                continue
            kind, key, masked = "card", digits, f"ending {digits[-4:]}"
        else:
            digits = _digits(candidate)
            count = len(digits)
            if group == "phone_intl" and not 8 <= count <= 16:
                continue
            if group == "phone_national" and not 9 <= count <= 13:
                continue
            kind, key, masked = "phone", digits, f"ending {digits[-2:]}"
        found.setdefault(kind, {}).setdefault(key, masked)
    return found


class _PiiCheck(_Check):
    kind = "pii"

    def __init__(self, params: PiiParams):
        self.detect = tuple(kind for kind in PII_KINDS if kind in params.detect)
        self.pass_rationale = "no " + _join([_PII_LABELS[kind][0] for kind in self.detect], "or") + " found"
        self.emails = "email" in self.detect
        self.numbers = any(kind in self.detect for kind in ("phone", "card", "iban"))

    def _run(self, text: str) -> tuple[bool, str]:
        found = _pii_found(text, emails=self.emails, numbers=self.numbers)
        parts = []
        for kind in self.detect:
            values = list(found.get(kind, {}).values())
            if not values:
                continue
            examples = ", ".join(values[:_PII_EXAMPLES]) + (", …" if len(values) > _PII_EXAMPLES else "")
            parts.append(f"{_plural(len(values), *_PII_LABELS[kind])} ({examples})")
        if not parts:
            return True, self.pass_rationale
        return False, "found " + _join(parts)


# Banned phrases and patterns ----------------------------------------------------

_RE2_HINT = " (RE2 supports neither look-around nor backreferences)"
# Word characters for phrase boundaries: letters, combining marks, digits, underscore.
_PHRASE_EDGE_START = r"(?:^|[^\pL\pM\pN_])"
_PHRASE_EDGE_END = r"(?:[^\pL\pM\pN_]|$)"
_PHRASE_SPACE = r"[\s\p{Z}]+"


def _re2_options(*, case_sensitive: bool = True) -> re2.Options:
    options = re2.Options()
    options.log_errors = False
    options.never_capture = True  # only "does it match" is asked; captures would slow RE2 down
    options.case_sensitive = case_sensitive
    return options


def _re2_error(error: re2.error) -> str:
    reason = error.args[0] if error.args else str(error)
    return reason.decode(errors="replace") if isinstance(reason, bytes) else str(reason)


def _re2_pattern_valid(pattern: str) -> str:
    try:
        compiled = re2.compile(pattern, _re2_options())
    except re2.error as error:
        reason = _re2_error(error)
        hint = _RE2_HINT if "perl operator" in reason or "escape sequence" in reason else ""
        raise ValueError(f"pattern {_quoted(pattern)} is not a valid RE2 regular expression: {reason}{hint}") from None
    if compiled.search("") is not None:
        raise ValueError(f"pattern {_quoted(pattern)} matches the empty string, so it would flag every output")
    return pattern


BannedPhrase = Annotated[str, StringConstraints(min_length=1, max_length=200), AfterValidator(_not_blank)]
BannedPattern = Annotated[str, StringConstraints(min_length=1, max_length=1000), AfterValidator(_re2_pattern_valid)]


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
            raise ValueError(f"the phrases and patterns together are too large for RE2: {_re2_error(error)}") from None
        return self


def _banned_compile(params: BannedParams) -> tuple[Any, list[tuple[str, Any]]]:
    """One combined regex for the scan, and each item alone to name what matched."""
    options = _re2_options(case_sensitive=params.case_sensitive)
    items = [(f"phrase {_quoted(_normalize_space(phrase))}", _phrase_regex(phrase)) for phrase in params.phrases]
    items += [(f"pattern {_quoted(pattern)}", pattern) for pattern in params.patterns]
    combined = re2.compile("|".join(f"(?:{regex})" for _, regex in items), options)
    return combined, [(label, re2.compile(regex, options)) for label, regex in items]


class _BannedCheck(_Check):
    kind = "banned"
    examples = 3

    def __init__(self, params: BannedParams):
        self.combined, self.items = _banned_compile(params)
        checked = []
        if params.phrases:
            checked.append(_plural(len(params.phrases), "phrase", "phrases"))
        if params.patterns:
            checked.append(_plural(len(params.patterns), "pattern", "patterns"))
        self.pass_rationale = f"no banned phrase or pattern found ({_join(checked)} checked)"

    def _run(self, text: str) -> tuple[bool, str]:
        if self.combined.search(text) is None:
            return True, self.pass_rationale
        # The failing path is the rare one: only now find out which items matched.
        matched = [label for label, regex in self.items if regex.search(text) is not None]
        shown = ", ".join(matched[: self.examples])
        more = f" and {len(matched) - self.examples} more" if len(matched) > self.examples else ""
        return False, f"contains banned {shown}{more}"


# Length -------------------------------------------------------------------------

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


class _LengthCheck(_Check):
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
        limits = _join([_limits(low, high, label) for _, label, low, high in self.bounds])
        return True, f"{_join(measured)}, within {limits}"


# JSON Schema --------------------------------------------------------------------

_SCHEMA_MAX_CHARS = 100_000
_DRAFT_2020_12 = "https://json-schema.org/draft/2020-12/schema"
# Values under these keywords are data, not schemas; under the maps, keys are names.
_SCHEMA_DATA_KEYWORDS = frozenset({"const", "enum", "default", "examples"})
_SCHEMA_MAPS = frozenset({"properties", "patternProperties", "$defs", "definitions", "dependentSchemas"})
_SCHEMA_WATCHED = frozenset({"$ref", "$dynamicRef", "$id", "pattern"})


def _schema_walk(node: Any, path: str = "$") -> list[tuple[str, str, Any]]:
    """Every reference, $id and regular expression in a schema: (where, keyword, value).

    Each patternProperties key is reported as keyword "patternProperties", and the
    mere presence of unevaluatedProperties as that keyword.
    """
    found = []
    if isinstance(node, list):
        for index, value in enumerate(node):
            found += _schema_walk(value, f"{path}[{index}]")
    elif isinstance(node, dict):
        for key, value in node.items():
            if key in _SCHEMA_WATCHED and isinstance(value, str):
                found.append((f"{path}.{key}", key, value))
            elif key in _SCHEMA_MAPS and isinstance(value, dict):
                for name, subschema in value.items():
                    if key == "patternProperties":
                        found.append((f"{path}.{key}", key, name))
                    found += _schema_walk(subschema, f"{path}.{key}.{name}")
            elif key not in _SCHEMA_DATA_KEYWORDS:
                if key == "unevaluatedProperties":
                    found.append((f"{path}.{key}", key, None))
                found += _schema_walk(value, f"{path}.{key}")
    return found


def _json_schema_valid(schema: dict) -> dict:
    if len(json.dumps(schema)) > _SCHEMA_MAX_CHARS:
        raise ValueError(f"schema is too large (at most {_SCHEMA_MAX_CHARS} characters as JSON)")
    declared = schema.get("$schema")
    if declared is not None and str(declared).rstrip("#") != _DRAFT_2020_12:
        raise ValueError(f"only JSON Schema draft 2020-12 is supported ($schema {declared!r})")
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as error:
        raise ValueError(f"not a valid JSON Schema (draft 2020-12): {error.message} at {error.json_path}") from None
    found = _schema_walk(schema)
    keywords = {keyword for _, keyword, _ in found}
    for path, keyword, value in found:
        if keyword in ("$ref", "$dynamicRef") and not value.startswith("#"):
            raise ValueError(
                f"{path}: only references within the schema ('#/$defs/...') are allowed, not {value!r}; "
                "outside documents are never fetched"
            )
        if keyword in ("pattern", "patternProperties"):
            try:
                _re2_compiled(value)
            except re2.error as error:
                raise ValueError(
                    f"{path}: {_quoted(value)} is not a valid RE2 regular expression: {_re2_error(error)}"
                ) from None
    if "unevaluatedProperties" in keywords and "patternProperties" in keywords:
        # jsonschema would run those patterns with Python's backtracking re; everything else here uses RE2.
        raise ValueError("unevaluatedProperties cannot be combined with patternProperties in one schema")
    # A nested $id moves the base of the references below it; those are left to the validator.
    if not any(keyword == "$id" and path != "$.$id" for path, keyword, _ in found):
        resolver = Registry().resolver_with_root(DRAFT202012.create_resource(schema))
        for path, keyword, value in found:
            if keyword == "$ref":
                try:
                    resolver.lookup(value)
                except Unresolvable:
                    raise ValueError(f"{path}: {value!r} points at nothing in the schema") from None
    return schema


class JsonSchemaParams(BaseModel):
    """Fails an output that is not JSON or does not validate against a JSON Schema."""

    model_config = ConfigDict(
        extra="forbid", strict=True, validate_by_alias=True, validate_by_name=True, serialize_by_alias=True
    )

    schema_: Annotated[dict[str, Any], AfterValidator(_json_schema_valid)] = Field(
        alias="schema",
        description="A JSON Schema (draft 2020-12) the whole output, parsed as JSON, must satisfy. Only "
        "references within the schema ('#/$defs/...') are allowed. 'pattern' and 'patternProperties' use RE2 "
        "syntax. 'format' is asserted for the formats the server can check (for example email, date, ipv4, uuid).",
    )


# The tenant's regular expressions in a schema run on RE2 too: jsonschema's own
# keywords would run them with Python's backtracking re, on text the model wrote.
@functools.lru_cache(maxsize=4096)
def _re2_compiled(pattern: str) -> Any:
    return re2.compile(pattern, _re2_options())


def _pattern_keyword(validator, pattern, instance, schema):
    if validator.is_type(instance, "string") and _re2_compiled(pattern).search(instance) is None:
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


def _pattern_properties_keyword(validator, pattern_properties, instance, schema):
    if not validator.is_type(instance, "object"):
        return
    for pattern, subschema in pattern_properties.items():
        compiled = _re2_compiled(pattern)
        for key, value in instance.items():
            if compiled.search(key) is not None:
                yield from validator.descend(value, subschema, path=key, schema_path=pattern)


def _additional_properties_keyword(validator, additional, instance, schema):
    if not validator.is_type(instance, "object"):
        return
    properties = schema.get("properties", {})
    patterns = [_re2_compiled(pattern) for pattern in schema.get("patternProperties", {})]
    extras = [
        key
        for key in instance
        if key not in properties and not any(pattern.search(key) is not None for pattern in patterns)
    ]
    if validator.is_type(additional, "object"):
        for extra in extras:
            yield from validator.descend(instance[extra], additional, path=extra)
    elif not additional and extras:
        extras.sort()
        names = ", ".join(_short_repr(extra, 20) for extra in extras[:3]) + (", …" if len(extras) > 3 else "")
        yield ValidationError(
            f"Additional properties are not allowed ({names} {'was' if len(extras) == 1 else 'were'} unexpected)"
        )


_SchemaValidator = validators.extend(
    Draft202012Validator,
    {
        "pattern": _pattern_keyword,
        "patternProperties": _pattern_properties_keyword,
        "additionalProperties": _additional_properties_keyword,
    },
)


def _short_repr(value: Any, limit: int = 40) -> str:
    if isinstance(value, str) and len(value) > limit:
        return repr(value[:limit])[:-1] + "…'"
    if isinstance(value, dict):
        return "{…}"
    if isinstance(value, list):
        return "[…]"
    shown = repr(value)
    return shown if len(shown) <= limit else shown[: limit - 1] + "…"


def _error_message(error: ValidationError, limit: int = 160) -> str:
    """jsonschema's message, with the offending value shown short (it may be long, or personal)."""
    message = error.message
    shown = repr(error.instance)
    if message.startswith(shown) and len(shown) > 40:
        message = _short_repr(error.instance) + message[len(shown) :]
    return message if len(message) <= limit else message[: limit - 1] + "…"


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not valid JSON")


class _JsonSchemaCheck(_Check):
    kind = "json_schema"

    def __init__(self, params: JsonSchemaParams):
        # An empty registry: nothing outside the schema is ever fetched.
        self.validator = _SchemaValidator(
            params.schema_, registry=Registry(), format_checker=Draft202012Validator.FORMAT_CHECKER
        )

    def _run(self, text: str) -> tuple[bool, str]:
        try:
            instance = json.loads(text, parse_constant=_reject_constant)
        except json.JSONDecodeError as error:
            hint = " (it is wrapped in a ``` code fence)" if text.lstrip().startswith("```") else ""
            where = f"line {error.lineno} column {error.colno}"
            return False, f"output is not valid JSON: {error.msg} at {where}{hint}"
        except ValueError as error:
            return False, f"output is not valid JSON: {error}"
        except RecursionError:
            return False, "output is not valid JSON: nested too deeply"
        try:
            error = next(self.validator.iter_errors(instance), None)
        except RecursionError:
            return False, "output is nested too deeply to validate"
        if error is None:
            return True, "output is valid JSON matching the schema"
        return False, f"does not match the schema at {error.json_path}: {_error_message(error)}"


# Disclaimer ---------------------------------------------------------------------

DisclaimerText = Annotated[str, StringConstraints(min_length=1, max_length=2000), AfterValidator(_not_blank)]


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


class _DisclaimerCheck(_Check):
    kind = "disclaimer"

    def __init__(self, params: DisclaimerParams):
        self.case_sensitive = params.case_sensitive
        self.require_all = params.require == "all"
        self.texts = [(text, self._normalize(text)) for text in params.texts]

    def _normalize(self, text: str) -> str:
        text = _normalize_space(text)
        return text if self.case_sensitive else text.casefold()

    def _run(self, text: str) -> tuple[bool, str]:
        haystack = self._normalize(text)
        present = [original for original, needle in self.texts if needle in haystack]
        missing = [original for original, needle in self.texts if needle not in haystack]
        if self.require_all:
            if not missing:
                return True, f"contains all {_plural(len(self.texts), 'required disclaimer', 'required disclaimers')}"
            names = ", ".join(_quoted(_normalize_space(text)) for text in missing[:3])
            more = ", …" if len(missing) > 3 else ""
            return False, f"missing {len(missing)} of {len(self.texts)} required disclaimers: {names}{more}"
        if present:
            return True, f"contains required disclaimer {_quoted(_normalize_space(present[0]))}"
        if len(self.texts) == 1:
            return False, f"missing required disclaimer {_quoted(_normalize_space(self.texts[0][0]))}"
        return False, f"none of the {len(self.texts)} required disclaimers found"


# Public API ---------------------------------------------------------------------

BUILTIN_PARAMS: dict[str, type[BaseModel]] = {
    "pii": PiiParams,
    "banned": BannedParams,
    "length": LengthParams,
    "json_schema": JsonSchemaParams,
    "disclaimer": DisclaimerParams,
}
_CHECKS: dict[str, Callable[[Any], _Check]] = {
    "pii": _PiiCheck,
    "banned": _BannedCheck,
    "length": _LengthCheck,
    "json_schema": _JsonSchemaCheck,
    "disclaimer": _DisclaimerCheck,
}


def _params_model(kind: str) -> type[BaseModel]:
    model = BUILTIN_PARAMS.get(kind)
    if model is None:
        raise ValueError(f"unknown built-in judge kind {kind!r}; expected one of {', '.join(BUILTIN_PARAMS)}")
    return model


def builtin_params_validate(kind: str, params: dict) -> BaseModel:
    """The kind's params model (raises pydantic.ValidationError, or ValueError for an unknown kind)."""
    return _params_model(kind).model_validate(params)


def builtin_check(kind: str, params: dict | BaseModel) -> Callable[[JudgeInput], Verdict]:
    """Compile once (regexes, validators); call the result once per output."""
    model = _params_model(kind)
    if isinstance(params, BaseModel):
        if not isinstance(params, model):
            raise TypeError(f"{kind} checks take {model.__name__}, not {type(params).__name__}")
        validated = params
    else:
        validated = model.model_validate(params)
    return _CHECKS[kind](validated)
