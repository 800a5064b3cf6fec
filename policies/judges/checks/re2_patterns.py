"""Tenant-written regular expressions run on RE2: linear time, no backtracking, so no pattern
can hang a worker. Banned patterns and JSON Schema ``pattern`` keywords compile here."""

import functools
from typing import Any

import re2

from policies.judges.checks.common import quoted

RE2_HINT = " (RE2 supports neither look-around nor backreferences)"


def re2_options(*, case_sensitive: bool = True) -> re2.Options:
    options = re2.Options()
    options.log_errors = False
    options.never_capture = True  # only "does it match" is asked; captures would slow RE2 down
    options.case_sensitive = case_sensitive
    return options


def re2_error(error: re2.error) -> str:
    reason = error.args[0] if error.args else str(error)
    return reason.decode(errors="replace") if isinstance(reason, bytes) else str(reason)


def re2_pattern_valid(pattern: str) -> str:
    try:
        compiled = re2.compile(pattern, re2_options())
    except re2.error as error:
        reason = re2_error(error)
        hint = RE2_HINT if "perl operator" in reason or "escape sequence" in reason else ""
        raise ValueError(f"pattern {quoted(pattern)} is not a valid RE2 regular expression: {reason}{hint}") from None
    if compiled.search("") is not None:
        raise ValueError(f"pattern {quoted(pattern)} matches the empty string, so it would flag every output")
    return pattern


# The tenant's regular expressions in a schema run on RE2 too: jsonschema's own
# keywords would run them with Python's backtracking re, on text the model wrote.
@functools.lru_cache(maxsize=4096)
def re2_compiled(pattern: str) -> Any:
    return re2.compile(pattern, re2_options())
