"""orjson parser and renderer: the API's JSON is on the ingest hot path."""

import json

import orjson
from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import BaseParser
from rest_framework.renderers import BaseRenderer

from hitl.api_errors import RequestTooLarge
from hitl.errors import DomainValidationError, RuleViolationError
from hitl.json_limits import json_value_check, json_value_problem

_OPTIONS = orjson.OPT_NON_STR_KEYS
# Past this size a body whose numbers orjson refuses is not parsed a second time to name the field.
_LOCATE_MAX_BYTES = 1024 * 1024


def _default(value):
    # Lazy strings (Django translations, DRF messages) and Decimals.
    return str(value)


def dumps(data) -> bytes:
    try:
        return orjson.dumps(data, default=_default, option=_OPTIONS)
    except orjson.JSONEncodeError:
        # Stored before the edge refused them (hitl.json_limits): integers beyond 64 bits,
        # which PostgreSQL's jsonb returns for a float such as 1e20, or nesting deeper than
        # orjson writes. A read never fails on them: they are written as the client sent them.
        return orjson.dumps(_writable(data), default=_default, option=_OPTIONS)


def _writable(value, depth: int = 0):
    kind = type(value)
    if kind is dict:
        if depth >= 200:  # orjson writes 254 levels
            return json.dumps(value, default=str)
        return {key: _writable(item, depth + 1) for key, item in value.items()}
    if kind is list or kind is tuple:
        if depth >= 200:
            return json.dumps(value, default=str)
        return [_writable(item, depth + 1) for item in value]
    if kind is int and not -(2**63) <= value < 2**64:
        try:
            return float(value)  # how the client sent it: orjson reads such integers as floats
        except OverflowError:
            return str(value)
    return value


class OrjsonParser(BaseParser):
    """Parses JSON, refusing bodies over ``DATA_UPLOAD_MAX_MEMORY_SIZE`` before reading them whole,
    and values that could not be stored and read back (hitl.json_limits), naming the field."""

    media_type = "application/json"

    def parse(self, stream, media_type=None, parser_context=None):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        request = (parser_context or {}).get("request")
        declared = request.META.get("CONTENT_LENGTH") if request is not None else None
        if declared and declared.isdigit() and int(declared) > limit:
            raise RequestTooLarge(limit)
        raw = stream.read(limit + 1) if stream is not None else b""
        if len(raw) > limit:
            raise RequestTooLarge(limit)
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError as error:
            _locate_refused_number(raw)
            raise ParseError(f"Malformed JSON: {error}") from error
        # PostgreSQL cannot store NUL characters in text or jsonb; say so instead of failing later.
        # The byte scan is cheap; the walk runs only when the escape is there (it may be "\\u0000").
        if b"\\u0000" in raw and _holds_nul(data):
            raise ParseError("The body contains a NUL character (\\u0000), which cannot be stored.")
        json_value_check(data)
        return data


def _holds_nul(value) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return True
        elif isinstance(item, dict):
            stack.extend(item)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def _locate_refused_number(raw: bytes) -> None:
    """orjson refuses NaN, Infinity and numbers that overflow a double without saying
    where they are; the standard library reads them, and the check names the field."""
    if len(raw) > _LOCATE_MAX_BYTES:
        return
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        return  # malformed for both: orjson's message says where
    if json_value_problem(data) is not None:
        try:
            json_value_check(data)
        except RuleViolationError as error:  # not JSON this API reads at all: malformed, a 400
            raise DomainValidationError(error.message, fields=error.fields) from None


class OrjsonRenderer(BaseRenderer):
    media_type = "application/json"
    format = "json"
    charset = None

    def render(self, data, accepted_media_type=None, renderer_context=None):
        if data is None:
            return b""
        return dumps(data)
