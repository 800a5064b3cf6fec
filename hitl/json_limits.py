"""What a JSON value must be for us to store it and every client to read it back.

- Numbers within +/-(2**53 - 1). JSON clients read numbers as doubles (JavaScript,
  and many parsers by default), so a larger integer comes back as another number; and
  PostgreSQL's ``jsonb`` stores a float such as ``1e20`` as the integer
  ``100000000000000000000``. Non-finite values (``NaN``, ``Infinity``, ``1e400``) are not
  JSON at all.
- Nesting at most :data:`MAX_DEPTH` levels: the JSON encoder of our responses stops at
  254 levels, envelopes included.
- Configuration documents (policies, judges, rubrics) at most
  ``settings.HITL_MAX_CONFIG_BYTES`` serialized: each process keeps compiled forms of them.

No dependency on the API layer: services check the documents they store with the same
functions the API's JSON parser checks bodies with.
"""

import math

import orjson
from django.conf import settings

from hitl.errors import DomainValidationError

MAX_SAFE_INTEGER = 2**53 - 1
MAX_DEPTH = 100


def json_value_problem(value) -> tuple[str, str] | None:
    """The path (``metadata.n``, ``items.3.trace.0``) and reason of the first part of a
    parsed JSON value that could not be stored and read back, or None.

    One pass over the value, a level at a time, with no path kept: bodies on the ingest
    hot path are almost always fine (about 3 us for an output of 25 values). Only a
    problem found pays for a second pass that names where it is.
    """
    level, depth = [value], 0  # depth: how many containers enclose the items of this level
    while level:
        below = []
        for item in level:
            kind = type(item)
            if kind is dict or kind is list or kind is tuple:
                if depth == MAX_DEPTH:
                    return _located(value)
                below.extend(item.values() if kind is dict else item)
            elif (kind is int or kind is float) and not -MAX_SAFE_INTEGER <= item <= MAX_SAFE_INTEGER:
                return _located(value)  # NaN fails the comparison too
        level, depth = below, depth + 1
    return None


def _located(value) -> tuple[str, str]:
    """The first problem depth-first, with its path (the slow pass, only once one is known)."""
    stack = [(value, (), 0)]
    while stack:
        item, path, depth = stack.pop()
        kind = type(item)
        if kind in (dict, list, tuple):
            if depth == MAX_DEPTH:
                return _dotted(path), f"nested more than {MAX_DEPTH} levels deep"
            pairs = item.items() if kind is dict else enumerate(item)
            stack.extend((child, (*path, key), depth + 1) for key, child in reversed(list(pairs)))
        elif kind is int or kind is float:
            reason = number_problem(item)
            if reason:
                return _dotted(path), reason
    return "body", "not storable"  # not reached: the fast pass found a problem


def number_problem(number) -> str | None:
    if isinstance(number, float) and not math.isfinite(number):
        return "not a finite number; JSON has no NaN or Infinity"
    if not -MAX_SAFE_INTEGER <= number <= MAX_SAFE_INTEGER:
        if isinstance(number, float):
            shown = f"{number:.6g}"
        else:
            digits = len(str(abs(number)))
            shown = str(number) if digits <= 30 else f"An integer of {digits} digits"
        return (
            f"{shown} lies beyond +/-{MAX_SAFE_INTEGER} (2^53 - 1), the largest number every JSON "
            "client reads back exactly; send it as a string"
        )
    return None


def _dotted(path: tuple) -> str:
    return ".".join(str(part) for part in path) or "body"


def json_value_check(value, *, prefix: str = "") -> None:
    """Raise the API's 400 naming the field when ``value`` could not be stored and read back."""
    problem = json_value_problem(value)
    if problem is not None:
        path, reason = problem
        field = f"{prefix}.{path}" if prefix and path != "body" else prefix or path
        raise DomainValidationError(f"{field}: {reason}", fields={field: [reason[0].upper() + reason[1:] + "."]})


def config_document_check(document, *, what: str) -> None:
    """A configuration document (``what``: "policy", "judge", "rubric") is storable JSON
    within ``settings.HITL_MAX_CONFIG_BYTES`` serialized; errors name the field at fault
    (for the size, the largest top-level field)."""
    json_value_check(document)
    limit = settings.HITL_MAX_CONFIG_BYTES
    size = len(orjson.dumps(document))
    if size <= limit:
        return
    field, part = "body", ""
    if isinstance(document, dict) and document:
        sizes = {key: len(orjson.dumps(item)) for key, item in document.items()}
        field = max(sizes, key=sizes.get)
        part = f"; {field} is {_kb(sizes[field])} of it"
    message = f"The {what} document is {_kb(size)} serialized, over the limit of {_kb(limit)}{part}."
    raise DomainValidationError(f"{field}: {message}", fields={field: [message]}, code="document_too_large")


def _kb(size: int) -> str:
    return f"{size / 1024:.1f} KB" if size % 1024 else f"{size // 1024} KB"
