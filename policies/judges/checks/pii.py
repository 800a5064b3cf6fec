"""PII: emails, phone numbers, card numbers (Luhn) and IBANs (mod-97), masked in rationales."""

import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from policies.judges.checks.common import Check, join_words, plural

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


class PiiCheck(Check):
    kind = "pii"

    def __init__(self, params: PiiParams):
        self.detect = tuple(kind for kind in PII_KINDS if kind in params.detect)
        self.pass_rationale = "no " + join_words([_PII_LABELS[kind][0] for kind in self.detect], "or") + " found"
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
            parts.append(f"{plural(len(values), *_PII_LABELS[kind])} ({examples})")
        if not parts:
            return True, self.pass_rationale
        return False, "found " + join_words(parts)
